#!/usr/bin/env python3
"""The temporal model against the 3-channel one it was grown from, on held-out clips of real people (issue 33):
per-frame SAD / MSE, flicker on static-label pixels, frames to recover from a blank or corrupted previous alpha,
mean alpha on empty frames, and SAD / MSE under backlight. The people are cut out by --cutout (default: the
official model in ~/.cache/matteconv/official/). `--json FILE` writes the numbers, `--markdown` prints the table
docs/temporal.md shows."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from matteconv.model.checkpoint import load_checkpoint
from matteconv.people import clips, cutout, evaluate

COLUMNS = (("sad", "SAD /1000", "{:.3f}"), ("mse", "MSE", "{:.2e}"), ("flicker", "flicker", "{:.2e}"),
           ("recover_blank", "recover blank (frames)", "{:.1f}"), ("recover_corrupt", "recover corrupt (frames)",
                                                                   "{:.1f}"),
           ("empty_alpha", "empty-frame alpha", "{:.2e}"), ("empty_alpha_max", "empty max", "{:.2f}"), ("backlight_sad", "backlight SAD", "{:.3f}"),
           ("backlight_mse", "backlight MSE", "{:.2e}"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", help="NAME=CHECKPOINT, e.g. official=...safetensors temporal=t.safetensors")
    ap.add_argument("--cutout", type=Path, default=cutout.default_checkpoint())
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--seed", type=int, default=20_261_207)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.cutout is None:
        print("no --cutout checkpoint and no official model in ~/.cache/matteconv/official/ (make install)")
        return 2
    torch.set_num_threads(args.threads)
    models = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        models[name] = load_checkpoint(path).model
    cutter = cutout.CheckpointCutter(str(args.cutout))
    size = (args.size, args.size)
    t0 = time.perf_counter()
    held = clips.held_out(args.seed, args.clips, cutter, size, args.frames)
    backlit = clips.held_out(args.seed + 1, max(2, args.clips // 2), cutter, size, args.frames, light="back")
    gone = clips.held_out(args.seed + 2, max(2, args.clips // 2), cutter, size, args.frames, leave=True)
    table = evaluate.measure(models, held, backlit, gone)
    wall = time.perf_counter() - t0
    info = {"clips": args.clips, "backlit_clips": len(backlit), "leaving_clips": len(gone), "frames": args.frames, "size": args.size,
            "seed": args.seed, "cutout": str(args.cutout), "wall_s": wall,
            "people": sorted({c.spec.person for c in held}), "backgrounds": sorted({c.spec.background for c in held}),
            "models": {k: str(v) for k, v in (s.partition("=")[::2] for s in args.models)}, "table": table}
    if args.markdown:
        print("| model | " + " | ".join(c[1] for c in COLUMNS) + " |")
        print("|---|" + "---:|" * len(COLUMNS))
        for name, row in table.items():
            print(f"| {name} | " + " | ".join(f.format(row[k]) for k, _, f in COLUMNS) + " |")
    else:
        t = Table(title=f"{args.clips} held-out clips x {args.frames} frames at {args.size} ({wall:.0f} s)")
        t.add_column("model")
        for _, head, _ in COLUMNS:
            t.add_column(head, justify="right")
        for name, row in table.items():
            t.add_row(name, *(f.format(row[k]) for k, _, f in COLUMNS))
        Console(width=160).print(t)
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
