-- tumble_auction over processing time instead of event time: the same
-- aggregation, windows fired by processing-time timers (the cost of
-- timers, against tumble_auction on the same input).
CREATE TABLE nexmark_tumble_proctime (
    auction BIGINT,
    window_start TIMESTAMP(3),
    window_end TIMESTAMP(3),
    bids BIGINT,
    top_price BIGINT
) WITH ('connector' = 'blackhole');

CREATE VIEW bid_p AS SELECT *, PROCTIME() AS p_time FROM bid;

INSERT INTO nexmark_tumble_proctime
SELECT auction, window_start, window_end, count(*) AS bids, max(price) AS top_price
FROM TABLE(TUMBLE(TABLE bid_p, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
