-- A quoted CSV field may hold line breaks and doubled quotes; a bad record
-- after one is reported at its own line.
CREATE TABLE t (id INT, name STRING, v BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/multiline.csv', 'format' = 'csv');
SELECT id, REPLACE(name, CHR(10), '/') AS name, v FROM t;
CREATE TABLE bad (id INT, name STRING, v BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'tests/data/multiline_bad.csv', 'format' = 'csv');
SELECT id, v FROM bad;
