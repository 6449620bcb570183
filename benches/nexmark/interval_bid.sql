-- Not in the suite: an interval join, pairs of bids on one auction by
-- different bidders within 100 ms. Its state holds only the bids of the
-- last 100 ms of event time (plus the watermark delay), whatever the input
-- length: compare peak RSS across --events.
CREATE TABLE nexmark_interval_bid (
    auction BIGINT,
    price BIGINT,
    other_price BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_interval_bid
SELECT x.auction, x.price, y.price AS other_price
FROM bid AS x JOIN bid AS y ON x.auction = y.auction AND x.bidder <> y.bidder
  AND x.dateTime BETWEEN y.dateTime - INTERVAL '0.1' SECOND AND y.dateTime;
