#!/usr/bin/env python3
"""Open-loop load of password-grant sign-ins (Python standard library only), for bench/signins.

  signins.py URL PID REQUESTS SECONDS CONNECTIONS OUT_JSON

Sends REQUESTS token requests (POST /oauth/token, grant_type=password) at a fixed rate spread over
SECONDS, whatever the server's pace: request i is due at i * SECONDS / REQUESTS. At most
CONNECTIONS are open at once (keep-alive); a request that finds none free waits for one, and its
latency is counted from the moment it was due, so a server that falls behind shows it in the
latency rather than slowing the load down. The users' names and passwords come from
BENCH_USERS (a file of "name password" lines), the client's Basic header from BENCH_AUTH.
While it runs, the server's resident set (VmRSS) is sampled every 100 ms; VmHWM is read at the end.
"""

import asyncio
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import read_memory  # noqa: E402


async def send(reader, writer, host, body, auth):
    request = (
        f"POST /oauth/token HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    payload = await reader.readexactly(length) if length else b""
    return status, payload


async def main():
    url, pid, total, seconds, connections, out = sys.argv[1:7]
    pid, total, seconds, connections = int(pid), int(total), float(seconds), int(connections)
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname, parsed.port
    auth = os.environ["BENCH_AUTH"]
    with open(os.environ["BENCH_USERS"]) as f:
        users = [line.split() for line in f if line.strip()]
    bodies = [
        urllib.parse.urlencode(
            {"grant_type": "password", "username": name, "password": password}
        ).encode()
        for name, password in users
    ]

    pool = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)
    latencies, statuses, failures = [], {}, []
    peak_sampled = 0
    running = True

    async def sample():
        nonlocal peak_sampled
        while running:
            peak_sampled = max(peak_sampled, read_memory(pid)[1])
            await asyncio.sleep(0.1)

    async def one(i, due, conn):
        nonlocal failures
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            status, payload = await send(*conn, f"{host}:{port}", bodies[i % len(bodies)], auth)
            ok = status == 200 and b'"access_token"' in payload
            key = str(status) if ok or status != 200 else "200 without a token"
            statuses[key] = statuses.get(key, 0) + 1
            latencies.append(time.monotonic() - due)
            pool.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            failures.append(type(e).__name__)
            if conn is not None:
                conn[1].close()
            pool.put_nowait(None)

    sampler = asyncio.create_task(sample())
    start = time.monotonic()
    tasks = []
    for i in range(total):
        due = start + i * seconds / total
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.get()
        tasks.append(asyncio.create_task(one(i, due, conn)))
    sent_by = time.monotonic() - start
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    running = False
    await sampler
    while not pool.empty():
        conn = pool.get_nowait()
        if conn is not None:
            conn[1].close()

    await asyncio.sleep(2)
    peak, at_rest = read_memory(pid)
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else None

    result = {
        "requests": total,
        "offered_seconds": seconds,
        "offered_per_second": round(total / seconds, 1),
        "connections": connections,
        "all_sent_after_s": round(sent_by, 1),
        "elapsed_s": round(elapsed, 1),
        "completed_per_second": round(len(latencies) / elapsed, 1),
        "statuses": statuses,
        "socket_failures": len(failures),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "peak_rss_sampled_kb": peak_sampled,
        "peak_rss_kb": peak,
        "rss_at_rest_kb": at_rest,
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


asyncio.run(main())
