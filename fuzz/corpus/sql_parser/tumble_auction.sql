-- Not in the Nexmark suite: the windowed aggregation every engine is
-- compared on (the Flink peer's query "b"): bids and top price per auction
-- in 10-second tumbling windows.
CREATE TABLE nexmark_tumble (
    auction BIGINT,
    window_start TIMESTAMP(3),
    window_end TIMESTAMP(3),
    bids BIGINT,
    top_price BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_tumble
SELECT auction, window_start, window_end, count(*) AS bids, max(price) AS top_price
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
