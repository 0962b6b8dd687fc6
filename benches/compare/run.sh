#!/usr/bin/env bash
# Side-by-side benchmark of flux against the Python engine Flux (flux-core 0.87.5) and against
# SQLite's own limit (a raw rusqlite loop of commits), on this machine, in one run.
#
#   benches/compare/run.sh            # 5 runs of every workload (about 6 minutes)
#   RUNS=3 benches/compare/run.sh     # fewer runs
#
# It builds the flux side (`flux_bench`, release), installs flux-core in a Python 3.12 virtualenv
# (benches/compare/setup_python.sh), runs every workload RUNS times, and prints one table of
# per-step medians with the flux/Python and flux/limit ratios and the targets. The raw results
# (one JSON line per run) are kept in target/compare/results.jsonl.
# It is a benchmark, not a test: nothing here runs in CI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=${RUNS:-5}
out_dir=${FLUX_COMPARE_DIR:-target/compare}
mkdir -p "$out_dir"
results=$out_dir/results.jsonl
: >"$results"

echo "building flux_bench (release)..." >&2
cargo build --release --quiet -p flux-suite --features server --example flux_bench
flux=target/release/examples/flux_bench
py=$(benches/compare/setup_python.sh | tail -1)

# run SIDE LABEL COMMAND...: runs COMMAND $runs times, tagging each JSON line with SIDE and LABEL.
run() {
    local side=$1 label=$2
    shift 2
    for ((i = 1; i <= runs; i++)); do
        echo "  $side $label ($i/$runs)" >&2
        local line
        line=$("$@")
        echo "{\"side\": \"$side\", \"label\": \"$label\", \"result\": $line}" >>"$results"
    done
}

echo "running $runs runs of each workload..." >&2
run limit raw-normal "$flux" raw 2000 normal
run limit raw-full "$flux" raw 300 full
run limit raw-batch100 "$flux" raw 100000 normal-batch100
run flux sequential "$flux" sequential 1000 default
run flux sequential-full "$flux" sequential 300 full
run flux sequential-batched "$flux" sequential 10000 batched
run flux map "$flux" map 1000
run flux map-10k "$flux" map 10000
run flux parallel "$flux" parallel 100
run flux parallel-10k "$flux" parallel 10000
run flux replay "$flux" replay 1000
run flux sequential-100k "$flux" sequential 100000 default
run flux server "$flux" server 100
run flux server-50x100 "$flux" server-concurrent 50 100
run python sequential "$py" benches/compare/python/bench_flux.py sequential 1000
run python map "$py" benches/compare/python/bench_flux.py map 1000
run python parallel "$py" benches/compare/python/bench_flux.py parallel 100
run python replay "$py" benches/compare/python/bench_flux.py replay 1000
run python server "$py" benches/compare/python/bench_flux.py server 100

python3 benches/compare/table.py "$results"
