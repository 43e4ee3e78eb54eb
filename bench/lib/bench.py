#!/usr/bin/env python3
"""Helpers for bench/run (Python standard library only).

Subcommands:
  free-port                      print a free TCP port on 127.0.0.1
  secret                         print a random URL-safe secret
  wait URL PID SECONDS           poll URL until it answers 200 (fails early if PID dies)
  wait-port PORT PID SECONDS     poll until 127.0.0.1:PORT accepts a connection
  client-json                    read `gatehouse app create --json` output on stdin,
                                 print "CLIENT_ID CLIENT_SECRET"
  basic ID SECRET                print an HTTP Basic Authorization header value
  token BASE PATH ID SECRET [k=v ...]
                                 client-credentials token request, print the access token
  urlencode VALUE                print VALUE percent-encoded for a form body
  preflight BASE                 send the request described by the BENCH_* environment
                                 once (as wrk will) and check it succeeds
  wrk-run OUT SERVER_PID -- WRK_ARGS...
                                 run wrk, save its output to OUT, and add a line with the
                                 CPU time of the server, of wrk and of everything else
  idle-check SECONDS             print how busy the machine is (percent of all cores)
  record FILE SYSTEM SCENARIO CONNS WRK_OUTPUT
                                 append one wrk run (or a skip) to a JSON-lines file
  memory PID                     print "VmHWM_kB VmRSS_kB" for a process
  report RUNS META OUT_JSON      print the results table and write the JSON results
"""

import base64
import json
import os
import re
import secrets
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def die(msg):
    print(f"bench.py: {msg}", file=sys.stderr)
    sys.exit(1)


def cmd_free_port(_args):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_secret(_args):
    print(secrets.token_urlsafe(32))


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:"):
                    return "zombie" not in line and "(Z)" not in line
        return True
    except OSError:
        return False


