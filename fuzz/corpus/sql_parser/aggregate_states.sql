-- Aggregates whose state is a list or a string (ARRAY_AGG, STRING_AGG,
-- COUNT(DISTINCT)) survive being written to the state backend and read back
-- (the other passes of this file run with a one-group cache, on both
-- backends); two-row batches make every group change several times.
SET 'execution.batch-size' = '2';
CREATE TABLE e (id INT, name STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
SELECT id, ARRAY_AGG(v) AS vs, STRING_AGG(name, ',') AS names, COUNT(DISTINCT name) AS dn, AVG(v) AS av FROM e GROUP BY id;
SELECT window_start, ARRAY_AGG(v) AS vs, STRING_AGG(name, ',') AS names, COUNT(DISTINCT id) AS ids FROM TABLE(TUMBLE(TABLE e, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end;
SELECT id, COUNT(*) FILTER (WHERE v > 12) AS big, SUM(v) FILTER (WHERE v < 25) AS small, COUNT(DISTINCT name) FILTER (WHERE v > 12) AS dn FROM e GROUP BY id;
