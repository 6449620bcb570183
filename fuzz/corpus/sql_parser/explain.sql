SET 'parallelism.default' = '2';
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
CREATE TABLE sink (name STRING, window_end TIMESTAMP(3), c BIGINT) WITH ('connector' = 'print');
EXPLAIN INSERT INTO sink
SELECT name, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY name, window_start, window_end;
