CREATE TABLE nexmark (
    event_type INT,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    price_cents AS bid.price * 100,
    dateTime AS bid.dateTime,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '100');
CREATE TABLE kv (k BIGINT NOT NULL, v STRING, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'blackhole');
CREATE TEMPORARY VIEW bids AS SELECT bid.auction AS auction, bid.price AS price, dateTime FROM nexmark WHERE event_type = 2;
SHOW TABLES;
DESCRIBE nexmark;
DESCRIBE kv;
DESCRIBE bids;
SELECT auction, price FROM bids WHERE price > 9000000;
DROP VIEW bids;
DROP TABLE IF EXISTS missing;
SHOW TABLES;
SET 'pipeline.name' = 'my job';
RESET 'pipeline.name';
