#!/usr/bin/env python3
"""The lighter MODNet (issue 19): `hr_channels=16` against the official 32, both exported by `matteconv export`
(ONNX, onnxruntime, 2 threads) and in torch eager, timed alternately in one run at 512x512 and 288x512; reported
as hr16 / hr32 latency. Weights do not change the speed: both models are random with BatchNorm statistics from
one pass over the built-in photos (reference.quick_reference), so only the architecture differs."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import time_alternately  # noqa: E402

from matteconv import preprocess, samples  # noqa: E402
from matteconv.backends import ort_session  # noqa: E402
from matteconv.export.onnx import export_onnx  # noqa: E402
from matteconv.model.checkpoint import load_checkpoint  # noqa: E402
from matteconv.reference import quick_reference, save_reference  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=12, help="timed rounds (a multiple of 24 balances 4 runners)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = {}
        for hr in (32, 16):
            ckpts[hr] = Path(tmp) / f"hr{hr}.ckpt"
            save_reference(quick_reference(3, hr), ckpts[hr])
        for size in ((512, 512), (288, 512)):
            x = preprocess.prepare(samples.photos()["astronaut"], "device", size).tensor
            runners, params, gmac = {}, {}, {}
            for hr, path in ckpts.items():
                ck = load_checkpoint(path)
                out = Path(tmp) / f"hr{hr}_{size[0]}x{size[1]}.onnx"
                export_onnx(ck, out, size)
                sess, xt, model = ort_session(out.read_bytes()), torch.from_numpy(x), ck.model
                params[hr] = sum(p.numel() for p in model.parameters())
                with torch.no_grad(), FlopCounterMode(display=False) as flops:
                    model(torch.from_numpy(x))
                gmac[hr] = flops.get_total_flops() / 2e9  # torch counts 2 FLOPs per multiply-accumulate
                runners[f"onnx{hr}"] = lambda s=sess: s.run(None, {"input": x})

                def eager(m=model):
                    with torch.no_grad():
                        m(xt)
                runners[f"eager{hr}"] = eager
            ms = time_alternately(runners, args.repeats)
            rows.append({"size": f"{size[0]}x{size[1]}", "onnx_hr32_ms": ms["onnx32"], "onnx_hr16_ms": ms["onnx16"],
                         "onnx_ratio": ms["onnx16"] / ms["onnx32"], "eager_hr32_ms": ms["eager32"],
                         "eager_hr16_ms": ms["eager16"], "eager_ratio": ms["eager16"] / ms["eager32"],
                         "params_hr32": params[32], "params_hr16": params[16], "gmac_hr32": gmac[32],
                         "gmac_hr16": gmac[16]})
    t = Table(title="MODNet hr_channels=16 vs 32, median ms (2 threads, timed alternately)")
    for c in ("size", "ONNX hr32", "ONNX hr16", "hr16/hr32", "eager hr32", "eager hr16", "hr16/hr32", "GMAC",
              "params"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["size"], f"{r['onnx_hr32_ms']:.1f}", f"{r['onnx_hr16_ms']:.1f}", f"{r['onnx_ratio']:.3f}",
                  f"{r['eager_hr32_ms']:.1f}", f"{r['eager_hr16_ms']:.1f}", f"{r['eager_ratio']:.3f}",
                  f"{r['gmac_hr16']:.2f} / {r['gmac_hr32']:.2f}",
                  f"{r['params_hr16']:,} / {r['params_hr32']:,}")
    Console(width=140).print(t)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
