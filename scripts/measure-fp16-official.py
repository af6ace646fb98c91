"""Issue 32 item 4: the fp16 prediction of the official MODNet on golden/real, against float64, next to conversions
that are wrong (bilinear Resize computed as asymmetric, as align_corners, or as nearest: fp32 onnxruntime of the
official ONNX so edited), to decide what judges a deployable matte. Prints a JSON table per set and stage:
max, 99.9th / 99th percentile, mean |d alpha|, the share of pixels off by more than 0.05 / 0.1, confident max /
mean (metrics.confident_errors), SAD and Grad; worst over the set's inputs."""
from __future__ import annotations

import json
import sys

import numpy as np
import onnx

from matteconv.backends import ort_session
from matteconv.fp16.torch_emu import Fp16TorchBackend
from matteconv.official import official_checkpoint, official_onnx
from matteconv.model.checkpoint import load_checkpoint
from matteconv.verify import metrics
from matteconv.verify.golden import load_golden, model_input


def stats(alpha: np.ndarray, gold: np.ndarray) -> dict:
    d = np.abs(np.asarray(alpha, np.float64).reshape(gold.shape) - gold)
    m = metrics.all_metrics(np.asarray(alpha, np.float64).reshape(gold.shape), gold)
    c = metrics.confident_errors(np.asarray(alpha, np.float64).reshape(gold.shape), gold)
    return {"max": float(d.max()), "p99.9": float(np.percentile(d, 99.9)), "p99": float(np.percentile(d, 99)),
            "mean": float(d.mean()), "over_0.05": float((d > 0.05).mean()), "over_0.1": float((d > 0.1).mean()),
            "confident_max": c["confident_max_abs"], "confident_mean": c["confident_mean_abs"],
            "sad": m["sad"], "grad": m["grad"]}


def wrong_resize(mode: str):
    model = onnx.load(str(official_onnx()))
    for n in model.graph.node:
        if n.op_type == "Resize":
            for a in n.attribute:
                if mode == "nearest" and a.name == "mode":
                    a.s = b"nearest"
                if mode != "nearest" and a.name == "coordinate_transformation_mode":
                    a.s = mode.encode()
    return ort_session(model.SerializeToString(), where=f"official ({mode})")


def main(sets: list[str]) -> None:
    model = load_checkpoint(official_checkpoint()).model
    fp16 = Fp16TorchBackend(model)
    fp32 = ort_session(str(official_onnx()), where="official")
    wrong = {m: wrong_resize(m) for m in ("asymmetric", "align_corners", "nearest")}
    out = {}
    for root in sets:
        gset = load_golden(root)
        rows: dict[str, list[dict]] = {}
        for item, frame in zip(gset.items, gset.frames()):
            gold = item.golden_alpha().astype(np.float64)
            x = model_input(frame, None)
            runs = {"fp32-onnxruntime": fp32.run(None, {"input": x})[0], "fp16-torch": fp16.run(x)}
            runs |= {f"fp32 {m}": s.run(None, {"input": x})[0] for m, s in wrong.items()}
            for name, alpha in runs.items():
                rows.setdefault(name, []).append({"input": item.name, **stats(alpha, gold)})
        out[root] = {name: {k: max(r[k] for r in rs) for k in rs[0] if k != "input"} | {
            "worst_max_input": max(rs, key=lambda r: r["max"])["input"]} for name, rs in rows.items()}
        out[root]["per_input_fp16"] = rows["fp16-torch"]
        print(json.dumps({root: out[root]}, indent=1), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["golden/real/official", "golden/real/384", "golden/real/320"])
