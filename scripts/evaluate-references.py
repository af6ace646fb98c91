#!/usr/bin/env python3
"""The numbers README publishes about the reference checkpoints (issue 8), measured here:
quality of the 3-channel reference on 50 held-out synthetic composites (goal MSE <= 0.01); flicker on a synthetic
clip with temporal feedback (4-channel lower than 3-channel); fp16 and NV21 sensitivity of each reference next to
the random one (goal for trained: fp16 max <= 5e-2, mean <= 1e-3). `--json FILE` writes them."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from matteconv.model.checkpoint import load_checkpoint
from matteconv.reference import random_reference, trained_path
from matteconv.train import evaluate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ref3", type=Path, default=trained_path(3))
    ap.add_argument("--ref4", type=Path, default=trained_path(4))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    console = Console(width=140)
    models = {"random (seed 0)": random_reference(3, 0), "trained 3-channel": load_checkpoint(args.ref3).model}
    if args.ref4.exists():
        models["trained 4-channel"] = load_checkpoint(args.ref4).model
    res: dict = {"quality_ref3": evaluate.quality(models["trained 3-channel"]), "flicker": {}, "sensitivity": {}}
    for name, model in models.items():
        res["flicker"][name] = evaluate.flicker(model)
        res["sensitivity"][name] = evaluate.sensitivity(model)
    q = res["quality_ref3"]
    t = Table(title="3-channel reference on 50 held-out synthetic composites (256x256, mean per image)")
    for c in ("SAD /1000", "MSE (goal <= 0.01)", "Grad /1000", "Conn /1000", "max |d|", "mean |d|"):
        t.add_column(c, justify="right")
    t.add_row(*(f"{q[k]:.4g}" for k in ("sad", "mse", "grad", "conn", "max_abs", "mean_abs")))
    console.print(t)
    t = Table(title="flicker and sensitivity (fp16 and NV21 vs float64 on the 5 golden photos at 512, worst photo)")
    for c in ("model", "flicker (static pixels)", "fp16 max", "fp16 mean", "NV21 max", "NV21 mean"):
        t.add_column(c, justify="right")
    for name in models:
        s = res["sensitivity"][name]
        t.add_row(name, f"{res['flicker'][name]:.2e}", f"{s['fp16_max']:.3g}", f"{s['fp16_mean']:.2e}",
                  f"{s['nv21_max']:.3g}", f"{s['nv21_mean']:.2e}")
    console.print(t)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
