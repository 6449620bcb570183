-- Values that cannot work are refused where they are given, naming the key
-- and what it accepts.
CREATE TABLE a (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0');
CREATE TABLE b (x INT) WITH ('connector' = 'datagen', 'fields.x.min' = '10', 'fields.x.max' = '5');
CREATE TABLE c (x INT) WITH ('connector' = 'datagen', 'fields.x.max' = '3000000000');
CREATE TABLE d (x TINYINT) WITH ('connector' = 'datagen', 'fields.x.min' = '-200');
CREATE TABLE e (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.null-rate' = '1.5');
SET 'execution.checkpointing.timeout' = '0';
SET 'rest.port' = '99999';
CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole');
SET 'pipeline.max-parallelism' = '4';
SET 'parallelism.default' = '8';
INSERT INTO o SELECT x FROM g;
