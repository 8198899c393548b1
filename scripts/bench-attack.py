#!/usr/bin/env python3
"""What other clients see while a release sidecar is attacked.

Starts the simulator, a hostile upstream (below) and the sidecar (release builds, default
bounds, standalone with a routes file), then runs the same legitimate load twice for
SECONDS_PER_PHASE each: once alone (the baseline), once while attackers run. The legitimate load:

- CHAT_CLIENTS (4) chat clients, each a non-streamed chat completion every 50 ms, a new connection each;
- 1 client sending a 256 KiB prompt every 200 ms (a body past the budget's free 64 KiB);
- a /healthz poller every 20 ms from 127.0.0.2 (the admin listener caps connections per
  address at 8, and the attackers come from 127.0.0.1: the kubelet comes from the node's
  address, not the attacker's), and a slower one (every 100 ms) from 127.0.0.1, the attackers'
  own address, to show what the per-address cap does to a client sharing it.

The attackers, from 127.0.0.1 (each kind its own loop, paced):

- slowloris: connections that send a partial request head one header line a second, on the
  proxy port (SLOWLORIS_PROXY, under its 1,024 cap) and the admin port (SLOWLORIS_ADMIN, from
  ADMIN_ADDRESSES loopback addresses: 127.0.0.1, then 127.0.0.3 onwards);
- oversized bodies (9 MiB, over the 8 MiB cap) with a Content-Length and chunked;
- bodies that trickle a byte a second and never finish, with a small Content-Length and with
  one just under the 8 MiB cap;
- a client `response_format` schema of allOf chained through $defs (2^28 expansion);
- malformed JSON bodies, OpenAI and Anthropic paths;
- an upstream that sends an endless SSE line (the simulator has no such fault; a small
  standard-library server here does it), before and after the stream's first token.

Settings (environment): SECONDS_PER_PHASE (70: longer than the sidecar's 60 s body timeout, so
trickled bodies are answered), RAMP_SECONDS (3, attackers alone before the attack phase's clients
start), CHAT_CLIENTS (4), SLOWLORIS_PROXY (256), SLOWLORIS_ADMIN (64), ADMIN_ADDRESSES (1),
TRICKLE_LARGE (2 connections trickling a body declared just under 8 MiB), ATTACKS (only the
attacks whose names contain one of these comma-separated words, e.g. `slowloris admin` or
`8 MiB`), SLOW_SECONDS (1: slower legitimate requests are printed on stderr as they happen).

Reports, for each legitimate kind, median / p95 / p99 latency and errors in both phases with
the ratio attack / baseline; what each attack got (statuses, whether the error body is in the
client's format); the sidecar's CPU, log lines and peak RSS against the injected sidecar's
default memory limit (128 MiB). Run by `make bench-attack` (standard library only); the
figures go in BENCHMARKS.md.
"""

import collections
import http.client
import http.server
import json
import multiprocessing
import os
import select
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SIDECAR = sys.argv[1] if len(sys.argv) > 1 else "target/release/plumb-sidecar"
SIMULATOR = sys.argv[2] if len(sys.argv) > 2 else "target/release/plumb-simulator"
SECONDS = float(os.environ.get("SECONDS_PER_PHASE", "70"))
RAMP = float(os.environ.get("RAMP_SECONDS", "3"))
CHAT_CLIENTS = int(os.environ.get("CHAT_CLIENTS", "4"))
SLOWLORIS_PROXY = int(os.environ.get("SLOWLORIS_PROXY", "256"))
SLOWLORIS_ADMIN = int(os.environ.get("SLOWLORIS_ADMIN", "64"))
ADMIN_ADDRESSES = int(os.environ.get("ADMIN_ADDRESSES", "1"))
TRICKLE_LARGE = int(os.environ.get("TRICKLE_LARGE", "2"))
# Only the attacks whose names contain one of these words (comma-separated; default all).
ATTACKS = [w for w in os.environ.get("ATTACKS", "").split(",") if w]
# A legitimate request slower than this is reported on stderr as it happens.
SLOW = float(os.environ.get("SLOW_SECONDS", "1"))
LIMIT_MIB = 128
MIB = 1024 * 1024
CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"


# ---------------------------------------------------------------- processes under test


