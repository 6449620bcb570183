SET 'execution.batch-size' = '1';
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');

-- One row per batch: every change of a group is visible.
SELECT name, SUM(v) AS total, COUNT(*) AS n FROM events GROUP BY name;

-- A filesystem sink only takes inserts.
CREATE TABLE out_files (name STRING, total BIGINT) WITH ('connector' = 'filesystem', 'path' = '/tmp/weir-never-written', 'format' = 'csv');
INSERT INTO out_files SELECT name, SUM(v) FROM events GROUP BY name;
