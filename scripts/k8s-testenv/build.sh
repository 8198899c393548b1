#!/usr/bin/env bash
# Builds a real Kubernetes apiextensions-apiserver (the API server that serves
# CustomResourceDefinitions and custom resources) and etcd from Debian's own packages: Debian
# sid's Go source packages and Debian's Go toolchain, in a throwaway chroot so the host stays
# untouched. Nothing else is fetched. About 5 minutes and 3.5 GB of scratch on 2 cores, once:
# the two binaries are cached in $PLUMB_CACHE/k8s/bin and reused.
set -euo pipefail
CACHE="${PLUMB_CACHE:-$HOME/.cache/plumb}/k8s"
OUT="$CACHE/bin"
WANT_VERSION="${PLUMB_APIEXT_VERSION:-0.36}"   # the Kubernetes 1.36 line the tests were written for
if [ -x "$OUT/apiextensions-apiserver" ] && [ -x "$OUT/etcd" ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "k8s-testenv: building the API server needs root (debootstrap, chroot)" >&2; exit 1; }
# The host's own Debian mirror, read from its apt sources (no host name is written here).
if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v archive | head -n1 | tr -d ' ' || true)
fi
[ -n "$MIRROR" ] || { echo "k8s-testenv: no Debian mirror in the host's apt sources; set MIRROR" >&2; exit 1; }
ROOT="$CACHE/root"
echo "k8s-testenv: building apiextensions-apiserver and etcd (once, ~5 min) in $ROOT" >&2
command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
[ -d "$ROOT/usr" ] || debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
echo "deb $MIRROR sid main" > "$ROOT/etc/apt/sources.list.d/sid.list"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
A="-o Acquire::Check-Valid-Until=false"   # sid's Release file may be reported as expired
chroot "$ROOT" apt-get $A update -qq
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get $A install -y -qq -t sid --no-install-recommends \
  golang-k8s-apiextensions-apiserver-dev golang-go etcd-server >/dev/null
version=$(chroot "$ROOT" dpkg-query -W -f='${Version}' golang-k8s-apiextensions-apiserver-dev)
case "$version" in
  "$WANT_VERSION".*) ;;
  *) echo "k8s-testenv: golang-k8s-apiextensions-apiserver-dev is $version; the tests were written for $WANT_VERSION.x (set PLUMB_APIEXT_VERSION to accept it)" >&2; exit 1 ;;
esac
chroot "$ROOT" env GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=/tmp/gocache GOTOOLCHAIN=local \
  go build -o /tmp/apiextensions-apiserver k8s.io/apiextensions-apiserver
mkdir -p "$OUT"
cp "$ROOT/tmp/apiextensions-apiserver" "$ROOT/usr/bin/etcd" "$OUT/"
umount "$ROOT/proc" 2>/dev/null || true
rm -rf "$ROOT"
echo "k8s-testenv: $OUT/apiextensions-apiserver ($version) and $OUT/etcd ready" >&2