def start(cmd, stderr=subprocess.DEVNULL):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = p.stdout.readline()
    words = line.split()
    if "on" not in words:
        raise SystemExit(f"{cmd[0]} did not start: {line!r}")
    return p, words[words.index("on") + 1], words[-1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Endless(http.server.BaseHTTPRequestHandler):
    """An upstream whose stream is one line that never ends (up to 64 MiB, to stay bounded if
    the sidecar relays it): from the start (`endless-before`) or after a first token."""

    protocol_version = "HTTP/1.0"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        try:
            if body["model"] == "endless-after":
                first = dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                                              "finish_reason": None}])
                self.wfile.write(b"data: " + json.dumps(first).encode() + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
                             b'"delta":{"content":"')
            block = b"x" * 65536
            for _ in range(1024):
                self.wfile.write(block)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def serve_endless(conn):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    server.daemon_threads = True
    conn.send(server.server_address[1])
    server.serve_forever()


# ---------------------------------------------------------------- the legitimate load


LEGIT = ["healthz (127.0.0.2)", "healthz (127.0.0.1)", "chat", "chat 256 KiB"]


def chat_body(model, content):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()


def legit(proxy, admin, seconds, results):
    """The legitimate clients for `seconds`; puts {kind: [(latency, error or None)]}."""
    deadline = time.monotonic() + seconds
    samples = collections.defaultdict(list)
    small = chat_body("chat", "What is the capital of France?")
    large = chat_body("chat", "lorem ipsum " * (256 * 1024 // 12))

    def paced(kind, every, once):
        """Calls `once` (which returns an error or None) every `every` seconds until the
        deadline, recording each call's latency and error under `kind`."""
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            started = time.monotonic()
            err = once()
            took = time.monotonic() - started
            samples[kind].append((took, err))
            if took > SLOW:
                print(f"slow: {kind} took {took:.1f} s ({err or 'ok'})", file=sys.stderr, flush=True)
            # No catching up after a slow answer: the next request goes a period after the last.
            next_at = max(next_at + every, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))

    def post(kind, body, every):
        def once():
            conn = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=90)
            try:
                conn.request("POST", CHAT_PATH, body=body, headers={"content-type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    return str(resp.status)
                if not json.loads(data).get("choices"):
                    return "no choices"
                return None
            except (OSError, http.client.HTTPException, ValueError) as e:
                return type(e).__name__
            finally:
                conn.close()
        paced(kind, every, once)

    def healthz(kind, source, every):
        def once():
            conn = http.client.HTTPConnection(admin.hostname, admin.port, timeout=10,
                                              source_address=(source, 0))
            try:
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                return str(resp.status) if resp.status != 200 else None
            except (OSError, http.client.HTTPException) as e:
                return type(e).__name__
            finally:
                conn.close()
        paced(kind, every, once)

    threads = [threading.Thread(target=post, args=("chat", small, 0.05)) for _ in range(CHAT_CLIENTS)]
    threads.append(threading.Thread(target=post, args=("chat 256 KiB", large, 0.2)))
    threads.append(threading.Thread(target=healthz, args=("healthz (127.0.0.2)", "127.0.0.2", 0.02)))
    threads.append(threading.Thread(target=healthz, args=("healthz (127.0.0.1)", "127.0.0.1", 0.1)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(dict(samples))


# ---------------------------------------------------------------- the attackers


def slowloris(stop, proxy_port, admin_port, results):
    """Partial request heads, one header line a second, reopened when the sidecar closes them.
    A connection closed within a second of opening was refused at accept."""
    sel = selectors.DefaultSelector()
    groups = []
    if wanted("slowloris proxy"):
        groups.append(("proxy", proxy_port, ["127.0.0.1"], SLOWLORIS_PROXY, b"POST /v1/chat/completions HTTP/1.1\r\n"))
    if wanted("slowloris admin"):
        # 127.0.0.1, then 127.0.0.3 onwards: 127.0.0.2 is the legitimate poller's.
        admin_sources = ["127.0.0.1"] + [f"127.0.0.{i + 2}" for i in range(1, ADMIN_ADDRESSES)]
        groups.append(("admin", admin_port, admin_sources, SLOWLORIS_ADMIN, b"GET /healthz HTTP/1.1\r\n"))
    tally = {g[0]: {"opened": 0, "refused": 0, "closed by the sidecar": 0, "held": [],
                    "connect errors": 0, "most held at once": 0} for g in groups}
    due = []  # (when, group, source)
    for name, port, sources, count, head in groups:
        for i in range(count):
            due.append((0.0, name, port, sources[i % len(sources)], head))
    live = {}  # sock -> [group, opened_at, next_line_at]

    def close(sock, now):
        name, opened, _ = live.pop(sock)
        sel.unregister(sock)
        sock.close()
        held = now - opened
        if held < 1.0:
            tally[name]["refused"] += 1
            delay = 0.5
        else:
            tally[name]["closed by the sidecar"] += 1
            tally[name]["held"].append(held)
            delay = 0.0
        group = next(g for g in groups if g[0] == name)
        return (now + delay, name, group[1], None, group[4])

    source_cycle = {g[0]: 0 for g in groups}
    while not stop.is_set():
        now = time.monotonic()
        later = []
        for entry in due:
            when, name, port, source, head = entry
            if when > now:
                later.append(entry)
                continue
            if source is None:
                sources = next(g for g in groups if g[0] == name)[2]
                source = sources[source_cycle[name] % len(sources)]
                source_cycle[name] += 1
            s = socket.socket()
            try:
                s.bind((source, 0))
                s.settimeout(1)
                s.connect(("127.0.0.1", port))
                s.sendall(head)
                s.setblocking(False)
            except OSError:
                s.close()
                tally[name]["connect errors"] += 1
                later.append((now + 0.5, name, port, source, head))
                continue
            tally[name]["opened"] += 1
            live[s] = [name, now, now + 1.0]
            sel.register(s, selectors.EVENT_READ)
        due = later
        for name in tally:
            held = sum(1 for v in live.values() if v[0] == name and now - v[1] >= 1.0)
            tally[name]["most held at once"] = max(tally[name]["most held at once"], held)
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                due.append(close(s, time.monotonic()))
            # Anything else (a 408 or 400 head) is read and the connection waits for its close.
        now = time.monotonic()
        for s, v in list(live.items()):
            if v[2] <= now:
                try:
                    s.send(b"x-slow: 1\r\n")
                    v[2] = now + 1.0
                except OSError:
                    due.append(close(s, now))
    for s in list(live):
        s.close()
    for name in tally:
        tally[name]["still held at the end"] = sum(1 for v in live.values() if v[0] == name)
    results.put(("slowloris", tally))


def wanted(kind):
    return not ATTACKS or any(w in kind for w in ATTACKS)


def exchange(port, head, chunks, stop=None, timeout=90):
    """Sends a request head and body chunks (each a bytes, or a float to sleep that long); stops
    sending when the sidecar answers early. Returns (status or error name, body, seconds)."""
    started = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for c in chunks:
            if stop is not None and stop.is_set():
                return "open at the end", b"", time.monotonic() - started
            if select.select([s], [], [], 0)[0]:
                break
            if isinstance(c, float):
                if select.select([s], [], [], c)[0]:
                    break
                continue
            try:
                s.sendall(c)
            except (BrokenPipeError, ConnectionResetError):
                break
        resp = http.client.HTTPResponse(s)
        try:
            resp.begin()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            return type(e).__name__, b"", time.monotonic() - started
        return resp.status, body, time.monotonic() - started
    except OSError as e:
        return type(e).__name__, b"", time.monotonic() - started
    finally:
        s.close()


def in_client_format(path, body):
    """An error body in the client's own API format: OpenAI `{"error": {"message", ...}}`,
    Anthropic `{"type": "error", "error": {"type", "message"}}`."""
    try:
        j = json.loads(body)
    except ValueError:
        return False
    err = j.get("error") if isinstance(j, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return False
    if path == MESSAGES_PATH:
        return j.get("type") == "error" and isinstance(err.get("type"), str)
    return True


def head(path, length=None, extra=""):
    h = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    if path == MESSAGES_PATH:
        h += "anthropic-version: 2023-06-01\r\n"
    h += "transfer-encoding: chunked\r\n" if length is None else f"content-length: {length}\r\n"
    return (h + extra + "connection: close\r\n\r\n").encode()


def hostile_schema(k=28):
    defs = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(k)}
    defs[f"d{k}"] = {"type": "object"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


MALFORMED = [
    b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}',
    b'\xff\xfe{"model"}',
    b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}}}',
    b"[" * 30000 + b"]" * 30000,  # deep nesting, under the budget's free 64 KiB
    b'{"model": "chat", "messages": "' + b"\\u" * 1000 + b'"}',
    b"",
]


def attackers(stop, proxy_port, admin_port, endless_upstream_ok, results):
    tallies = collections.defaultdict(lambda: {"statuses": collections.Counter(), "in format": 0,
                                               "checked": 0, "seconds": [], "samples": {}})
    lock = threading.Lock()

    def record(kind, path, status, body, took, check=True):
        with lock:
            t = tallies[kind]
            t["statuses"][str(status)] += 1
            if not isinstance(status, str) or not status.startswith("open"):
                t["seconds"].append(took)
            if body and str(status) not in t["samples"]:
                t["samples"][str(status)] = body[-300:].decode("utf-8", "replace")
            if check and isinstance(status, int) and status >= 400:
                t["checked"] += 1
                t["in format"] += in_client_format(path, body)

    def loop(kind, pause, one):
        i = 0
        while not stop.is_set():
            one(kind, i)
            i += 1
            stop.wait(pause)

    big = 9 * MIB

    def oversized_declared(kind, i):
        path = (CHAT_PATH, MESSAGES_PATH)[i % 2]
        block = b"x" * (256 * 1024)
        chunks = [b'{"model": "chat", "messages": [{"role": "user", "content": "'] + [block] * (big // len(block))
        status, body, took = exchange(proxy_port, head(path, big + 100), chunks)
        record(kind, path, status, body, took)

    def oversized_chunked(kind, i):
        path = (CHAT_PATH, MESSAGES_PATH)[i % 2]
        block = b"x" * (256 * 1024)
        framed = b"%x\r\n" % len(block) + block + b"\r\n"
        chunks = [framed] * (big // len(block)) + [b"0\r\n\r\n"]
        status, body, took = exchange(proxy_port, head(path), chunks)
        record(kind, path, status, body, took)

    def trickle(length):
        def one(kind, i):
            start = b'{"model": "chat", "messages": [{"role": "user", "content": "'
            chunks = [start]
            for _ in range(3600):
                chunks += [1.0, b"x"]
            status, body, took = exchange(proxy_port, head(CHAT_PATH, length), chunks, stop=stop)
            record(kind, CHAT_PATH, status, body, took)
        return one

    schema = {"type": "json_schema", "json_schema": {"name": "bomb", "schema": hostile_schema()}}
    schema_body = json.dumps({"model": "strict", "messages": [{"role": "user", "content": "hi"}],
                              "response_format": schema}).encode()

    def hostile(kind, i):
        status, body, took = exchange(proxy_port, head(CHAT_PATH, len(schema_body)), [schema_body])
        record(kind, CHAT_PATH, status, body, took)

    def malformed(kind, i):
        path = (CHAT_PATH, MESSAGES_PATH)[i % 2]
        b = MALFORMED[(i // 2) % len(MALFORMED)]
        status, body, took = exchange(proxy_port, head(path, len(b)), [b])
        record(kind, path, status, body, took)

    def endless(model):
        b = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()

        def one(kind, i):
            status, body, took = exchange(proxy_port, head(CHAT_PATH, len(b)), [b], timeout=60)
            if status == 200:
                # Committed: the stream must end with an explicit error event in the client's format.
                events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
                last = events[-1] if events else b""
                ok = in_client_format(CHAT_PATH, last)
                status = "200, stream ended by an error event" if ok else "200, stream without an error event"
                record(kind, CHAT_PATH, status, body, took, check=False)
                with lock:
                    tallies[kind]["checked"] += 1
                    tallies[kind]["in format"] += ok
            else:
                record(kind, CHAT_PATH, status, body, took)
        return one

    plan = [
        ("oversized body, content-length 9 MiB", 0.1, oversized_declared, 1),
        ("oversized body, chunked 9 MiB", 0.1, oversized_chunked, 1),
        ("trickled body, content-length 4 KiB", 0.0, trickle(4096), 4),
        ("trickled body, content-length 8 MiB - 1", 0.0, trickle(8 * MIB - 1), TRICKLE_LARGE),
        ("response_format schema, allOf 2^28", 0.02, hostile, 1),
        ("malformed JSON", 0.02, malformed, 1),
    ]
    if endless_upstream_ok:
        plan += [
            ("upstream endless SSE line, before the first token", 0.05, endless("endless-before"), 1),
            ("upstream endless SSE line, after the first token", 0.05, endless("endless-after"), 1),
        ]
    plan = [p for p in plan if wanted(p[0])]
    threads = []
    for kind, pause, one, copies in plan:
        for _ in range(copies):
            threads.append(threading.Thread(target=loop, args=(kind, pause, one)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = {}
    for kind, pause, _, copies in plan:
        t = tallies[kind]
        out[kind] = {"statuses": dict(t["statuses"]), "in format": t["in format"], "checked": t["checked"],
                     "median s": pct(sorted(t["seconds"]), 50) if t["seconds"] else None,
                     "loops": copies, "samples": t["samples"]}
    results.put(("requests", out))


# ---------------------------------------------------------------- the report


def pct(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(samples):
    lat = sorted(t for t, _ in samples)
    errors = collections.Counter(e for _, e in samples if e is not None)
    return {"n": len(samples), "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
            "max": lat[-1] if lat else float("nan"), "errors": dict(errors)}


def fmt_ms(s):
    return f"{s * 1000:.2f} ms" if s < 1 else f"{s:.1f} s"


class Sampler(threading.Thread):
    """The sidecar's VmRSS every 50 ms; the largest seen since the last `take`."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.lock = pid, 0, threading.Lock()

    def run(self):
        while True:
            try:
                rss = status_kib(self.pid, "VmRSS")
            except OSError:
                return
            with self.lock:
                self.peak = max(self.peak, rss)
            time.sleep(0.05)

    def take(self):
        with self.lock:
            peak, self.peak = self.peak, 0
        return peak


def phase(ctx, proxy, admin, sidecar, sampler, log, attack):
    results, answers = ctx.Queue(), ctx.Queue()
    stop = ctx.Event()
    workers = []
    sampler.take()
    lines_before = log_lines(log)
    if attack:
        workers.append(ctx.Process(target=slowloris, args=(stop, proxy.port, admin.port, results)))
        workers.append(ctx.Process(target=attackers, args=(stop, proxy.port, admin.port, attack["endless"], results)))
        for w in workers:
            w.start()
        time.sleep(RAMP)
    cpu_before = cpu_seconds(sidecar.pid)
    started = time.monotonic()
    client = ctx.Process(target=legit, args=(proxy, admin, SECONDS, answers))
    client.start()
    legit_samples = answers.get()
    client.join()
    took = time.monotonic() - started
    out = {
        "legit": {k: summary(v) for k, v in legit_samples.items()},
        "cpu": (cpu_seconds(sidecar.pid) - cpu_before) / took,
    }
    if attack:
        stop.set()
        for _ in workers:
            name, tally = results.get()
            out[name] = tally
        for w in workers:
            w.join()
    out["peak rss kib"] = sampler.take()
    out["log lines"] = log_lines(log) - lines_before
    return out


def log_lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def main():
    ctx = multiprocessing.get_context("spawn")
    tmp = tempfile.mkdtemp()
    config = os.path.join(tmp, "simulator.yaml")
    with open(config, "w") as f:
        f.write("models:\n  sim-big: {context_window: 100000000}\n")
    sim, sim_url, _ = start([SIMULATOR, "--listen", "127.0.0.1:0", "--config", config])
    parent, child = ctx.Pipe()
    upstream = ctx.Process(target=serve_endless, args=(child,), daemon=True)
    upstream.start()
    endless_url = f"http://127.0.0.1:{parent.recv()}"
    routes = os.path.join(tmp, "routes.yaml")
    sim_target = f"{{name: sim, provider: openai, baseUrl: '{sim_url}/v1', model: sim-big, credentials: {{none: true}}}}"
    with open(routes, "w") as f:
        f.write(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: chat}\n"
            f"spec:\n  match: {{models: [chat]}}\n  targets:\n    - {sim_target}\n"
            "---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: strict}\n"
            f"spec:\n  match: {{models: [strict]}}\n  targets:\n    - {sim_target}\n"
            "  contract: {json: true}\n"
        )
        for model in ("endless-before", "endless-after"):
            f.write(
                f"---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: {model}}}\n"
                f"spec:\n  match: {{models: [{model}]}}\n  targets:\n"
                f"    - {{name: endless, provider: openai, baseUrl: '{endless_url}/v1', model: {model}, "
                "credentials: {none: true}}\n"
            )
    log = os.path.join(tmp, "sidecar.log")
    with open(log, "wb") as log_file:
        sidecar, url, admin_url = start(
            [SIDECAR, "--routes", routes, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            stderr=log_file,
        )
    proxy, admin = urllib.parse.urlparse(url), urllib.parse.urlparse(admin_url)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection(admin.hostname, admin.port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        sampler = Sampler(sidecar.pid)
        sampler.start()
        time.sleep(0.5)
        idle = status_kib(sidecar.pid, "VmRSS")
        print(f"{SECONDS:.0f} s per phase; attack ramp {RAMP:.0f} s; slowloris {SLOWLORIS_PROXY} proxy / "
              f"{SLOWLORIS_ADMIN} admin connections (admin from {ADMIN_ADDRESSES} address(es))", flush=True)
        base = phase(ctx, proxy, admin, sidecar, sampler, log, None)
        attacked = phase(ctx, proxy, admin, sidecar, sampler, log, {"endless": True})
        hwm = status_kib(sidecar.pid, "VmHWM")
        report(base, attacked, idle, hwm)
    finally:
        sidecar.kill()
        sim.kill()
        upstream.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def report(base, attacked, idle, hwm):
    print("\n| client | phase | requests | p50 | p95 | p99 | max | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in LEGIT:
        for name, ph in (("baseline", base), ("attack", attacked)):
            s = ph["legit"][kind]
            errors = ", ".join(f"{n} × {e}" for e, n in sorted(s["errors"].items())) or "0"
            print(f"| {kind} | {name} | {s['n']} | {fmt_ms(s['p50'])} | {fmt_ms(s['p95'])} | "
                  f"{fmt_ms(s['p99'])} | {fmt_ms(s['max'])} | {errors} |")
        b, a = base["legit"][kind], attacked["legit"][kind]
        print(f"| {kind} | attack / baseline | | {a['p50'] / b['p50']:.2f}× | {a['p95'] / b['p95']:.2f}× | "
              f"{a['p99'] / b['p99']:.2f}× | | |")
    print("\n| attack | loops | answers | error body in the client's format | median time to answer (answered) |")
    print("| --- | --- | --- | --- | --- |")
    for kind, t in attacked["requests"].items():
        statuses = ", ".join(f"{n} × {s}" for s, n in sorted(t["statuses"].items(), key=lambda x: -x[1]))
        median = fmt_ms(t["median s"]) if t["median s"] is not None else ""
        print(f"| {kind} | {t['loops']} | {statuses} | {t['in format']} of {t['checked']} | {median} |")
    print()
    for kind, t in attacked["requests"].items():
        for status, body in t["samples"].items():
            print(f"- {kind}, {status}: {body.strip()}")
    print("\n| slowloris | connections opened | refused at accept | closed by the sidecar | "
          "median held | most held at once | still held at the end | connect errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for port, t in attacked["slowloris"].items():
        held = sorted(t["held"])
        median = f"{pct(held, 50):.1f} s" if held else ""
        print(f"| {port} | {t['opened']} | {t['refused']} | {t['closed by the sidecar']} | {median} | "
              f"{t['most held at once']} | {t['still held at the end']} | {t['connect errors']} |")
    print(f"\nsidecar CPU: baseline {base['cpu'] * 100:.0f}% of a core, attack {attacked['cpu'] * 100:.0f}%")
    print(f"sidecar log lines: baseline {base['log lines']}, attack {attacked['log lines']}")
    print(f"sidecar RSS: idle {idle / 1024:.1f} MB, peak baseline {base['peak rss kib'] / 1024:.1f} MB, "
          f"peak attack {attacked['peak rss kib'] / 1024:.1f} MB, VmHWM {hwm / 1024:.1f} MB "
          f"(limit {LIMIT_MIB} MiB = {LIMIT_MIB * 1.048576:.1f} MB: "
          f"{attacked['peak rss kib'] / 1024 / (LIMIT_MIB * 1.048576):.2f}×)")


if __name__ == "__main__":
    main()
