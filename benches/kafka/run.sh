#!/usr/bin/env bash
# Kafka throughput, in one run so the ratios mean something on a shared
# machine: the same JSON rows read from a Kafka topic and from a file into
# `blackhole`, and Kafka → Kafka with exactly-once (checkpoints every 1 s)
# against at-least-once without checkpoints.
#
#   WEIR=<release weir> ROWS=2000000 bash benches/kafka/run.sh
#
# Needs noida-db (see the README) and kafka-python in its venv for topic
# creation (`~/.cache/weir/noida-venv/bin/pip install kafka-python`).
set -euo pipefail
WEIR="${WEIR:-target/release/weir}"
ROWS="${ROWS:-2000000}"
VENV="$HOME/.cache/weir/noida-venv"
NOIDA="$("$VENV/bin/python" -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')"
work="$(mktemp -d)"
port=19871
"$NOIDA" start --only kafka --kafka-port $port --data-dir "$work/broker" >/dev/null 2>&1 &
trap 'pkill -f "$work/broker" || true; rm -rf "$work"' EXIT
sleep 1
bs="127.0.0.1:$port"
"$VENV/bin/python" - "$bs" <<'PY'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers=sys.argv[1])
a.create_topics([NewTopic(t, 3, 1) for t in ("input", "out_eos", "out_alo")])
PY
now=$(( $(date +%s) * 1000 - 3600000 ))
# The rows, as a JSON file and (through Weir's at-least-once sink) as a topic.
"$VENV/bin/python" - "$work/rows.json" "$ROWS" "$now" <<'PY'
import sys, random
random.seed(42)
path, n, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    for i in range(n):
        f.write('{"id":%d,"name":"k%d","v":%d,"ms":%d}\n' % (i, random.randrange(300), random.randrange(100), base + i))
PY
table() { # name connector-options
    echo "CREATE TABLE $1 (id BIGINT, name STRING, v BIGINT, ms BIGINT, ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ($2);"
}
kafka="'connector' = 'kafka', 'properties.bootstrap.servers' = '$bs', 'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
file="'connector' = 'filesystem', 'path' = '$work/rows.json', 'format' = 'json'"
run() { # label sql
    echo "SET 'rest.port' = '0'; SET 'parallelism.default' = '1'; $2" > "$work/job.sql"
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$WEIR" run "$work/job.sql" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
    read -r wall user sys rss < "$work/time"
    awk -v l="$1" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v n="$ROWS" \
        'BEGIN { printf "%-40s %7.2f s wall %7.2f s cpu  %10.0f rows/s  %10.0f rows/s per core-second  %6.0f MB\n", l, w, u+s, n/w, n/(u+s), r/1024 }'
}
sink() { echo "CREATE TABLE $1 (id BIGINT, name STRING, v BIGINT, ms BIGINT) WITH ('connector' = 'kafka', 'topic' = '$2', 'properties.bootstrap.servers' = '$bs', 'format' = 'json', $3);"; }
run "load: file -> kafka (at-least-once)" "$(table src "$file") $(sink dst input "'sink.delivery-guarantee' = 'at-least-once'") INSERT INTO dst SELECT id, name, v, ms FROM src;"
run "file -> blackhole" "$(table src "$file") CREATE TABLE b (id BIGINT, name STRING, v BIGINT, ms BIGINT) WITH ('connector' = 'blackhole'); INSERT INTO b SELECT id, name, v, ms FROM src;"
run "kafka -> blackhole" "$(table src "$kafka, 'topic' = 'input'") CREATE TABLE b (id BIGINT, name STRING, v BIGINT, ms BIGINT) WITH ('connector' = 'blackhole'); INSERT INTO b SELECT id, name, v, ms FROM src;"
run "kafka -> kafka at-least-once, no ckpt" "$(table src "$kafka, 'topic' = 'input'") $(sink o out_alo "'sink.delivery-guarantee' = 'at-least-once'") INSERT INTO o SELECT id, name, v, ms FROM src;"
run "kafka -> kafka exactly-once, 1 s ckpt" "SET 'execution.checkpointing.interval' = '1 s'; SET 'execution.checkpointing.dir' = '$work/chk'; $(table src "$kafka, 'topic' = 'input'") $(sink o out_eos "'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'bench'") INSERT INTO o SELECT id, name, v, ms FROM src;"
