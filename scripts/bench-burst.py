#!/usr/bin/env python3
"""A burst of maximum-size requests against a release sidecar, with its default bounds.

Starts the simulator and the sidecar (release builds), sends BURST requests at once, each a
chat request just under the sidecar's default --max-request-bytes (8 MiB), and reports what
the clients got and the sidecar's peak resident memory (VmHWM) against the injected
sidecar's default memory limit (128 MiB). Run by `make bench-burst`; the figures go in
BENCHMARKS.md.
"""

import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time

import httpx

SIDECAR = sys.argv[1] if len(sys.argv) > 1 else "target/release/plumb-sidecar"
SIMULATOR = sys.argv[2] if len(sys.argv) > 2 else "target/release/plumb-simulator"
BURST = int(os.environ.get("BURST", "32"))
SIZE = int(os.environ.get("BURST_BYTES", str(8 * 1024 * 1024 - 4096)))
LIMIT_MIB = 128


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    words = line.split()
    if "on" not in words:
        raise SystemExit(f"{cmd[0]} did not start: {line!r}")
    return p, words[words.index("on") + 1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


async def main():
    tmp = tempfile.mkdtemp()
    sim, sim_url = start([SIMULATOR, "--listen", "127.0.0.1:0"])
    routes = os.path.join(tmp, "routes.yaml")
    with open(routes, "w") as f:
        f.write(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: burst}\n"
            "spec:\n  match: {models: [burst]}\n  targets:\n"
            f"    - {{name: sim, provider: openai, baseUrl: '{sim_url}/v1', model: sim-gpt, credentials: {{none: true}}}}\n"
        )
    sidecar, url = start(
        [SIDECAR, "--routes", routes, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
    )
    try:
        time.sleep(0.5)
        idle = status_kib(sidecar.pid, "VmRSS")
        content = "x" * (SIZE - 200)
        body = '{"model": "burst", "messages": [{"role": "user", "content": "%s"}]}' % content
        limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def one():
                started = time.monotonic()
                r = await client.post(
                    f"{url}/v1/chat/completions",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                return r.status_code, time.monotonic() - started

            started = time.monotonic()
            results = await asyncio.gather(*(one() for _ in range(BURST)))
            took = time.monotonic() - started
        peak = status_kib(sidecar.pid, "VmHWM")
        codes = collections.Counter(code for code, _ in results)
        slowest = max(t for _, t in results)
        print(f"burst of {BURST} requests of {SIZE / 1048576:.1f} MiB each, all at once")
        print(f"answers: {dict(sorted(codes.items()))}; all done in {took:.1f} s, slowest {slowest:.1f} s")
        print(f"sidecar RSS: idle {idle / 1024:.1f} MB, peak {peak / 1024:.1f} MB "
              f"(limit {LIMIT_MIB} MiB = {LIMIT_MIB * 1.048576:.1f} MB)")
        if peak / 1024 > LIMIT_MIB * 1.048576:
            raise SystemExit("the peak is over the injected sidecar's default memory limit")
    finally:
        sidecar.kill()
        sim.kill()


asyncio.run(main())
