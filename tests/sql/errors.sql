SELECT * FROM;
CREATE TABLE t (
  id BIGINT,
  x NOTATYPE
) WITH ('connector' = 'datagen');
CREATE TABLE t (id BIGINT) WITH ('connector' = 'kafkaa');
CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-secnd' = '5');
CREATE TABLE t (id BIGINT) WITH ('connector' = 'nexmark');
SET 'parallelism.defualt' = '2';
SET 'parallelism.default' = 'two';
CREATE TABLE e (id INT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'xml');
CREATE TABLE e (id INT, name STRING, v BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
SELECT a.id FROM e a JOIN e b ON a.id < b.id;
SELECT id FROM e ORDER BY id;
SELECT * FROM TABLE(HOP(TABLE e, DESCRIPTOR(ts), INTERVAL '3' SECOND, INTERVAL '10' SECOND));
SELECT * FROM TABLE(TUMBLE(TABLE e, DESCRIPTOR(name), INTERVAL '3' SECOND));
SET 'state.backend.type' = 'leveldb';
SET 'table.exec.state.ttl' = 'forever';
SET 'state.backend.type' = 'rocksdb';
SET 'state.backend.rocksdb.localdir' = '/proc/weir-state';
SELECT id, COUNT(*) FROM e GROUP BY id;
RESET 'state.backend.rocksdb.localdir';
-- Checkpoint settings: a bad mode names the accepted values; an unusable
-- location fails the INSERT before any job starts; unaligned needs EXACTLY_ONCE.
SET 'execution.checkpointing.mode' = 'SOMETIMES';
SET 'execution.checkpointing.interval' = '1 s';
SET 'execution.checkpointing.dir' = 'ftp://host/checkpoints';
CREATE TABLE ck_src (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');
CREATE TABLE ck_dst (x BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO ck_dst SELECT x FROM ck_src;
SET 'execution.checkpointing.dir' = 'memory://errors';
SET 'execution.checkpointing.mode' = 'AT_LEAST_ONCE';
SET 'execution.checkpointing.unaligned.enabled' = 'true';
INSERT INTO ck_dst SELECT x FROM ck_src;
RESET;
-- Savepoint statements: unknown jobs, a bad STOP clause, missing savepoints,
-- EXPLAIN RESTORE of a query, a checkpoint folder that is not a savepoint.
STOP JOB 'feedbeef' WITH SAVEPOINT;
STOP JOB 'feedbeef' WITH SAVEPOINT WITH CARE;
TRIGGER SAVEPOINT 'feedbeef';
DISPOSE SAVEPOINT '/tmp/weir-no-such-dir/savepoint-000000-000000000000';
DISPOSE SAVEPOINT 'tests/sql';
EXPLAIN RESTORE FROM '/tmp/weir-no-such-dir/savepoint-1' SELECT x FROM ck_src;
EXPLAIN RESTORE FROM '/tmp/weir-no-such-dir/savepoint-1' INSERT INTO ck_dst SELECT x FROM ck_src;
SET 'execution.savepoint.path' = '/tmp/weir-no-such-dir/savepoint-1';
INSERT INTO ck_dst SELECT x FROM ck_src;