def cmd_wait_port(args):
    port, pid, seconds = int(args[0]), int(args[1]), float(args[2])
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not pid_alive(pid):
            die(f"process {pid} exited before listening on port {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    die(f"nothing listening on port {port} after {seconds:.0f} s")


def cmd_wait(args):
    url, pid, seconds = args[0], int(args[1]), float(args[2])
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            die(f"process {pid} exited while waiting for {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
        except urllib.error.HTTPError as e:
            last = f"status {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.2)
    die(f"{url} not ready after {seconds:.0f}s ({last})")


def find_json_object(text):
    """First JSON object in text (the CLI may print other lines around it)."""
    text = text.strip()
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                value, _ = decoder.raw_decode(text[i:])
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def find_key(obj, key):
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], str):
            return obj[key]
        for v in obj.values():
            found = find_key(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = find_key(v, key)
            if found is not None:
                return found
    return None


def cmd_client_json(_args):
    text = sys.stdin.read()
    obj = find_json_object(text)
    if obj is None:
        die(f"no JSON object in app create output: {text[:300]!r}")
    cid, secret = find_key(obj, "client_id"), find_key(obj, "client_secret")
    if not cid or not secret:
        die(f"app create JSON lacks client_id/client_secret: keys {sorted(obj)}")
    print(cid, secret)


def basic(cid, secret):
    # RFC 6749 section 2.3.1: form-encode both parts before base64.
    raw = f"{urllib.parse.quote(cid, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def cmd_basic(args):
    print(basic(args[0], args[1]))


def cmd_urlencode(args):
    print(urllib.parse.quote(args[0], safe=""))


def http(method, url, body=None, headers=None):
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def cmd_token(args):
    base, path, cid, secret = args[:4]
    fields = [("grant_type", "client_credentials")]
    for kv in args[4:]:
        k, _, v = kv.partition("=")
        fields.append((k, v))
    status, text = http(
        "POST",
        base + path,
        urllib.parse.urlencode(fields),
        {
            "Authorization": basic(cid, secret),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    if status != 200:
        die(f"token request to {base}{path} failed: {status} {text[:300]}")
    try:
        token = json.loads(text)["access_token"]
    except (ValueError, KeyError, TypeError):
        die(f"token response without access_token: {text[:300]}")
    print(token)


def cmd_preflight(args):
    base = args[0]
    method = os.environ.get("BENCH_METHOD", "GET")
    path = os.environ.get("BENCH_PATH", "/")
    body = os.environ.get("BENCH_BODY") or None
    headers = {"Accept": "application/json"}
    if os.environ.get("BENCH_AUTH"):
        headers["Authorization"] = os.environ["BENCH_AUTH"]
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    status, text = http(method, base + path, body, headers)
    expect = os.environ.get("BENCH_EXPECT") or None
    snippet = " ".join(text.split())[:200]
    if not 200 <= status < 300:
        print(f"{method} {path} -> {status} {snippet}")
        sys.exit(1)
    if expect is not None and not re.search(lua_pattern_to_re(expect), text):
        print(f"{method} {path} -> {status} but body does not match {expect!r}: {snippet}")
        sys.exit(1)
    print(f"{method} {path} -> {status}")


def lua_pattern_to_re(pattern):
    """The few Lua pattern features the runner uses: %s, %d, %-escapes, * + ?."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%" and i + 1 < len(pattern):
            n = pattern[i + 1]
            out.append(r"\s" if n == "s" else r"\d" if n == "d" else re.escape(n))
            i += 2
            continue
        out.append(c if c in "*+?" else re.escape(c))
        i += 1
    return "".join(out)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """Seconds of CPU time of the whole machine from /proc/stat: busy (user, nice, system),
    interrupts (irq, softirq), steal."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    fields += [0] * (8 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return {
        "busy": (user + nice + system) / CLK_TCK,
        "irq": (irq + softirq) / CLK_TCK,
        "steal": steal / CLK_TCK,
        "idle": (idle + iowait) / CLK_TCK,
    }


def process_cpu(pid):
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0.0
    rest = data[data.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def cmd_idle_check(args):
    seconds = float(args[0]) if args else 3.0
    a = machine_cpu()
    time.sleep(seconds)
    b = machine_cpu()
    total = sum(b[k] - a[k] for k in b)
    busy = (b["busy"] - a["busy"]) + (b["irq"] - a["irq"]) + (b["steal"] - a["steal"])
    print(f"{100 * busy / total:.0f}" if total > 0 else "0")


def cmd_wrk_run(args):
    import resource
    import subprocess

    sep = args.index("--")
    out, server_pid = args[0], int(args[1])
    wrk_args = args[sep + 1:]
    m0, s0 = machine_cpu(), process_cpu(server_pid)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(out, "w") as f:
        subprocess.run(wrk_args, stdout=f, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - t0
    m1, s1 = machine_cpu(), process_cpu(server_pid)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = s1 - s0
    wrk = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    busy = m1["busy"] - m0["busy"]
    cpu = {
        "wall_s": round(wall, 3),
        "server_s": round(server, 2),
        "wrk_s": round(wrk, 2),
        "other_s": round(max(0.0, busy - server - wrk), 2),
        "interrupts_s": round(m1["irq"] - m0["irq"], 2),
        "steal_s": round(m1["steal"] - m0["steal"], 2),
    }
    with open(out, "a") as f:
        f.write("BENCH_CPU " + json.dumps(cpu) + "\n")


def cmd_record(args):
    path, system, scenario, conns, wrk_out = args[:5]
    entry = {"system": system, "scenario": scenario, "connections": int(conns)}
    if wrk_out.startswith("skip:"):
        entry["status"] = "skipped"
        entry["reason"] = wrk_out[len("skip:"):].strip()
    else:
        with open(wrk_out) as f:
            text = f.read()
        m = re.search(r"^BENCH_RESULT (\{.*\})\s*$", text, re.M)
        if not m:
            entry["status"] = "failed"
            entry["reason"] = "wrk printed no result: " + " ".join(text.split())[:300]
        else:
            r = json.loads(m.group(1))
            seconds = r["duration_us"] / 1e6
            socket_errors = (
                r["socket_connect"] + r["socket_read"] + r["socket_write"] + r["socket_timeout"]
            )
            entry.update(
                status="ok",
                duration_s=round(seconds, 3),
                requests=r["requests"],
                requests_per_s=round(r["requests"] / seconds, 1) if seconds else 0.0,
                successful_per_s=round(r["ok"] / seconds, 1) if seconds else 0.0,
                latency_ms={k: round(v / 1000, 3) for k, v in r["latency_us"].items()},
                errors=r["bad_status"] + r["bad_body"] + socket_errors,
                errors_detail={
                    "non_2xx": r["bad_status"],
                    "2xx_unexpected_body": r["bad_body"],
                    "socket_connect": r["socket_connect"],
                    "socket_read": r["socket_read"],
                    "socket_write": r["socket_write"],
                    "socket_timeout": r["socket_timeout"],
                },
                first_error=r["first_error"] or None,
            )
            c = re.search(r"^BENCH_CPU (\{.*\})\s*$", text, re.M)
            if c:
                cpu = json.loads(c.group(1))
                entry["cpu"] = cpu
                if r["requests"]:
                    entry["server_cpu_us_per_request"] = round(
                        cpu["server_s"] * 1e6 / r["requests"], 1)
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def read_memory(pid):
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values.get("VmHWM", 0), values.get("VmRSS", 0)


def cmd_memory(args):
    hwm, rss = read_memory(int(args[0]))
    print(hwm, rss)


SCENARIOS = [
    ("cc_opaque", "client credentials, opaque token"),
    ("cc_jwt", "client credentials, JWT (ES256)"),
    ("introspect_opaque", "introspection of an opaque token"),
    ("api_jwt", "protected API call, JWT bearer"),
]
SYSTEMS = ["gatehouse", "peer", "probe"]


def fmt_num(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def cmd_report(args):
    runs_path, meta_path, out_path = args[:3]
    with open(meta_path) as f:
        meta = json.load(f)
    runs = []
    if os.path.exists(runs_path):
        with open(runs_path) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    by_key = {(r["scenario"], r["connections"], r["system"]): r for r in runs}
    conns_list = sorted({r["connections"] for r in runs})

    rows = []
    for scen_id, scen_name in SCENARIOS:
        for conns in conns_list:
            row = {"scenario": scen_id, "description": scen_name, "connections": conns}
            for system in SYSTEMS:
                row[system] = by_key.get((scen_id, conns, system))
            gh, peer, probe = row["gatehouse"], row["peer"], row["probe"]
            ok = gh and peer and gh["status"] == "ok" and peer["status"] == "ok"
            near = gh and probe and gh["status"] == "ok" and probe["status"] == "ok"
            row["ratio"] = {
                "requests_per_s_gatehouse_over_peer": ratio(gh["requests_per_s"], peer["requests_per_s"]) if ok else None,
                "p50_peer_over_gatehouse": ratio(peer["latency_ms"]["p50"], gh["latency_ms"]["p50"]) if ok else None,
                "p99_peer_over_gatehouse": ratio(peer["latency_ms"]["p99"], gh["latency_ms"]["p99"]) if ok else None,
                "requests_per_s_gatehouse_over_probe": ratio(gh["requests_per_s"], probe["requests_per_s"]) if near else None,
            }
            for k, v in row["ratio"].items():
                if v is not None:
                    row["ratio"][k] = round(v, 3)
            rows.append(row)

    results = {"meta": meta, "rows": rows}
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    lines = []
    w = lines.append
    w(f"Gatehouse vs {meta['peer']['name']} {meta['peer']['version']} "
      f"({meta['mode']} run: {meta['duration_s']} s per run after a {meta['warmup_s']} s warm-up, "
      f"wrk -t{meta['wrk_threads']} --latency)")
    w(f"Date {meta['date']}; commit {meta['commit']}; {meta['nproc']} cores ({meta['cpu_model']}), "
      f"{meta['memory']} memory")
    w(f"The load generator (wrk, {meta['wrk_threads']} threads) runs on the same "
      f"{meta['nproc']} cores as the servers, over loopback (127.0.0.1).")
    w("")
    header = (f"{'scenario':<34} {'conns':>5}  {'system':<9} {'req/s':>10} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'errors':>7} {'CPU us/req':>10} | {'req/s GH/peer':>13} "
              f"{'p50 peer/GH':>11} {'p99 peer/GH':>11} {'req/s GH/probe':>14}")
    w(header)
    w("-" * len(header))
    for row in rows:
        for system in SYSTEMS:
            r = row[system]
            first = system == SYSTEMS[0]
            name = row["description"] if first else ""
            conns = str(row["connections"])
            if r is None and system == "probe":
                continue
            if r is None or r["status"] != "ok":
                why = "not run" if r is None else f"{r['status']}: {r.get('reason', '')}"
                w(f"{name:<34} {conns:>5}  {system:<9} {why[:70]}")
                continue
            line = (f"{name:<34} {conns:>5}  {system:<9} {fmt_num(r['requests_per_s']):>10} "
                    f"{fmt_num(r['latency_ms']['p50'], 2):>8} {fmt_num(r['latency_ms']['p99'], 2):>8} "
                    f"{r['errors']:>7,} {fmt_num(r.get('server_cpu_us_per_request'), 0):>10}")
            if first:
                rt = row["ratio"]
                def x(v):
                    return "-" if v is None else f"{v:.2f}x"
                line += (f" | {x(rt['requests_per_s_gatehouse_over_peer']):>13} "
                         f"{x(rt['p50_peer_over_gatehouse']):>11} {x(rt['p99_peer_over_gatehouse']):>11} "
                         f"{x(rt['requests_per_s_gatehouse_over_probe']):>14}")
            else:
                line += " |"
            w(line)
    w("")
    w("Ratios: req/s GH/peer = Gatehouse throughput / peer throughput; p50 and p99 peer/GH =")
    w("peer latency / Gatehouse latency. Above 1.00x, Gatehouse is better on that measure.")
    if meta.get("probe"):
        w("req/s GH/probe = Gatehouse throughput / the limit probe's (a minimal server doing only the")
        w("path's unavoidable work: " + meta["probe"]["routes"] + "): the share of this")
        w("machine's ceiling Gatehouse reaches.")
    w("errors = non-2xx responses + 2xx with an unexpected body + socket errors (connect, read, write, timeout).")
    w("CPU us/req = CPU time (user + system, all threads) of the server process during the run,")
    w("divided by the requests completed.")
    w("Introspection: both systems introspect one opaque access token obtained just before the run")
    w("(the peer refuses to introspect JWT access tokens).")
    w("")
    w("Server memory (whole benchmark, kB):")
    for system in SYSTEMS:
        if system not in meta["memory_kb"]:
            continue
        m = meta["memory_kb"][system]
        w(f"  {system:<9} peak RSS (VmHWM) {m.get('peak_rss', 0):>9,}   RSS when idle before load "
          f"{m.get('idle_rss', 0):>9,}   process: {meta['processes'].get(system, '')}")
    if meta.get("idle_busy_percent") is not None:
        w(f"Machine load before the runs (servers idle): {meta['idle_busy_percent']}% of all cores busy.")
    disturbed = []
    for r in runs:
        cpu = r.get("cpu")
        if cpu and cpu["wall_s"] and cpu["other_s"] / cpu["wall_s"] > 0.10:
            disturbed.append(f"{r['scenario']} c{r['connections']} {r['system']} "
                             f"({100 * cpu['other_s'] / cpu['wall_s']:.0f}%)")
    if disturbed:
        import textwrap
        w(textwrap.fill(
            "Warning: other processes used more than 10% of a core during these runs, so their "
            "numbers are disturbed: " + ", ".join(disturbed), width=110, subsequent_indent="  "))
    else:
        w("Other processes used under 10% of a core during every run.")
    for note in meta.get("notes", []):
        w(f"Note: {note}")
    failures = [
        (row["description"], row["connections"], s, row[s]["first_error"])
        for row in rows for s in SYSTEMS
        if row[s] and row[s].get("status") == "ok" and row[s].get("first_error")
    ]
    if failures:
        w("")
        w("First error response seen per run (status and start of body):")
        for desc, conns, s, err in failures:
            w(f"  {desc}, c{conns}, {s}: {err[:160]}")
    print("\n".join(lines))


COMMANDS = {
    "free-port": cmd_free_port,
    "idle-check": cmd_idle_check,
    "wrk-run": cmd_wrk_run,
    "secret": cmd_secret,
    "wait": cmd_wait,
    "wait-port": cmd_wait_port,
    "client-json": cmd_client_json,
    "basic": cmd_basic,
    "urlencode": cmd_urlencode,
    "token": cmd_token,
    "preflight": cmd_preflight,
    "record": cmd_record,
    "memory": cmd_memory,
    "report": cmd_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    COMMANDS[sys.argv[1]](sys.argv[2:])
