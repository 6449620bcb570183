-- The changelog mode shows every change with its kind, inserts too; the
-- table mode needs a terminal, so piped statements show tableau.
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
SET 'sql-client.execution.result-mode' = 'changelog';
SELECT id, v FROM events WHERE id = 1;
SET 'sql-client.execution.result-mode' = 'table';
SELECT id, v FROM events WHERE id = 1;
SET 'sql-client.execution.result-mode' = 'tableau';
SELECT id, v FROM events WHERE id = 1;
SET 'sql-client.execution.result-mode' = 'pretty';
