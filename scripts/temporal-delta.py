#!/usr/bin/env python3
"""The temporal model as a committed float16 delta against the official weights (matteconv/temporal_delta.py).

  write   TEMPORAL.safetensors DELTA.safetensors   make the delta from a fine-tuned checkpoint (docs/temporal.md)
  rebuild [DELTA [OUT]]                            what `make install` would run: official (cache) + delta -> OUT
                                                   (defaults: the shipped delta, modnet_temporal.safetensors
                                                   beside the official checkpoint)

Both take the official checkpoint from the cache (`make install`) unless --official is given."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matteconv.errors import MatteconvError
from matteconv.official import official_checkpoint
from matteconv.temporal_delta import SHIPPED, TEMPORAL_NAME, rebuild, write_delta
from matteconv.train.trainer import save_weights


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("write", "rebuild"))
    ap.add_argument("source", type=Path, nargs="?", default=SHIPPED)
    ap.add_argument("output", type=Path, nargs="?")
    ap.add_argument("--official", type=Path)
    args = ap.parse_args()
    try:
        official = args.official or official_checkpoint()
        if args.output is None:
            if args.action == "write":
                raise MatteconvError("write needs TEMPORAL.safetensors and DELTA.safetensors")
            args.output = Path(official).with_name(TEMPORAL_NAME)
        if args.action == "write":
            print(json.dumps(write_delta(args.source, official, args.output), indent=2))
        else:
            sha = save_weights(rebuild(official, args.source), args.output)
            print(json.dumps({"output": str(args.output), "weights_sha256": sha}))
    except MatteconvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
