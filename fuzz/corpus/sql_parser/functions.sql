-- Flink's scalar functions that DataFusion lacks.
SELECT DATE_FORMAT(TIMESTAMP '2015-07-15 09:05:03.120', 'yyyy-MM-dd') AS d,
       DATE_FORMAT(TIMESTAMP '2015-07-15 09:05:03.120', 'HH:mm') AS hm,
       DATE_FORMAT(TIMESTAMP '2015-07-15 09:05:03.120', 'yyyy-MM-dd''T''HH:mm:ss.SSS') AS iso,
       DATE_FORMAT('2015-07-15 23:59:59', 'd MMM yy, h a') AS from_string;
SELECT REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 2) AS g2,
       REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)') AS whole,
       REGEXP_EXTRACT('https://www.nexmark.com/a/b?channel_id=1234&x=1', '(&|^|\?)channel_id=([^&]*)', 2) AS channel_id,
       REGEXP_EXTRACT('nothing here', 'x(y)', 1) AS no_match;
SELECT SPLIT_INDEX('https://www.nexmark.com/a/b/c', '/', 3) AS dir1,
       SPLIT_INDEX('https://www.nexmark.com/a/b/c', '/', 5) AS dir3,
       SPLIT_INDEX('a,b', ',', 7) AS missing,
       SPLIT_INDEX(CAST(NULL AS STRING), ',', 0) AS null_input;
CREATE TABLE e (id INT, name STRING, v BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');
SELECT id, DATE_FORMAT(ts, 'HH:mm:ss') AS t, SPLIT_INDEX(name, 'a', 0) AS head FROM e WHERE id < 4;
SELECT REGEXP_EXTRACT('abc', '(', 1) AS bad;
SELECT REGEXP_EXTRACT('abc', '(b)', 3) AS no_such_group;
SELECT DATE_FORMAT(TIMESTAMP '2015-07-15 09:05:03', 'yyyy-QQ') AS bad_pattern;
SELECT MOD(1234, 123) AS m, MOD(-7, 3) AS neg, MOD(7.5, 2) AS f, MOD(CAST(NULL AS BIGINT), 3) AS n;
SELECT MOD(5, 0) AS by_zero;
