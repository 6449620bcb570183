-- sort final: the two inputs of a join interleave in any order, so rows are sorted and changelogs applied (every retraction must take back a row emitted before)
CREATE TABLE orders (id INT, customer STRING, amount BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/orders.csv', 'format' = 'csv');
CREATE TABLE customers (name STRING, city STRING)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/customers.csv', 'format' = 'csv');

-- An inner join of insert-only inputs is insert-only; NULL keys never match.
SELECT o.id, o.customer, c.city FROM orders AS o JOIN customers AS c ON o.customer = c.name;

-- A residual condition, and the join written in WHERE.
SELECT o.id, c.city FROM orders o, customers c WHERE o.customer = c.name AND o.amount > 10 AND c.city <> 'Rome';

-- Outer joins emit null-padded rows and take them back when a match arrives.
SELECT o.id, o.customer, c.city FROM orders o LEFT JOIN customers c ON o.customer = c.name;
SELECT o.id, c.name, c.city FROM orders o RIGHT JOIN customers c ON o.customer = c.name;
SELECT o.id, o.customer, c.name, c.city FROM orders o FULL OUTER JOIN customers c ON o.customer = c.name;

-- Semi and anti joins from IN / EXISTS / NOT EXISTS subqueries.
SELECT id, customer FROM orders WHERE customer IN (SELECT name FROM customers WHERE city = 'Paris');
SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer = c.name AND o.amount > 20);
SELECT name, city FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer = c.name);

-- An aggregate over an inner join of insert-only inputs.
SELECT c.city, COUNT(*) AS orders, SUM(o.amount) AS total FROM orders o JOIN customers c ON o.customer = c.name GROUP BY c.city;

-- A self-join.
SELECT a.id, b.id FROM orders a JOIN orders b ON a.customer = b.customer AND a.id < b.id;

EXPLAIN SELECT o.id, c.city FROM orders o LEFT JOIN customers c ON o.customer = c.name AND o.amount > 5;

-- A sink that takes only inserts rejects an outer join's changelog at plan time.
CREATE TABLE enriched (id INT, city STRING) WITH ('connector' = 'filesystem', 'path' = '/tmp/weir-never-written', 'format' = 'csv');
INSERT INTO enriched SELECT o.id, c.city FROM orders o LEFT JOIN customers c ON o.customer = c.name;

-- A join needs an equality between its inputs.
SELECT o.id, c.city FROM orders o JOIN customers c ON o.amount > 10;
SELECT o.id, c.city FROM orders o CROSS JOIN customers c;

-- NOT IN over a column that may be NULL has three-valued logic.
SELECT id FROM orders WHERE customer NOT IN (SELECT name FROM customers);

-- An interval join: orders and their payments within a minute, and the
-- orders without one (emitted once the watermark passes their bound).
CREATE TABLE timed_orders (id INT, customer STRING, amount BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/orders.csv', 'format' = 'csv');
CREATE TABLE payments (order_id INT, paid BIGINT, pay_ts TIMESTAMP(3), WATERMARK FOR pay_ts AS pay_ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/payments.csv', 'format' = 'csv');
SELECT o.id, o.amount, p.paid, p.pay_ts FROM timed_orders o JOIN payments p
  ON o.id = p.order_id AND p.pay_ts BETWEEN o.ts AND o.ts + INTERVAL '1' MINUTE;
SELECT o.id, p.paid FROM timed_orders o LEFT JOIN payments p
  ON o.id = p.order_id AND p.pay_ts >= o.ts AND p.pay_ts < o.ts + INTERVAL '1' MINUTE;
EXPLAIN SELECT o.id, p.paid FROM timed_orders o LEFT JOIN payments p
  ON o.id = p.order_id AND p.pay_ts >= o.ts AND p.pay_ts < o.ts + INTERVAL '1' MINUTE;
-- A window over an interval join's output: its watermark is held back by the bound.
CREATE VIEW paid AS SELECT o.id, p.paid, p.pay_ts FROM timed_orders o JOIN payments p
  ON o.id = p.order_id AND p.pay_ts BETWEEN o.ts AND o.ts + INTERVAL '1' MINUTE;
SELECT window_start, COUNT(*) AS n, SUM(paid) AS total
FROM TABLE(TUMBLE(TABLE paid, DESCRIPTOR(pay_ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end;

-- Window joins: both sides windowed alike and joined on their windows; a
-- window's rows leave the state when it passes, unmatched outer and anti rows are emitted then.
CREATE VIEW order_windows AS SELECT * FROM TABLE(TUMBLE(TABLE timed_orders, DESCRIPTOR(ts), INTERVAL '5' SECOND));
CREATE VIEW payment_windows AS SELECT * FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(pay_ts), INTERVAL '5' SECOND));
SELECT o.id, o.window_start, p.paid FROM order_windows o LEFT JOIN payment_windows p
  ON o.id = p.order_id AND o.window_start = p.window_start AND o.window_end = p.window_end;
SELECT o.id, o.window_start FROM order_windows o WHERE NOT EXISTS (
  SELECT 1 FROM payment_windows p WHERE p.order_id = o.id AND p.window_start = o.window_start AND p.window_end = o.window_end);
EXPLAIN SELECT o.id, p.paid FROM order_windows o JOIN payment_windows p
  ON o.id = p.order_id AND o.window_start = p.window_start AND o.window_end = p.window_end;

-- An aggregate over an outer join: the padded rows it counts are taken back as matches arrive.
SELECT c.city, COUNT(*) AS orders, COUNT(o.id) AS matched, SUM(o.amount) AS total, MAX(o.amount) AS top
FROM customers c LEFT JOIN orders o ON o.customer = c.name GROUP BY c.city;

-- Flink's STATE_TTL hint sets each side's TTL by its alias.
EXPLAIN SELECT /*+ STATE_TTL('o' = '1h', 'c' = '1 d') */ o.id, c.city FROM orders o JOIN customers c ON o.customer = c.name;
SELECT /*+ STATE_TTL('o' = 'soon') */ o.id FROM orders o JOIN customers c ON o.customer = c.name;
