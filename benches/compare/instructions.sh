#!/usr/bin/env bash
# Instructions per step of flux_bench, counted by callgrind: repeatable for one binary whatever
# else the machine is doing, so two builds can be compared on a busy machine.
#
#   benches/compare/instructions.sh [FLUX_BENCH]   # default: target/release/examples/flux_bench
#
# Each figure is the marginal cost of a step: (instructions at 2,000 steps - at 1,000) / 1,000,
# so that start-up and the first commit do not count. Both count from the start of the timed part
# (callgrind's --zero-before at `Profiled::start`), so that `replay N` leaves out the recording of
# the crashed log it replays; the load of that log is counted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bench=${1:-target/release/examples/flux_bench}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

total() { # FILE VALGRIND_OPTION WORKLOAD N -> the total of the last callgrind dump
    local file=$1 option=$2
    shift 2
    valgrind --tool=callgrind --callgrind-out-file="$out/$file.%p" "$option" "$bench" "$@" >/dev/null 2>"$out/$file.log"
    grep -h '^totals:' "$out/$file".* | tail -1 | awk '{print $2}'
}

per_step() { # LABEL VALGRIND_OPTION WORKLOAD
    local label=$1 option=$2 workload=$3
    local small large
    small=$(total "$workload-1000" "$option" "$workload" 1000)
    large=$(total "$workload-2000" "$option" "$workload" 2000)
    echo "$label: $(((large - small) / 1000)) instructions per step ($small at 1,000 steps, $large at 2,000)"
}

# `sequential N` runs in the default durability.
per_step "sequential 1000 default" --zero-before=flux_bench::Profiled::start sequential
per_step "replay 1000" --zero-before=flux_bench::Profiled::start replay
