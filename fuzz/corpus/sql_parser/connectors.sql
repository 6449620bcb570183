-- nexmark: the proportions options decide the event mix.
CREATE TABLE mix (event_type INT) WITH ('connector' = 'nexmark', 'events.num' = '300',
  'person.proportion' = '1', 'auction.proportion' = '1', 'bid.proportion' = '1');
SELECT event_type, COUNT(*) AS n FROM mix GROUP BY event_type;

-- nexmark: the seed changes the values, not the ids; the same seed gives the same events.
CREATE TABLE s0 (event_type INT, bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>)
  WITH ('connector' = 'nexmark', 'events.num' = '1000');
CREATE TABLE s7 (event_type INT, bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>)
  WITH ('connector' = 'nexmark', 'events.num' = '1000', 'seed' = '7');
SELECT COUNT(*) AS bids, SUM(bid.price) AS total, MIN(bid.dateTime) AS first FROM s0 WHERE event_type = 2;
SELECT COUNT(*) AS bids, SUM(bid.price) AS total, MIN(bid.dateTime) AS first FROM s7 WHERE event_type = 2;

-- CSV with another delimiter, a quoted delimiter, a NULL literal and an empty field.
CREATE TABLE semi (id INT, name STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = 'tests/data/semicolon.csv',
  'format' = 'csv', 'csv.field-delimiter' = ';', 'csv.null-literal' = '\N');
SELECT id, name, v, name IS NULL AS no_name, v IS NULL AS no_v FROM semi;
