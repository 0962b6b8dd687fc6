#!/usr/bin/env bash
# Side-by-side benchmark of flux against the Python engine Flux (flux-core 0.87.5) and against
# SQLite's own limit (a raw rusqlite loop of commits), on this machine, in one run.
#
#   benches/compare/run.sh            # 5 runs of every workload (about 2½ minutes here, plus the
#                                     # first set-up of the Python side)
#   RUNS=3 benches/compare/run.sh     # fewer runs
#   BASELINE=../other/target/release/examples/flux_bench benches/compare/run.sh
#                                     # also runs another build's flux_bench on the same workloads,
#                                     # interleaved, and prints this build against it
#   PYTHON=0 benches/compare/run.sh   # leaves the Python side out
#   POSTGRES=0 benches/compare/run.sh # leaves the PostgreSQL workloads out (they use the server
#                                     # FLUX_TEST_POSTGRES_URL names, or a throwaway cluster
#                                     # made with .ci/postgres)
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

features=server
if [[ ${POSTGRES:-1} != 0 ]]; then
    features=server,postgres
    if [[ -z ${FLUX_TEST_POSTGRES_URL:-} ]]; then
        eval "$(.ci/postgres start)"
        trap '.ci/postgres stop "$FLUX_TEST_POSTGRES_DIR" >/dev/null 2>&1 || true' EXIT
    fi
fi
echo "building flux_bench (release)..." >&2
cargo build --release --quiet -p flux-suite --features "$features" --example flux_bench
flux=target/release/examples/flux_bench
if [[ ${PYTHON:-1} != 0 ]]; then
    py=$(benches/compare/setup_python.sh | tail -1)
fi
baseline=${BASELINE:-}
if [[ -n $baseline && ! -x $baseline ]]; then
    echo "BASELINE=$baseline is not an executable flux_bench" >&2
    exit 1
fi

# Every workload, each run once: SIDE LABEL COMMAND... per line. The runs are interleaved (run 1
# of everything, then run 2, ...) so that a drift of the machine, fsync latency above all, weighs
# on flux, Python and the limit alike.
workloads=(
    "limit raw-normal $flux raw 2000 normal"
    "limit raw-full $flux raw 300 full"
    "limit raw-batch100 $flux raw 100000 normal-batch100"
    "limit raw-step-normal $flux raw 1000 normal-step"
    "limit raw-step-full $flux raw 300 full-step"
    "flux sequential $flux sequential 1000 default"
    "flux sequential-full $flux sequential 300 full"
    "flux sequential-batched $flux sequential 10000 batched"
    "flux map $flux map 1000"
    "flux map-10k $flux map 10000"
    "flux parallel $flux parallel 100"
    "flux parallel-10k $flux parallel 10000"
    "flux replay $flux replay 1000"
    "flux sequential-100k $flux sequential 100000 default"
    "flux server $flux server 100"
    "flux server-50x100 $flux server-concurrent 50 100"
)
if [[ ${POSTGRES:-1} != 0 ]]; then
    workloads+=(
        "limit pg-raw-default $flux pg-raw 1000 default"
        "limit pg-raw-full $flux pg-raw 300 full"
        "flux pg-sequential $flux pg-sequential 1000 default"
        "flux pg-sequential-full $flux pg-sequential 300 full"
        "flux pg-servers-1 $flux pg-servers 1 50 100"
        "flux pg-servers-3 $flux pg-servers 3 50 100"
    )
fi
if [[ ${PYTHON:-1} != 0 ]]; then
    workloads+=(
        "python sequential $py benches/compare/python/bench_flux.py sequential 1000"
        "python map $py benches/compare/python/bench_flux.py map 1000"
        "python parallel $py benches/compare/python/bench_flux.py parallel 100"
        "python replay $py benches/compare/python/bench_flux.py replay 1000"
        "python server $py benches/compare/python/bench_flux.py server 100"
    )
fi
# The other build runs each flux workload next to this build's, so that both meet the same state
# of the machine; which of the two goes first alternates from run to run.
swapped=("${workloads[@]}")
if [[ -n $baseline ]]; then
    paired=()
    swapped=()
    for workload in "${workloads[@]}"; do
        read -r side label command <<<"$workload"
        if [[ $side == flux ]]; then
            other="baseline $label $baseline ${command#"$flux" }"
            paired+=("$workload" "$other")
            swapped+=("$other" "$workload")
        else
            paired+=("$workload")
            swapped+=("$workload")
        fi
    done
    workloads=("${paired[@]}")
fi

for ((i = 1; i <= runs; i++)); do
    order=("${workloads[@]}")
    if ((i % 2 == 0)); then
        order=("${swapped[@]}")
    fi
    for workload in "${order[@]}"; do
        read -r side label command <<<"$workload"
        echo "  run $i/$runs: $side $label" >&2
        # shellcheck disable=SC2086 # the command line is split into words on purpose
        line=$($command)
        echo "{\"side\": \"$side\", \"label\": \"$label\", \"result\": $line}" >>"$results"
    done
done

python3 benches/compare/table.py "$results"
