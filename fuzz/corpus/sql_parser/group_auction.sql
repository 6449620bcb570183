-- Not in the Nexmark suite: an updating aggregate, bids and top price per
-- auction over all time (the Flink peer's query "d").
CREATE TABLE nexmark_group (
    auction BIGINT,
    bids BIGINT,
    top_price BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_group
SELECT auction, count(*) AS bids, max(price) AS top_price
FROM bid
GROUP BY auction;
