#!/usr/bin/env python3
"""The README's INT8 table (issue 18, item 5): on each golden set, the trained reference that made it exported to
ONNX at the set's size, then the predicted fp16 .om, the predicted INT8 .om with every layer INT8 (AMCT defaults:
IFMR asymmetric activations, ARQ per-channel weights, calibrated on the set's own inputs) and with the automatic
skip (`quantize --tolerance`; where the fp16 prediction itself misses the tolerance, the tolerance plus the fp16
error, i.e. INT8 may add at most the tolerance to fp16), each as worst max / worst mean |d alpha| against the float64 golden, plus the share
of the MACs that stays INT8. Usage: scripts/int8_table.py golden/photos golden/hard/stills ... [--json FILE].
A golden set made by the official MODNet (golden/real/*: its manifest names `official`) is measured on the
official checkpoint from the user cache instead (issue 32, item 4); `--tolerance real` is golden/real's fp16 rule
(max, mean, confident max, confident mean: verify/golden_real.py REAL_FP16), which judges a deployable matte."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from matteconv.export.onnx import export_onnx
from matteconv.int8.quantize import auto_skip, calibrate, errors, golden_inputs, predict, within
from matteconv.model.checkpoint import load_checkpoint
from matteconv.reference import trained_path
from matteconv.verify.golden import load_golden


def checkpoint_of(gset):
    """The model that made the golden set: the official checkpoint (user cache) or our trained reference."""
    if "official" in gset.manifest["checkpoint"]:
        from matteconv.official import official_checkpoint

        return load_checkpoint(official_checkpoint())
    return load_checkpoint(trained_path(int(gset.manifest["checkpoint"]["in_channels"])))


def measure(golden: Path, tolerance: dict, tmp: Path, prune_seconds: float | None) -> dict:
    gset = load_golden(golden)
    c = int(gset.manifest["checkpoint"]["in_channels"])
    size = tuple(gset.manifest["size"])
    model = tmp / f"ref{c}_{size[0]}x{size[1]}.onnx"
    export_onnx(checkpoint_of(gset), model, size)
    inputs = golden_inputs(golden)
    t0 = time.perf_counter()
    fp16 = errors(predict(model, None, inputs.xs), inputs.goldens)
    record = calibrate(model, inputs)
    all_int8 = errors(predict(model, record, inputs.xs), inputs.goldens)
    print(f"{golden}: fp16 {fp16}, all INT8 {all_int8}, INT8 MACs {record.int8_share():.3f}", file=sys.stderr,
          flush=True)
    if not within(fp16, tolerance):  # no skip can beat fp16: ask INT8 to add at most the tolerance to it
        tolerance = {k: fp16[k] + v for k, v in tolerance.items()}
    skip = auto_skip(model, record, inputs, tolerance, lambda m: print(f"  {golden}: {m}", file=sys.stderr,
                                                                       flush=True), prune_seconds)
    return {"golden": str(golden), "inputs": len(inputs.xs), "size": list(size), "in_channels": c,
            "fp16": fp16, "all_int8": all_int8, "skip": skip.error, "met": skip.met, "tolerance": tolerance,
            "layers": len(record.layers), "kept_fp16": len(skip.kept_fp16), "kept_names": skip.kept_fp16,
            "int8_macs_share_all": record.int8_share(), "int8_macs_share_skip": skip.record.int8_share(),
            "evaluations": skip.evaluations, "note": skip.note, "seconds": time.perf_counter() - t0}


def measure_caffe(golden: Path, tmp: Path) -> dict:
    """The int8-caffe stage: the Caffe `ascend` export of the same reference, fp16 and all-INT8 predicted."""
    from matteconv.export.caffe.export import export_caffe

    gset = load_golden(golden)
    c = int(gset.manifest["checkpoint"]["in_channels"])
    size = tuple(gset.manifest["size"])
    proto = export_caffe(checkpoint_of(gset), tmp / f"ref{c}_caffe", "ascend", size).prototxt
    inputs = golden_inputs(golden)
    t0 = time.perf_counter()
    fp16 = errors(predict(proto, None, inputs.xs), inputs.goldens)
    record = calibrate(proto, inputs)
    all_int8 = errors(predict(proto, record, inputs.xs), inputs.goldens)
    return {"golden": str(golden), "stage": "int8-caffe", "fp16": fp16, "all_int8": all_int8,
            "layers": len(record.layers), "int8_layers": len(record.quantized),
            "int8_macs_share_all": record.int8_share(), "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("golden", nargs="+", type=Path)
    ap.add_argument("--tolerance", default="0.1/2e-3", help="MAX/MEAN, `real` (golden/real's fp16 rule), or KEY=V,... "
                    "(max_abs, mean_abs, confident_max_abs, confident_mean_abs)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--caffe", action="store_true", help="the Caffe `ascend` export instead (fp16, all INT8)")
    ap.add_argument("--prune-seconds", type=float, help="stop the skip's prune after this long (auto_skip)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.tolerance == "real":
        from matteconv.verify.golden_real import REAL_FP16

        tol = dict(REAL_FP16)
    elif "=" in args.tolerance:  # named figures, e.g. confident_mean_abs=1e-3 (errors() keys)
        tol = {k: float(v) for k, v in (kv.split("=") for kv in args.tolerance.split(","))}
    else:
        a, b = args.tolerance.split("/")
        tol = {"max_abs": float(a), "mean_abs": float(b)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for g in args.golden:
            rows.append(measure_caffe(g, Path(tmp)) if args.caffe else
                        measure(g, tol, Path(tmp), args.prune_seconds))
            print(json.dumps(rows[-1]), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
