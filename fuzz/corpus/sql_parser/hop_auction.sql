-- Not in the Nexmark suite: the windowed part of query 5 (hot items), bids
-- per auction in 10-second windows sliding by 2 seconds (the Flink peer's
-- query "c"). Query 5 itself needs a join.
CREATE TABLE nexmark_hop (
    auction BIGINT,
    window_start TIMESTAMP(3),
    window_end TIMESTAMP(3),
    num BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_hop
SELECT auction, window_start, window_end, count(*) AS num
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
