SET 'execution.batch-size' = '1';
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');

-- An aggregate over an updating aggregate: names move from one count to
-- another; the maximum falls back when its row is taken back.
SELECT n, COUNT(*) AS names, MAX(total) AS top, MIN(total) AS low, SUM(total) AS s
FROM (SELECT name, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY name) AS per_name GROUP BY n;

-- A group whose rows are all taken back is deleted (-D).
SELECT big, COUNT(*) AS names FROM (SELECT name, SUM(v) > 15 AS big FROM events GROUP BY name) AS g GROUP BY big;

-- COUNT(DISTINCT) and AVG over a changelog.
SELECT COUNT(DISTINCT n) AS counts, AVG(CAST(total AS DOUBLE)) AS mean
FROM (SELECT name, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY name) AS g;

EXPLAIN SELECT n, COUNT(*) AS names FROM (SELECT name, COUNT(*) AS n FROM events GROUP BY name) AS g GROUP BY n;

-- An aggregate that cannot take rows back is refused, naming it.
SELECT n, MEDIAN(n) FROM (SELECT name, COUNT(*) AS n FROM events GROUP BY name) AS g GROUP BY n;
