#!/usr/bin/env bash
# Creates (once) a Python virtual environment outside the repository, keyed by its pinned
# requirements so a change makes a new one, and prints its path. Default: the official SDKs the
# compatibility tests use; give another requirements file to make another one.
set -euo pipefail
cache="${PLUMB_CACHE:-$HOME/.cache/plumb}"
req="${1:-$(dirname "$0")/../tests/sdk/requirements.txt}"
key=$(sha256sum "$req" | cut -c1-12)
venv="$cache/venv-$key"
if [ ! -f "$venv/.ready" ]; then
  echo "sdk-venv: creating $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  touch "$venv/.ready"
fi
echo "$venv"
