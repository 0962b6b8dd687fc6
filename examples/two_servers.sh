#!/usr/bin/env bash
# Two flux servers on one PostgreSQL database, and what happens when one dies.
#
#   examples/two_servers.sh
#
# Uses the database FLUX_DATABASE_URL names (postgres://...), or starts a throwaway PostgreSQL
# cluster with .ci/postgres (installing PostgreSQL from Debian's packages if it is missing, which
# needs root) and stops it at the end.
#
# 1. Servers A and B start on the same database, with the same bootstrap token and encryption key.
# 2. A worker connects to B only. A run of hello_world submitted through A is claimed by that
#    worker through B, and A answers it.
# 3. count_slowly (five one-second tasks) is started through A; once its worker is in it, server B
#    is killed (kill -9) with its worker. A worker connects to A; once B's lease on the claim runs
#    out (FLUX_WORKERS__LEASE_TIMEOUT, 5 s here), A takes the execution back, its new worker
#    replays the tasks already done and runs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ -n "${started_postgres:-}" ]; then .ci/postgres stop "$FLUX_TEST_POSTGRES_DIR" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ -z "${FLUX_DATABASE_URL:-}" ]; then
    say "starting a throwaway PostgreSQL (.ci/postgres start)"
    eval "$(.ci/postgres start)"
    started_postgres=1
    export FLUX_DATABASE_URL="$FLUX_TEST_POSTGRES_URL"
fi

say "building the flux CLI (features cli, postgres) and the worker example"
cargo build -q -p flux --features cli,postgres --bin flux
cargo build -q -p flux-suite --features server --example worker
flux=target/debug/flux
worker=target/debug/examples/worker

export FLUX_WORKERS__BOOTSTRAP_TOKEN=two-servers-example-bootstrap
export FLUX_SECURITY__ADMIN_TOKEN=two-servers-example-admin
export FLUX_SECURITY__ENCRYPTION_KEY=5e1f0a9c3b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f
export FLUX_WORKERS__LEASE_TIMEOUT=5s
export RUST_LOG=${RUST_LOG:-warn}
home=$(mktemp -d)
port_a=$(free_port)
port_b=$(free_port)
url_a=http://127.0.0.1:$port_a
url_b=http://127.0.0.1:$port_b

say "server A on $url_a and server B on $url_b, both on the same database"
FLUX_HOME=$home/a $flux start server --host 127.0.0.1 --port "$port_a" >"$home/a.log" 2>&1 &
pids+=($!)
disown
FLUX_HOME=$home/b $flux start server --host 127.0.0.1 --port "$port_b" >"$home/b.log" 2>&1 &
pid_b=$!
disown
pids+=($pid_b)

say "a worker connects to server B only"
$worker "$url_b" worker-on-b 2>"$home/worker-b.log" &
pid_worker_b=$!
disown
pids+=($pid_worker_b)

# Server A lists the workflows the worker registered with B (the catalog is in the database).
for _ in $(seq 1 300); do
    if $flux --server-url "$url_a" workflow list 2>/dev/null | grep -q count_slowly; then break; fi
    sleep 0.1
done
$flux --server-url "$url_a" workflow list

say "hello_world submitted through A, run by the worker on B"
$flux --server-url "$url_a" workflow run hello_world World

say "count_slowly 5 started through A"
id=$($flux --server-url "$url_a" --format json workflow run count_slowly 5 --mode async |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["execution_id"])')
echo "execution $id"
for _ in $(seq 1 300); do
    if $flux --server-url "$url_a" --format json workflow status count_slowly "$id" --detailed |
        grep -q TASK_COMPLETED; then break; fi
    sleep 0.1
done

say "kill -9 server B and its worker, in the middle of count_slowly"
kill -9 "$pid_b" "$pid_worker_b"
$worker "$url_a" worker-on-a 2>"$home/worker-a.log" &
pids+=($!)
disown

say "waiting for A to take the execution back (lease 5 s) and its worker to finish it"
for _ in $(seq 1 600); do
    state=$($flux --server-url "$url_a" --format json workflow status count_slowly "$id" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])')
    if [ "$state" = COMPLETED ]; then break; fi
    sleep 0.1
done
$flux --server-url "$url_a" --format json workflow status count_slowly "$id" --detailed | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("state:", s["state"], " output:", s["output"])
for e in s["events"]:
    if e["type"] in ("WORKFLOW_CLAIMED", "WORKFLOW_SCHEDULED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"):
        print(" ", e["type"], e.get("value", ""))
'
say "done: logs in $home"
