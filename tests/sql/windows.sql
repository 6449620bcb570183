CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');

-- TUMBLE with COUNT, SUM, MIN, MAX, AVG, COUNT(DISTINCT) and FILTER.
SELECT window_start, window_end, COUNT(*) AS c, SUM(v) AS s, MIN(v) AS mn, MAX(v) AS mx, AVG(v) AS av,
       COUNT(DISTINCT id) AS ids, COUNT(*) FILTER (WHERE v > 10) AS big
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end;

-- HOP: every row lands in two windows.
SELECT name, window_start, window_end, SUM(v) AS s
FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
GROUP BY name, window_start, window_end;

-- CUMULATE with named arguments.
SELECT window_start, window_end, COUNT(*) AS c
FROM TABLE(CUMULATE(DATA => TABLE events, TIMECOL => DESCRIPTOR(ts), STEP => INTERVAL '5' SECOND, SIZE => INTERVAL '10' SECOND))
GROUP BY window_start, window_end;

-- The window columns themselves.
SELECT id, window_start, window_end, window_time FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND));

-- The window columns are recognised by where they come from: renamed in a
-- subquery they still make a window aggregate (insert-only: no op column)...
SELECT ws, we, COUNT(*) AS c
FROM (SELECT window_start AS ws, window_end AS we, v
      FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)))
GROUP BY ws, we;

-- ...while a column merely named window_end makes an updating aggregate.
SELECT window_end, COUNT(*) AS c FROM (SELECT ts AS window_end FROM events) GROUP BY window_end;
