#!/usr/bin/env python3
"""The join queries of benches/flink/compare_joins.sh on Apache Flink (PyFlink,
local mini-cluster, streaming mode), over the peer's bids CSV.

  $PEER_DIR/venv/bin/python benches/flink/run_joins.py QUERY PARALLELISM --bids FILE --auctions FILE

QUERY: `regular` (bids with their auction's category: an inner regular join,
every bid kept in state) or `interval` (pairs of bids on one auction by
different bidders within 100 ms: an interval join).

Prints one line on stdout: <query> <parallelism> <input rows> <job seconds>
<JVM CPU seconds>. The job time runs from submitting the INSERT (which also
starts the mini-cluster) to the job's end.
"""
import argparse
import os
import sys
import time

# The same text Weir runs (compare_joins.sh reads it from here).
QUERIES = {
    "regular": "SELECT b.auction, b.price, a.category FROM bids AS b "
               "JOIN auctions AS a ON b.auction = a.id",
    "interval": "SELECT x.auction, x.price, y.price AS other_price FROM bids AS x "
                "JOIN bids AS y ON x.auction = y.auction AND x.bidder <> y.bidder "
                "AND x.date_time BETWEEN y.date_time - INTERVAL '0.1' SECOND AND y.date_time",
}

SINKS = {
    "regular": "auction BIGINT, price BIGINT, category BIGINT",
    "interval": "auction BIGINT, price BIGINT, other_price BIGINT",
}

BIDS = """CREATE TABLE bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'file://{path}', 'format' = 'csv')"""

AUCTIONS = """CREATE TABLE auctions (id BIGINT, category BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'file://{path}', 'format' = 'csv')"""


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("query", choices=sorted(QUERIES))
    ap.add_argument("parallelism", type=int)
    ap.add_argument("--bids", required=True)
    ap.add_argument("--auctions", required=True)
    ap.add_argument("--print-query", action="store_true", help="print the query text and exit")
    a = ap.parse_args()
    if a.print_query:
        print(QUERIES[a.query])
        return
    with open(a.bids, "rb") as f:
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))

    from pyflink.table import EnvironmentSettings, TableEnvironment
    from pyflink.java_gateway import get_gateway

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", str(a.parallelism))
    env.execute_sql(BIDS.format(path=os.path.abspath(a.bids)))
    env.execute_sql(AUCTIONS.format(path=os.path.abspath(a.auctions)))
    env.execute_sql("CREATE TABLE sink (%s) WITH ('connector' = 'blackhole')" % SINKS[a.query])
    pid = int(get_gateway().jvm.java.lang.ProcessHandle.current().pid())
    cpu0 = cpu_seconds(pid)
    t0 = time.time()
    env.execute_sql("INSERT INTO sink " + QUERIES[a.query]).wait()
    secs = time.time() - t0
    cpu = cpu_seconds(pid) - cpu0
    print("%s %d %d %.2f %.2f" % (a.query, a.parallelism, rows, secs, cpu))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
