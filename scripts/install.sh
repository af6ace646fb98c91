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
# OpenCV DNN 4.x (what boards ship) for the interop test, beside the venv's 5.x: cv2 cannot have two versions in
# one environment, so it goes in its own folder that tests/interop/opencv_dnn.py gets on PYTHONPATH.
[ -d "$VENV/opencv4/cv2" ] ||
  "$VENV/bin/pip" install -q --no-deps --target "$VENV/opencv4" "opencv-python-headless>=4.9,<5"
VENV="$VENV" bash scripts/install-caffe.sh
# The official MODNet (scripts/fetch-official.py) and the temporal model beside it are `make install`'s next steps
# (Makefile): they live in the user cache, not the venv, so they are checked on every install, not only the first.
