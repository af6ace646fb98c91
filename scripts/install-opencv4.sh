#!/usr/bin/env bash
# A separate small venv with OpenCV 4.x, for the interop tests: OpenCV 5 (what the main venv resolves to) has no
# Caffe importer, and most boards ship OpenCV 4.x. It lives inside the main venv: $VENV/opencv4.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CV4="$VENV/opencv4"
[ -x "$CV4/bin/python" ] || "$VENV/bin/python" -m venv "$CV4"
"$CV4/bin/pip" install -q "opencv-python-headless>=4.9,<5" numpy
