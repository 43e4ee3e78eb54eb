#!/usr/bin/env python3
"""Measurement and report for bench/instances (Python standard library and psql only).

  measure OUT DB_URL SECONDS CONNS LUA URL:PID [URL:PID ...]
      runs one wrk per instance at the same time (CONNS connections split evenly), and appends
      one JSON line to OUT: requests, errors and latency of all of them, the CPU time of every
      instance, and the database's committed and rolled-back transactions and inserted rows
      (pg_stat_database) over the run.
  report RUNS META
      prints the table.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import process_cpu  # noqa: E402


def db_counters(url):
    # The statistics of the database the URL names, read through psql; the counters lag by the
    # statistics collector's flush, so the caller waits a moment before the second reading.
    out = subprocess.run(
        ["psql", url, "-qAt", "-c",
         "select xact_commit + xact_rollback, tup_inserted, tup_updated + tup_deleted "
         "from pg_stat_database where datname = current_database()"],
        check=True, capture_output=True, text=True).stdout.strip()
    xacts, inserted, changed = (int(v) for v in out.split("|"))
    return {"transactions": xacts, "inserted": inserted, "changed": changed}


def cmd_measure(args):
    out, db_url, seconds, conns, lua = args[:5]
    targets = [t.rsplit(":", 1) for t in args[5:]]
    per = max(1, int(conns) // len(targets))
    pids = [int(pid) for _, pid in targets]
    subprocess.run(["psql", db_url, "-qAt", "-c", "select pg_stat_clear_snapshot()"],
                   check=True, capture_output=True)
    d0 = db_counters(db_url)
    c0 = [process_cpu(pid) for pid in pids]
    procs = [
        subprocess.Popen(["wrk", "-t1" if len(targets) > 1 else "-t2", f"-c{per}",
                          f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", lua, url],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for url, _ in targets
    ]
    texts = [p.communicate()[0] for p in procs]
    c1 = [process_cpu(pid) for pid in pids]
    time.sleep(1.0)  # let the statistics collector publish the run's counters
    d1 = db_counters(db_url)
    results = []
    for text in texts:
        m = re.search(r"^BENCH_RESULT (\{.*\})\s*$", text, re.M)
        if not m:
            sys.exit("wrk printed no result: " + " ".join(text.split())[:300])
        results.append(json.loads(m.group(1)))
    requests = sum(r["requests"] for r in results)
    duration = max(r["duration_us"] for r in results) / 1e6
    errors = sum(r["bad_status"] + r["bad_body"] + r["socket_connect"] + r["socket_read"]
                 + r["socket_write"] + r["socket_timeout"] for r in results)
    cpu = sum(b - a for a, b in zip(c0, c1))
    entry = {
        "instances": len(targets),
        "connections": per * len(targets),
        "requests": requests,
        "requests_per_s": round(requests / duration, 1),
        "errors": errors,
        "p99_ms": round(max(r["latency_us"]["p99"] for r in results) / 1000, 2),
        "server_cpu_us_per_request": round(cpu * 1e6 / requests, 1) if requests else None,
        "db_transactions_per_request":
            round((d1["transactions"] - d0["transactions"]) / requests, 3) if requests else None,
        "db_rows_written_per_request":
            round((d1["inserted"] + d1["changed"] - d0["inserted"] - d0["changed"]) / requests, 3)
            if requests else None,
    }
    with open(out, "a") as f:
        f.write(json.dumps({"scenario": os.environ.get("BENCH_SCENARIO", "?"), **entry}) + "\n")


SCENARIOS = [
    ("cc_opaque", "client credentials, opaque token"),
    ("cc_jwt", "client credentials, JWT (ES256)"),
    ("introspect_opaque", "introspection of an opaque token"),
    ("api_jwt", "protected API call, JWT bearer"),
]


def cmd_report(args):
    runs_path, meta_path = args[:2]
    with open(meta_path) as f:
        meta = json.load(f)
    with open(runs_path) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    by = {(r["scenario"], r["instances"]): r for r in runs}
    print(f"Gatehouse on one PostgreSQL, one and two instances ({meta['duration_s']} s per run "
          f"after a {meta['warmup_s']} s warm-up, {meta['connections']} connections in all)")
    print(f"Date {meta['date']}; commit {meta['commit']}; {meta['nproc']} cores "
          f"({meta['cpu_model']}); PostgreSQL {meta['postgres']}")
    print()
    header = (f"{'scenario':<34} {'inst':>4} {'req/s':>10} {'p99 ms':>8} {'errors':>7} "
              f"{'CPU us/req':>10} {'DB xacts/req':>12} {'rows written/req':>16} | {'2 vs 1':>7}")
    print(header)
    print("-" * len(header))
    for sid, name in SCENARIOS:
        one = by.get((sid, 1))
        for n in (1, 2):
            r = by.get((sid, n))
            label = name if n == 1 else ""
            if not r:
                print(f"{label:<34} {n:>4} not run")
                continue
            vs = ""
            if n == 2 and one and one["requests_per_s"]:
                vs = f"{r['requests_per_s'] / one['requests_per_s']:.2f}x"
            print(f"{label:<34} {n:>4} {r['requests_per_s']:>10,.1f} {r['p99_ms']:>8.2f} "
                  f"{r['errors']:>7,} {r['server_cpu_us_per_request']:>10,.1f} "
                  f"{r['db_transactions_per_request']:>12.3f} "
                  f"{r['db_rows_written_per_request']:>16.3f} | {vs:>7}")
    print()
    print("CPU us/req: CPU time of every instance during the run divided by the requests completed.")
    print("DB xacts/req: the database's committed and rolled-back transactions (pg_stat_database)")
    print("during the run per request; a statement outside a transaction counts as one. It includes")
    print("the instances' background work (upkeep, notices), so a path with no database work reads")
    print("near zero, not exactly zero. rows written/req: rows inserted, updated or deleted.")
    print("2 vs 1: two instances' throughput over one's. wrk and both instances share the machine's")
    print(f"{meta['nproc']} cores, so a path bound by CPU cannot grow with a second instance here;")
    print("what the table shows is whether it loses throughput or costs more per request.")


if __name__ == "__main__":
    commands = {"measure": cmd_measure, "report": cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        sys.exit(2)
    commands[sys.argv[1]](sys.argv[2:])
