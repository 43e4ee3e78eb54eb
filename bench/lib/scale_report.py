#!/usr/bin/env python3
"""The tables of bench/scale: each scenario on the empty and the seeded database, with the
seeded one's share of the empty one's throughput and p99, then the purge under load.

    scale_report.py RUNS PURGES OUT_JSON     (machine and sizes from the environment)
"""

import datetime
import json
import os
import sys

SCENARIOS = [
    ("cc_opaque", "client credentials, opaque token"),
    ("cc_jwt", "client credentials, JWT (ES256)"),
    ("introspect_opaque", "introspection of an opaque token"),
    ("api_jwt", "protected API call, JWT bearer"),
]
# The bar: at scale, throughput and p99 within 80 % of the empty database's.
BAR = 0.80


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def share(seeded, empty):
    return seeded / empty if empty else None


def slices(runs, backend, phase):
    chosen = [r for r in runs if r["system"] == f"{backend}-purge" and r["scenario"] == phase
              and r.get("status") == "ok"]
    if not chosen:
        return None
    requests = sum(r["requests"] for r in chosen)
    seconds = sum(r["duration_s"] for r in chosen)
    return {
        "slices": len(chosen),
        "requests_per_s": round(requests / seconds, 1) if seconds else 0.0,
        # The worst one-second slice: a p99 over all slices would dilute a short stall.
        "p99_ms_worst_slice": max(r["latency_ms"]["p99"] for r in chosen),
        "max_ms": max(r["latency_ms"]["max"] for r in chosen),
        "errors": sum(r["errors"] for r in chosen),
    }


def main():
    runs, purges = load(sys.argv[1]), load(sys.argv[2])
    e = os.environ
    by = {(r["system"], r["scenario"], r["connections"]): r for r in runs}
    backends = sorted({r["system"].rsplit("-", 1)[0] for r in runs}, key=lambda b: b != "sqlite")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "size": e["SIZE"], "applications": int(e["APPLICATIONS"]), "users": int(e["USERS"]),
        "tokens": int(e["TOKENS"]), "purge_rows": int(e["PURGE_ROWS"]),
        "duration_s": int(e["DURATION"]), "warmup_s": int(e["WARMUP"]),
        "commit": e["COMMIT"], "cpu_model": e["CPU_MODEL"], "nproc": int(e["NPROC"]),
        "idle_busy_percent": int(e["IDLE_BUSY"]),
    }
    print(f"Gatehouse at scale ({meta['size']}: {meta['applications']:,} applications, "
          f"{meta['users']:,} users, {meta['tokens']:,} access and refresh tokens; "
          f"{meta['duration_s']} s per run after a {meta['warmup_s']} s warm-up, wrk -t2 --latency)")
    print(f"Date {meta['date']}; commit {meta['commit']}; {meta['nproc']} cores "
          f"({meta['cpu_model']}); machine {meta['idle_busy_percent']}% busy before the runs")
    print()
    header = (f"{'backend':<9} {'scenario':<34} {'conns':>5}  {'empty req/s':>11} {'p99 ms':>7}  "
              f"{'seeded req/s':>12} {'p99 ms':>7}  {'req/s':>6} {'p99':>6}  {'errors':>6}")
    print(header)
    print("-" * len(header))
    rows, below = [], []
    for backend in backends:
        for scenario, description in SCENARIOS:
            for conns in sorted({r["connections"] for r in runs if r["scenario"] == scenario}):
                empty = by.get((f"{backend}-empty", scenario, conns))
                seeded = by.get((f"{backend}-seeded", scenario, conns))
                if not (empty and seeded and empty["status"] == "ok" == seeded["status"]):
                    print(f"{backend:<9} {description:<34} {conns:>5}  not measured")
                    continue
                throughput = share(seeded["requests_per_s"], empty["requests_per_s"])
                # Latency: the empty database's p99 over the seeded one's, so that for both
                # shares 1.00 is "as fast as empty" and below 0.80 misses the bar.
                latency = share(empty["latency_ms"]["p99"], seeded["latency_ms"]["p99"])
                errors = empty["errors"] + seeded["errors"]
                flag = ""
                if (throughput or 0) < BAR or (latency or 0) < BAR:
                    flag = "  < 80%"
                    below.append(f"{backend} {scenario} c{conns}")
                print(f"{backend:<9} {description:<34} {conns:>5}  {empty['requests_per_s']:>11,.0f} "
                      f"{empty['latency_ms']['p99']:>7.2f}  {seeded['requests_per_s']:>12,.0f} "
                      f"{seeded['latency_ms']['p99']:>7.2f}  {throughput:>6.2f} {latency:>6.2f}  "
                      f"{errors:>6}{flag}")
                rows.append({"backend": backend, "scenario": scenario, "connections": conns,
                             "empty": empty, "seeded": seeded,
                             "throughput_share": round(throughput, 3),
                             "p99_share": round(latency, 3)})
    print()
    print("req/s and p99 shares: seeded throughput / empty throughput, and empty p99 / seeded p99;")
    print("1.00 is as fast as on the empty database, below 0.80 misses the bar (marked).")
    if below:
        print("Below the bar: " + ", ".join(below))

    print()
    print(f"Purge of {meta['purge_rows']:,} expired tokens while client-credentials requests "
          f"(opaque tokens, 16 connections) run in one-second slices:")
    header = (f"{'backend':<9} {'purged':>9} {'seconds':>8}  {'phase':<7} {'slices':>6} "
              f"{'req/s':>8} {'worst p99 ms':>12} {'max ms':>8} {'errors':>6}")
    print(header)
    print("-" * len(header))
    purge_rows = []
    for purge in purges:
        backend = purge["backend"]
        row = {"backend": backend, "purge": purge,
               "before": slices(runs, backend, "before"), "during": slices(runs, backend, "during")}
        purge_rows.append(row)
        done = purge.get("status") != "unfinished"
        purged = f"{purge['purged']:,}" if done else "unfinished"
        seconds = f"{purge['purge_seconds']:.1f}" if done else "-"
        for phase in ("before", "during"):
            s = row[phase]
            if s is None:
                print(f"{backend:<9} {purged:>9} {seconds:>8}  {phase:<7} no slice")
                purged = seconds = ""
                continue
            print(f"{backend:<9} {purged:>9} {seconds:>8}  {phase:<7} {s['slices']:>6} "
                  f"{s['requests_per_s']:>8,.0f} {s['p99_ms_worst_slice']:>12.2f} "
                  f"{s['max_ms']:>8.2f} {s['errors']:>6}")
            purged = seconds = ""
    print()
    print("before: three slices just before the purge; during: every slice that started while it")
    print("ran (none when the purge ended before the first one began).")
    print("worst p99 ms: the highest p99 of any one-second slice; max ms: the slowest request.")

    with open(sys.argv[3], "w") as f:
        json.dump({"meta": meta, "rows": rows, "purges": purge_rows}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
