#!/usr/bin/env python3
"""A burst of maximum-size requests against a release sidecar, with its default bounds.

Starts the simulator and the sidecar (release builds), sends BURST requests at once, each a
chat request just under the sidecar's default --max-request-bytes (8 MiB), and reports what
the clients got and the sidecar's peak resident memory (VmHWM) against the injected
sidecar's default memory limit (128 MiB). Run by `make bench-burst` (standard library only);
the figures go in BENCHMARKS.md.
"""

import collections
import concurrent.futures
import http.client
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

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


def main():
    tmp = tempfile.mkdtemp()
    config = os.path.join(tmp, "simulator.yaml")
    with open(config, "w") as f:
        # A window large enough for the burst's prompts, so every request is answered.
        f.write("models:\n  sim-big: {context_window: 100000000}\n")
    sim, sim_url = start([SIMULATOR, "--listen", "127.0.0.1:0", "--config", config])
    routes = os.path.join(tmp, "routes.yaml")
    with open(routes, "w") as f:
        f.write(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: burst}\n"
            "spec:\n  match: {models: [burst]}\n  targets:\n"
            f"    - {{name: sim, provider: openai, baseUrl: '{sim_url}/v1', model: sim-big, credentials: {{none: true}}}}\n"
        )
    sidecar, url = start(
        [SIDECAR, "--routes", routes, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
    )
    try:
        time.sleep(0.5)
        idle = status_kib(sidecar.pid, "VmRSS")
        content = "x" * (SIZE - 200)
        body = '{"model": "burst", "messages": [{"role": "user", "content": "%s"}]}' % content
        target = urllib.parse.urlparse(url)
        payload = body.encode()

        def one(_):
            started = time.monotonic()
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            try:
                conn.request(
                    "POST",
                    "/v1/chat/completions",
                    body=payload,
                    headers={"content-type": "application/json"},
                )
            except (BrokenPipeError, ConnectionResetError) as e:
                # The sidecar answered before reading the whole body (413, 503): read it.
                try:
                    status = conn.getresponse().status
                except (OSError, http.client.HTTPException):
                    status = type(e).__name__
                conn.close()
                return status, time.monotonic() - started
            try:
                status = conn.getresponse().status
            except (BrokenPipeError, ConnectionResetError, http.client.HTTPException) as e:
                status = type(e).__name__
            finally:
                conn.close()
            return status, time.monotonic() - started

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=BURST) as pool:
            results = list(pool.map(one, range(BURST)))
        took = time.monotonic() - started
        peak = status_kib(sidecar.pid, "VmHWM")
        codes = collections.Counter(str(code) for code, _ in results)
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


main()
