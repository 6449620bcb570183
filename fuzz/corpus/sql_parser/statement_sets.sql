-- A statement set holds INSERTs only, and ends with END (what runs is
-- tested in tests/jobs.rs and tests/checkpoints.rs).
CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
CREATE TABLE a (id INT, v BIGINT) WITH ('connector' = 'blackhole');
EXECUTE STATEMENT SET BEGIN SELECT 1; END;
EXECUTE STATEMENT SET BEGIN END;
BEGIN STATEMENT SET;
INSERT INTO a SELECT id, v FROM events;
CREATE TABLE b (x INT) WITH ('connector' = 'blackhole');
END;
EXECUTE STATEMENT SET BEGIN
INSERT INTO a SELECT id, nope FROM events;
END;
EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT id, v FROM events;
