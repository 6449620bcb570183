-- Query 13: bounded side input join. Joins a stream with a bounded side
-- input, as a basic stream enrichment: each bid looks up its
-- `auction mod 10000` in `side_input.csv` (10,000 rows) at processing time.
-- Flink declares the side input with the legacy `connector.type` options;
-- the table is the same with today's.
CREATE TABLE side_input (
    key BIGINT,
    `value` VARCHAR
) WITH (
    'connector' = 'filesystem',
    'path' = 'benches/nexmark/side_input.csv',
    'format' = 'csv'
);

CREATE TABLE nexmark_q13 (
    auction  BIGINT,
    bidder  BIGINT,
    price  BIGINT,
    dateTime  TIMESTAMP(3),
    `value`  VARCHAR
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q13
SELECT
    B.auction,
    B.bidder,
    B.price,
    B.dateTime,
    S.`value`
FROM (SELECT *, PROCTIME() as p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON mod(B.auction, 10000) = S.key;
