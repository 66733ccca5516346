#!/usr/bin/env bash
# Fetches the prebuilt OHIF viewer (@ohif/app, pinned and integrity-checked) from the npm registry, unpacks its dist/
# into the git-ignored .tools/ohif/, drops optional weight we do not use, lays our ohif-config/app-config.js over it, and
# pre-compresses it (scripts/compress-static.ts).
# Idempotent: does nothing when the pinned version is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
OHIF_VERSION=3.13.2
# dist.integrity of @ohif/app@3.13.2 as published on the registry (npm view @ohif/app@3.13.2 dist.integrity).
OHIF_INTEGRITY='sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=='
DEST=.tools/ohif
STAMP="$DEST/.version"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$OHIF_VERSION" ]; then
  [ -f ohif-config/app-config.js ] && cp ohif-config/app-config.js "$DEST/dist/app-config.js"
  # Brotli/gzip copies served to browsers (src/viewer/ohif-static.ts); quick when they are already there.
  node scripts/compress-static.ts "$DEST/dist" >&2
  exit 0
fi
echo "[setup] fetching @ohif/app@$OHIF_VERSION" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null)
tgz=$(ls "$tmp"/ohif-app-*.tgz)
actual="sha512-$(openssl dgst -sha512 -binary "$tgz" | openssl base64 -A)"
if [ "$actual" != "$OHIF_INTEGRITY" ]; then
  echo "[setup] @ohif/app@$OHIF_VERSION failed its integrity check ($actual)" >&2
  exit 1
fi
rm -rf "$DEST" && mkdir -p "$DEST"
# ort/ (onnx runtime, ~136 MB) and the microscopy viewer (~20 MB) serve modes we do not offer.
tar xzf "$tgz" -C "$DEST" --strip-components=1 \
  --exclude='package/dist/ort' --exclude='package/dist/dicom-microscopy-viewer' --exclude='package/dist/*.map' \
  'package/dist'
[ -f ohif-config/app-config.js ] && cp ohif-config/app-config.js "$DEST/dist/app-config.js"
node scripts/compress-static.ts "$DEST/dist" >&2
echo "$OHIF_VERSION" > "$STAMP"
