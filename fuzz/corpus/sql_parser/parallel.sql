-- sort
SET 'parallelism.default' = '2';
CREATE TABLE nexmark (
    event_type INT,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS bid.dateTime,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '50000');
SELECT window_start, COUNT(*) AS bids, MAX(bid.price) AS top, COUNT(DISTINCT bid.bidder) AS bidders
FROM TABLE(TUMBLE(TABLE nexmark, DESCRIPTOR(dateTime), INTERVAL '1' SECOND))
WHERE event_type = 2
GROUP BY window_start, window_end;
