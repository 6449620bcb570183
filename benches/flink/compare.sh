#!/usr/bin/env bash
# Side by side with Apache Flink: the same four queries over the same CSV of
# 5,000,000 bids, at the same parallelism, one after the other on this
# machine. Flink runs through the peer scripts in ../shared/peers/flink (see
# its README.txt: PyFlink 2.3 in $PEER_DIR/venv, data from gen_bids.py).
#
#   PEER_DIR=/work/flinkpeer bash benches/flink/compare.sh [queries] [parallelisms]
#
# Prints one line per run: engine query p rows seconds rows/s. Weir's time is
# the wall time of `weir run` (process start included); Flink's is the job's
# wall time as run_flink.py reports it (mini-cluster start included, JVM
# start excluded).
set -euo pipefail
cd "$(dirname "$0")/../.."
PEER=${PEER:-../shared/peers/flink}
PEER_DIR=${PEER_DIR:?set PEER_DIR to the Flink peer directory}
QUERIES=${1:-"a b c d"}
PARALLELISMS=${2:-"1 2"}
WEIR=${WEIR:-${CARGO_TARGET_DIR:-target}/release/weir}
export PEER_DIR

sink_columns() {
    case $1 in
        a) echo "auction BIGINT, price_eur DOUBLE, bidder BIGINT, date_time TIMESTAMP(3)" ;;
        b) echo "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, max_price BIGINT" ;;
        c) echo "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), num BIGINT" ;;
        d) echo "auction BIGINT, bids BIGINT, max_price BIGINT" ;;
    esac
}

# The query texts are the peer's own (run_flink.py QUERIES).
query_text() {
    "$PEER_DIR/venv/bin/python" - "$1" <<PY
import sys, importlib.util
spec = importlib.util.spec_from_file_location("rf", "$PEER/run_flink.py")
rf = importlib.util.module_from_spec(spec); spec.loader.exec_module(rf)
print(rf.QUERIES[sys.argv[1]])
PY
}

ROWS=$(wc -l < "$PEER_DIR/bids.csv")
for q in $QUERIES; do
    for p in $PARALLELISMS; do
        input="$PEER_DIR/bids.csv"
        flink_input=()
        if [ "$p" -gt 1 ] && [ -d "$PEER_DIR/bids_split" ]; then
            input="$PEER_DIR/bids_split"
            flink_input=(--input "$PEER_DIR/bids_split")
        fi
        job=$(mktemp --suffix .sql)
        cat > "$job" <<SQL
SET 'parallelism.default' = '$p';
CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '$input', 'format' = 'csv');
CREATE TABLE sink ($(sink_columns "$q")) WITH ('connector' = 'blackhole');
INSERT INTO sink $(query_text "$q");
SQL
        start=$(date +%s.%N)
        "$WEIR" run "$job" >/dev/null 2>&1
        end=$(date +%s.%N)
        rm -f "$job"
        awk -v q="$q" -v p="$p" -v r="$ROWS" -v s="$start" -v e="$end" \
            'BEGIN { t = e - s; printf "weir  %s %s %d %.2f %.0f\n", q, p, r, t, r / t }'
        line=$("$PEER_DIR/venv/bin/python" "$PEER/run_flink.py" "$q" "$p" "${flink_input[@]}" 2>/dev/null)
        echo "flink $line" | awk '{ split($2, l, "/"); printf "flink %s %s %d %.2f %.0f\n", l[1], substr(l[2], 2), $3, $4, $5 }'
    done
done
