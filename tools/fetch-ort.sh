#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library into the project's cache, from the npm
# registry's onnxruntime-node package, which ships a prebuilt CPU library. The
# package's install script downloads more from elsewhere, so it is skipped
# (--ignore-scripts): we only need the file inside the tarball.
#
#   tools/fetch-ort.sh [CACHE_DIR]     (default: .cache/ort)
#
# Prints the library's path. Does nothing when it is already there.
set -euo pipefail
ORT_VERSION=${ORT_VERSION:-1.24.3}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-$root/.cache/ort}
dest="$cache/$ORT_VERSION/libonnxruntime.so.1"
if [ -f "$dest" ]; then
  echo "$dest"
  exit 0
fi
# A library the user points at is used as it is: nothing to fetch.
if [ -n "${ONNXRUNTIME_LIB:-}" ]; then
  [ -f "$ONNXRUNTIME_LIB" ] || { echo "fetch-ort: ONNXRUNTIME_LIB=$ONNXRUNTIME_LIB is not a file" >&2; exit 1; }
  echo "$ONNXRUNTIME_LIB"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-ort: npm is needed to fetch ONNX Runtime (apt-get install npm), or set ONNXRUNTIME_LIB" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent --ignore-scripts "onnxruntime-node@$ORT_VERSION" >/dev/null)
tar -xzf "$work/onnxruntime-node-$ORT_VERSION.tgz" -C "$work" package/bin/napi-v6/linux/x64/
mkdir -p "$(dirname "$dest")"
src="$work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
[ -f "$src" ] || { echo "fetch-ort: onnxruntime-node@$ORT_VERSION has no $src" >&2; exit 1; }
cp "$src" "$dest.tmp" && mv "$dest.tmp" "$dest"
echo "$dest"
