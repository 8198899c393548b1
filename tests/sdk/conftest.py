"""Fixtures for the client-compatibility tests: real binaries on loopback, official SDKs."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def binary(name: str) -> str:
    """The path of a workspace binary, from PLUMB_BIN_DIR or target/debug."""
    bin_dir = pathlib.Path(os.environ.get("PLUMB_BIN_DIR", REPO / "target" / "debug"))
    path = bin_dir / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (make test does)")
    return str(path)


class Process:
    """A binary that prints `... listening on URL` on its first line of standard output."""

    def __init__(self, args):
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"{args[0]} did not start: {line}{self.proc.stderr.read()}")
        # "NAME listening on URL [admin URL]"
        words = line.split()
        self.url = words[words.index("on") + 1]
        self.admin = words[words.index("admin") + 1] if "admin" in words else None

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def simulator():
    p = Process([binary("plumb-simulator"), "--listen", "127.0.0.1:0"])
    yield p
    p.stop()
