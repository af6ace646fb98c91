#!/usr/bin/env python3
"""INT8 prediction cost (issue 18), on the trained temporal reference and the golden clip (320x320, 10 frames):
- calibration (IFMR + ARQ, AMCT's defaults) plus the INT8 prediction of every frame: goal < 120 s;
- one frame through the INT8 emulator (onnxruntime) against the torch stage (PyTorch fp32, what `verify` runs
  first) and the fp16 emulator, timed alternately: goal INT8 / torch <= 3.
`--json FILE` writes the numbers."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import console, time_alternately  # noqa: E402  (one timing loop for every benchmark)

from matteconv.backends import TorchBackend  # noqa: E402
from matteconv.export.onnx import export_onnx  # noqa: E402
from matteconv.fp16 import open_fp16_backend  # noqa: E402
from matteconv.int8.emulate import Int8OnnxBackend  # noqa: E402
from matteconv.int8.quantize import calibrate, errors, golden_inputs, predict  # noqa: E402
from matteconv.model.checkpoint import load_checkpoint  # noqa: E402
from matteconv.reference import trained_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "ref4_320.onnx"
        ck = load_checkpoint(trained_path(4))
        export_onnx(ck, model, (320, 320))
        inputs = golden_inputs(ROOT / "golden" / "clip")
        t0 = time.perf_counter()
        record = calibrate(model, inputs)
        t_cal = time.perf_counter() - t0
        err = errors(predict(model, record, inputs.xs), inputs.goldens)
        t_total = time.perf_counter() - t0
        x = inputs.xs[1]
        torch_stage, int8, fp16 = TorchBackend(ck.model), Int8OnnxBackend(model, record), open_fp16_backend(model)
        ms = time_alternately({"torch": lambda: torch_stage.run(x), "int8": lambda: int8.run(x),
                               "fp16": lambda: fp16.run(x)}, args.repeats)
    res = {"calibration_s": t_cal, "calibration_and_prediction_s": t_total, "goal_s": 120.0,
           "torch_ms": ms["torch"], "int8_ms": ms["int8"], "fp16_ms": ms["fp16"],
           "int8_vs_torch": ms["int8"] / ms["torch"], "goal_ratio": 3.0, "predicted_int8": err}
    console.print(f"INT8 on the golden clip (320x320, 10 frames): calibration {t_cal:.1f} s, calibration + "
                  f"prediction {t_total:.1f} s (goal < 120 s); per frame torch {ms['torch']:.0f} ms, INT8 emulator "
                  f"{ms['int8']:.0f} ms = {res['int8_vs_torch']:.2f}x (goal <= 3x), fp16 emulator {ms['fp16']:.0f} "
                  f"ms; predicted INT8 max/mean |d| {err['max_abs']:.3g} / {err['mean_abs']:.3g}", highlight=False)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
