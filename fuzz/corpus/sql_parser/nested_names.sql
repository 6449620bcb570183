-- A nested field read without an alias is named after the field, as in
-- Flink, so that views over Nexmark's rows work as Flink's queries expect.
CREATE TABLE nx (
    event_type INT,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>
) WITH ('connector' = 'nexmark', 'events.num' = '200');
CREATE VIEW bid AS SELECT bid.auction, bid.price, bid.dateTime FROM nx WHERE event_type = 2;
DESCRIBE bid;
SELECT auction, price FROM bid WHERE price < 200;
SELECT bid.auction, bid.auction + 1 AS next FROM nx WHERE event_type = 2 AND bid.price < 150;
