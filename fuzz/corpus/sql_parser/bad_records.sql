CREATE TABLE skip (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/bad.csv', 'format' = 'csv', 'csv.ignore-parse-errors' = 'true');
SELECT id, v FROM skip;
CREATE TABLE strict (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/bad.csv', 'format' = 'csv');
SELECT id, v FROM strict;
CREATE TABLE latin1 (id INT, name STRING, v BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'tests/data/not_utf8.csv', 'format' = 'csv');
SELECT id, v FROM latin1;
