-- sort: the branches of a union interleave in any order
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');

-- Three inputs, one of them a constant row; types are widened to the union's.
SELECT id, name FROM events WHERE v > 20
UNION ALL SELECT id + 100, UPPER(name) FROM events WHERE v <= 5
UNION ALL SELECT CAST(0 AS BIGINT), 'const';

-- A window over a union: its watermark is the minimum of its inputs'.
CREATE VIEW both_sides AS
  SELECT name, v, ts FROM events WHERE id % 2 = 0
  UNION ALL
  SELECT name, -v AS v, ts FROM events WHERE id % 2 = 1;

SELECT window_start, window_end, COUNT(*) AS c, SUM(v) AS s
FROM TABLE(TUMBLE(TABLE both_sides, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end;

-- An updating aggregate over the union.
SELECT name, COUNT(*) AS c FROM both_sides GROUP BY name;

EXPLAIN SELECT id FROM events UNION ALL SELECT id FROM events;

-- UNION without ALL removes duplicates: not a streaming union.
SELECT id FROM events UNION SELECT id FROM events;

-- A changelog and an insert-only input cannot be mixed.
SELECT name, COUNT(*) AS c FROM events GROUP BY name UNION ALL SELECT name, v FROM events;
