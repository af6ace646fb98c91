#!/usr/bin/env bash
# Regenerate the checked-in AIPP presets in aipp/ from the library (tests/test_aipp_presets.py checks they match).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" - <<'PYEOF'
from matteconv.aipp import PRESETS, write_config
for name, spec in PRESETS.items():
    write_config(spec, f"aipp/{name}")
    print(f"aipp/{name}")
PYEOF
