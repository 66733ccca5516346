# Sourced by the Makefile and bin/ehr: puts the project's Node first on PATH when it exists.
_ehr_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$_ehr_root/.tools/node/bin/node" ]; then export PATH="$_ehr_root/.tools/node/bin:$PATH"; fi
