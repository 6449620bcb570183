-- Flink's catalog statements: one catalog, one database, as in a fresh
-- Flink session; SHOW CREATE reproduces the DDL.
CREATE TABLE events (
    id INT NOT NULL,
    name STRING,
    v BIGINT,
    ts TIMESTAMP(3),
    v2 AS v * 2,
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND,
    PRIMARY KEY (id) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
CREATE VIEW big AS SELECT id, v FROM events WHERE v > 10;
SHOW CREATE TABLE events;
SHOW CREATE VIEW big;
SHOW CREATE TABLE big;
SHOW CREATE VIEW events;
SHOW CREATE TABLE nosuch;
SHOW COLUMNS FROM events;
SHOW COLUMNS FROM events LIKE 'v%';
SHOW COLUMNS IN events NOT LIKE '%s';
SHOW COLUMNS FROM big;
SHOW CATALOGS;
SHOW CURRENT CATALOG;
SHOW DATABASES;
SHOW CURRENT DATABASE;
USE CATALOG default_catalog;
USE default_database;
USE other;
USE CATALOG hive;
SHOW USER FUNCTIONS;
SHOW COLUMNS events;
