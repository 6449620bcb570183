#!/usr/bin/env bash
# Side by side with Apache Flink on joins: a regular join (bids with their
# auction's category) and an interval join (bids on one auction within
# 100 ms), over the same bids CSV (the Flink peer's gen_bids.py) and an
# auctions CSV made from it, at the same parallelism, one after the other.
#
#   PEER_DIR=/work/flinkpeer bash benches/flink/compare_joins.sh [bids.csv] [parallelisms]
#
# Prints one line per run: engine query p rows seconds rows/s cpu-seconds
# (and, for Weir, peak resident memory in MB: the interval join keeps only
# 100 ms of bids, the regular join every bid).
# Weir's figures are those of the whole `weir run` process; Flink's are the
# job's wall time and the JVM's CPU time during it (JVM start excluded).
set -euo pipefail
cd "$(dirname "$0")/../.."
PEER_DIR=${PEER_DIR:?set PEER_DIR to the Flink peer directory}
BIDS=${1:-$PEER_DIR/bids.csv}
PARALLELISMS=${2:-"1 2"}
WEIR=${WEIR:-${CARGO_TARGET_DIR:-target}/release/weir}
PY="$PEER_DIR/venv/bin/python"
AUCTIONS="$PEER_DIR/auctions.csv"
# Every auction id of the bids, with a category.
cut -d, -f1 "$BIDS" | sort -un | awk '{ print $1 "," $1 % 10 }' > "$AUCTIONS"
ROWS=$(wc -l < "$BIDS")

for q in regular interval; do
    case $q in
        regular) sink="auction BIGINT, price BIGINT, category BIGINT" ;;
        interval) sink="auction BIGINT, price BIGINT, other_price BIGINT" ;;
    esac
    query=$("$PY" benches/flink/run_joins.py "$q" 1 --bids "$BIDS" --auctions "$AUCTIONS" --print-query)
    for p in $PARALLELISMS; do
        job=$(mktemp --suffix .sql)
        cat > "$job" <<SQL
SET 'parallelism.default' = '$p';
SET 'rest.port' = '0';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '$BIDS', 'format' = 'csv');
CREATE TABLE auctions (id BIGINT, category BIGINT)
WITH ('connector' = 'filesystem', 'path' = '$AUCTIONS', 'format' = 'csv');
CREATE TABLE sink ($sink) WITH ('connector' = 'blackhole');
INSERT INTO sink $query;
SQL
        timing=$(mktemp)
        /usr/bin/time -o "$timing" -f "%e %U %S %M" "$WEIR" run "$job" >/dev/null 2>&1
        times=$(tail -1 "$timing")
        rm -f "$job" "$timing"
        echo "$times" | awk -v q="$q" -v p="$p" -v r="$ROWS" \
            '{ printf "weir  %s %s %d %.2f %.0f %.2f %.0f\n", q, p, r, $1, r / $1, $2 + $3, $4 / 1024 }'
        "$PY" benches/flink/run_joins.py "$q" "$p" --bids "$BIDS" --auctions "$AUCTIONS" 2>/dev/null \
            | awk '{ printf "flink %s %s %d %.2f %.0f %.2f\n", $1, $2, $3, $4, $3 / $4, $5 }'
    done
done
