-- PROCTIME() as a computed column and in a view: a processing-time attribute.
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3), p AS PROCTIME(),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');

CREATE VIEW b AS SELECT *, PROCTIME() AS p_time FROM events;

DESCRIBE events;

-- The rows of one batch share one processing time, so a day-long window
-- holds them all; at the end of the bounded input it fires.
SELECT name, COUNT(*) AS c, SUM(v) AS s
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(p), INTERVAL '1' DAY))
GROUP BY name, window_start, window_end;

SELECT COUNT(*) AS c
FROM TABLE(CUMULATE(TABLE b, DESCRIPTOR(p_time), INTERVAL '1' DAY, INTERVAL '2' DAY))
GROUP BY window_start, window_end
HAVING window_end > window_start + INTERVAL '1' DAY;

EXPLAIN SELECT name, COUNT(*) FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
GROUP BY name, window_start, window_end;
