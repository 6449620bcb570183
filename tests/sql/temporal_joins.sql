-- sort final: the two inputs of a join interleave in any order, so rows are sorted
CREATE TABLE fx_orders (id INT, currency STRING, amount BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/fx_orders.csv', 'format' = 'csv');
CREATE TABLE rates (currency STRING, rate BIGINT, ts TIMESTAMP(3), PRIMARY KEY (currency) NOT ENFORCED, WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/rates.csv', 'format' = 'csv');

-- Event time: each order joins the rate valid at its time (a version is
-- valid from its own time until the next one of its key).
SELECT o.id, o.currency, o.amount * r.rate AS converted, r.ts AS rate_since
FROM fx_orders AS o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency;

-- LEFT: an order without a version at its time (none yet, an unknown
-- currency, a NULL key) is padded with nulls.
SELECT o.id, o.currency, r.rate FROM fx_orders o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency;

-- A residual condition; without an alias the table's name qualifies.
SELECT o.id, rates.rate FROM fx_orders o
JOIN rates FOR SYSTEM_TIME AS OF o.ts ON o.currency = rates.currency AND rates.rate > 100;

EXPLAIN SELECT o.id, r.rate FROM fx_orders o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency;

-- The order's time stays a time attribute: a window over the join's output.
CREATE VIEW converted AS SELECT o.id, o.ts, o.amount * r.rate AS val
FROM fx_orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency;
SELECT window_start, COUNT(*) AS n, SUM(val) AS total
FROM TABLE(TUMBLE(TABLE converted, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_start, window_end;

-- Processing time: a lookup into a table read into state. The customers
-- file is bounded, so every order waits until it has been read: each sees
-- the whole table.
CREATE TABLE orders_p (id INT, customer STRING, amount BIGINT, ts TIMESTAMP(3), p AS PROCTIME())
WITH ('connector' = 'filesystem', 'path' = 'tests/data/orders.csv', 'format' = 'csv');
CREATE TABLE customers (name STRING, city STRING)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/customers.csv', 'format' = 'csv');
SELECT o.id, o.customer, c.city FROM orders_p AS o JOIN customers FOR SYSTEM_TIME AS OF o.p AS c ON o.customer = c.name;
SELECT o.id, c.city FROM orders_p o LEFT JOIN customers FOR SYSTEM_TIME AS OF o.p AS c
  ON o.customer = c.name AND c.city <> 'Berlin';
EXPLAIN SELECT o.id, c.city FROM orders_p o LEFT JOIN customers FOR SYSTEM_TIME AS OF o.p AS c ON o.customer = c.name;

-- A temporal join is JOIN or LEFT JOIN.
SELECT o.id, r.rate FROM fx_orders o RIGHT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency;
-- On event time the right side is a versioned table: an event-time attribute …
SELECT o.id, c.city FROM fx_orders o JOIN customers FOR SYSTEM_TIME AS OF o.ts AS c ON o.currency = c.name;
-- … and a primary key, which the condition equates.
CREATE TABLE loose_rates (currency STRING, rate BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/rates.csv', 'format' = 'csv');
SELECT o.id, r.rate FROM fx_orders o JOIN loose_rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency;
SELECT o.id, r.rate FROM fx_orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.amount = r.rate;
-- The time is a time attribute of the left side, and the clause belongs to a join's right side.
SELECT o.id, r.rate FROM fx_orders o JOIN rates FOR SYSTEM_TIME AS OF o.amount AS r ON o.currency = r.currency;
SELECT * FROM rates FOR SYSTEM_TIME AS OF TIMESTAMP '2024-01-01 00:00:00';
SELECT * FROM rates FOR SYSTEM_TIME AS OF ts;
