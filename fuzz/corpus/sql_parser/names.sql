-- Result columns are named as Flink names them: a column after itself, a
-- nested field after the field, anything else EXPR$<position>; a name taken
-- by an earlier column gets a suffix. Errors name Weir's objects, with the
-- line and column.
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
SELECT id, v + 1, name, UPPER(name) FROM events WHERE id = 1;
SELECT id, id, v AS id1 FROM events WHERE id = 2;
SELECT COUNT(*) FROM (SELECT id, v * 2 FROM events);
CREATE VIEW doubled AS SELECT id, v * 2 FROM events;
DESCRIBE doubled;
SELECT * FROM nosuch;
SELECT id,
       nope FROM events;
SELECT events.nope FROM events;
CREATE TABLE e (s STRING) WITH ('connector'='datagen','number-of-rows'='3');
SELECT SUM(s) FROM e;
