#!/usr/bin/env bash
# Creates (once) the virtual environment with the official SDKs the compatibility tests use,
# outside the repository, keyed by the pinned requirements so a change makes a new one.
# Prints the venv's path on standard output.
set -euo pipefail
cache="${PLUMB_CACHE:-$HOME/.cache/plumb}"
req="$(dirname "$0")/../tests/sdk/requirements.txt"
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
