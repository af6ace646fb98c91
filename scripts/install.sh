#!/usr/bin/env bash
# Create .venv with matteconv (editable), its pinned dependencies, real pycaffe and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv python3-dev >/dev/null
fi
# Debian's Chromium renders the HTML verify report in the tests (headless); nothing is installed at test time.
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e ".[test]"
VENV="$VENV" bash scripts/install-caffe.sh
