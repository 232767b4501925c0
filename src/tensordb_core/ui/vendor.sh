#!/usr/bin/env bash
# Vendor the web UI's charting library (uPlot, MIT) into static/vendor/ from npm, so the UI works offline (no CDN).
# Run it only to change the pinned version; CI never runs it (the vendored files are committed) and
# tests/ui/test_vendor.py checks every vendored file against the sha256 recorded in static/vendor/vendor.json.
# npm pack verifies the tarball against the registry's integrity (sha512) before this script copies anything.
set -euo pipefail
VERSION=${UPLOT_VERSION:-1.6.32}
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$HERE/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "uplot@$VERSION" --json > pack.json
TARBALL=$(python3 -c 'import json; print(json.load(open("pack.json"))[0]["filename"])')
INTEGRITY=$(python3 -c 'import json; print(json.load(open("pack.json"))[0]["integrity"])')
tar -xzf "$TARBALL"
mkdir -p "$OUT"
cp package/dist/uPlot.iife.min.js "$OUT/uPlot.iife.min.js"
cp package/dist/uPlot.min.css "$OUT/uPlot.min.css"
cp package/LICENSE "$OUT/uPlot.LICENSE"
python3 - "$OUT" "$VERSION" "$INTEGRITY" <<'PY'
import hashlib, json, sys, pathlib
out, version, integrity = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
files = {n: hashlib.sha256((out / n).read_bytes()).hexdigest()
         for n in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE")}
record = {"package": "uplot", "version": version, "npm_integrity": integrity, "license": "MIT", "sha256": files}
(out / "vendor.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
PY
echo "vendored uplot@$VERSION into $OUT"
