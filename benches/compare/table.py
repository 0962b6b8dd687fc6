"""Prints the table of benches/compare/run.sh from its results file (one JSON line per run).

    python3 benches/compare/table.py target/compare/results.jsonl
"""

import json
import platform
import statistics
import sys
from collections import defaultdict


def main(path):
    runs = defaultdict(list)
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        runs[(row["side"], row["label"])].append(row["result"])

    def median(side, label, field="per_step_us"):
        values = [r[field] for r in runs.get((side, label), [])]
        return statistics.median(values) if values else None

    def fmt(value, unit=" µs"):
        if value is None:
            return "–"
        return f"{value:,.1f}{unit}" if value >= 10 else f"{value:,.2f}{unit}"

    def ratio(a, b):
        return f"{a / b:,.2f}×" if a is not None and b else "–"

    def faster(flux, python):
        return f"{python / flux:,.0f}× faster" if flux and python else "–"

    limit_normal = median("limit", "raw-normal")
    limit_full = median("limit", "raw-full")
    limit_batch = median("limit", "raw-batch100")
    rows = [
        # label, workload shown, python label, limit, target text, target check
        ("sequential", "sequential 1,000, default", "sequential", limit_normal,
         "≤ 1.5 × limit; ≥ 150 × faster than Flux",
         lambda f, p, l: f <= 1.5 * l and (p is None or p / f >= 150)),
        ("sequential-full", "sequential 300, full", None, limit_full, "≤ 1.3 × limit (fsync)",
         lambda f, p, l: f <= 1.3 * l),
        ("sequential-batched", "sequential 10,000, batched", None, limit_batch, "≤ 5 µs",
         lambda f, p, l: f <= 5),
        ("map", "map 1,000", "map", None, "", None),
        ("map-10k", "map 10,000", None, None, "≤ 15 µs", lambda f, p, l: f <= 15),
        ("parallel", "parallel 100", "parallel", None, "", None),
        ("parallel-10k", "parallel 10,000", None, None, "≤ 15 µs", lambda f, p, l: f <= 15),
        ("replay", "replay 1,000", "replay", None, "≤ 2 µs", lambda f, p, l: f <= 2),
        ("server", "server + 1 worker, 100 tasks", "server", None, "≤ 1 ms (1,000 µs)",
         lambda f, p, l: f <= 1000),
    ]
    print(f"machine: {platform.node()} · {platform.machine()} · "
          f"{open('/proc/cpuinfo').read().count('processor')} CPUs · medians of "
          f"{max(len(v) for v in runs.values())} runs, µs per step")
    print()
    print("| workload | flux | Flux (Python) | flux vs Python | limit | flux / limit | target | met |")
    print("|---|---|---|---|---|---|---|---|")
    for label, shown, py_label, limit, target, check in rows:
        f = median("flux", label)
        p = median("python", py_label) if py_label else None
        met = "–"
        if check is not None and f is not None:
            met = "yes" if check(f, p, limit) else "**no**"
        print(f"| {shown} | {fmt(f)} | {fmt(p)} | {faster(f, p)} | {fmt(limit)} | {ratio(f, limit)} | "
              f"{target} | {met} |")

    # Targets that are not per-step medians against Python.
    small, large = median("flux", "sequential"), median("flux", "sequential-100k")
    rss = median("flux", "sequential-100k", "peak_rss_mb")
    conc = runs.get(("flux", "server-50x100"), [])
    throughput = statistics.median([r["n"] / r["seconds"] for r in conc]) if conc else None
    print()
    print("| target | measured | met |")
    print("|---|---|---|")
    if small and large:
        print(f"| per-step cost at 100,000 steps within 1.3 × of 1,000 | {fmt(large)} vs {fmt(small)} "
              f"({ratio(large, small)}) | {'yes' if large <= 1.3 * small else '**no**'} |")
    if rss is not None:
        print(f"| peak RSS ≤ 100 MB for one 100,000-step execution | {rss:,.1f} MB | "
              f"{'yes' if rss <= 100 else '**no**'} |")
    if throughput is not None:
        print(f"| ≥ 5,000 tasks/s with 50 concurrent executions (server + 1 worker) | "
              f"{throughput:,.0f} tasks/s | {'yes' if throughput >= 5000 else '**no**'} |")
    print()
    print("limit: raw rusqlite loop of single-row commits in WAL mode (synchronous=NORMAL for default, "
          "FULL for full); for batched, 100 rows per commit.")

    # PostgreSQL: a step against the same server's single-row commit loop, and the throughput of
    # 50 concurrent executions through one and through three servers on one database.
    pg_rows = [("pg-sequential", "sequential 1,000, default", "pg-raw-default"),
               ("pg-sequential-full", "sequential 300, full", "pg-raw-full")]
    pg_measured = [(shown, median("flux", label), median("limit", limit)) for label, shown, limit in pg_rows]
    if any(f is not None for _, f, _ in pg_measured):
        print()
        print("| PostgreSQL workload | flux | limit | flux / limit | target | met |")
        print("|---|---|---|---|---|---|")
        for shown, f, limit in pg_measured:
            met = "–" if f is None or limit is None else ("yes" if f <= 1.5 * limit else "**no**")
            print(f"| {shown} | {fmt(f)} | {fmt(limit)} | {ratio(f, limit)} | ≤ 1.5 × limit | {met} |")
        rates, cpu, busy = {}, {}, {}
        for servers in (1, 3):
            got = runs.get(("flux", f"pg-servers-{servers}"), [])
            rates[servers] = statistics.median([r["n"] / r["seconds"] for r in got]) if got else None
            cpu[servers] = median("flux", f"pg-servers-{servers}", "cpu_us_per_task") if got else None
            busy[servers] = median("flux", f"pg-servers-{servers}", "cpu_busy") if got else None
        if rates[1] and rates[3]:
            print()
            print("| 50 concurrent executions of 100 tasks | tasks/s | machine CPU per task | cores busy |")
            print("|---|---|---|---|")
            for servers, shown in ((1, "one server, one worker"), (3, "three servers on one database, one worker each")):
                print(f"| {shown} | {rates[servers]:,.0f} | {fmt(cpu[servers])} | {busy[servers]:.0%} |")
            print(f"| three / one (target ≥ 2×) | {rates[3] / rates[1]:,.2f}× "
                  f"{'(met)' if rates[3] >= 2 * rates[1] else '(**not met**)'} | | |")
        print()
        print("limit: one tokio-postgres connection committing one row the size of an event per "
              "transaction (BEGIN, INSERT, COMMIT), synchronous_commit off (default) or on (full).")

    # The log of a step holds two events (TASK_STARTED, then the result), which the limit's
    # single row does not: this shows flux against the same loop committing a step's two rows.
    step_rows = [("sequential", "sequential 1,000, default", "raw-step-normal"),
                 ("sequential-full", "sequential 300, full", "raw-step-full")]
    measured = [(shown, median("flux", label), median("limit", limit)) for label, shown, limit in step_rows]
    if any(limit is not None for _, _, limit in measured):
        print()
        print("| workload | flux | two-row limit | flux / two-row limit |")
        print("|---|---|---|---|")
        for shown, f, limit in measured:
            print(f"| {shown} | {fmt(f)} | {fmt(limit)} | {ratio(f, limit)} |")
        print()
        print("two-row limit: the same loop committing a step's TASK_STARTED and TASK_COMPLETED rows, of "
              "flux's sizes, in one INSERT per commit (no target; it shows what the second event costs).")

    # Another build run in the same harness (BASELINE=...), workload by workload.
    compared = [(label, median("flux", label), median("baseline", label))
                for side, label in sorted({key for key in runs if key[0] == "baseline"})]
    if compared:
        print()
        print("| workload | this build | baseline build | this / baseline |")
        print("|---|---|---|---|")
        for label, f, b in compared:
            print(f"| {label} | {fmt(f)} | {fmt(b)} | {ratio(f, b)} |")
        print()
        print("baseline: the build given as BASELINE, run right after this one on each workload.")


if __name__ == "__main__":
    main(sys.argv[1])
