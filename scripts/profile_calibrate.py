#!/usr/bin/env python3
"""Fit the profile cost model's free constants on published Ascend 310 batch-1 times and report leave-one-out
errors (issue 36).

Builds each model of src/matteconv/ascend/profile/published.json as an ONNX graph with random weights (torch.nn
builders below, in torchvision's layouts: torchvision is not installed here), profiles it with candidate
constants and fits cube_efficiency, bandwidth_gbs and op_overhead_us by least squares on log(predicted /
published). Leave-one-out: each model predicted from a fit on the others. Writes fitted.json beside the cost
model (unless --dry-run) and prints the table docs/profile.md shows. With --modnet, also profiles the reference
MODNet exports (320, 384, 512, 704x1280; fp16 and all-INT8) and writes them into fitted.json.

    PYTHONPATH=src .venv/bin/python scripts/profile_calibrate.py [--dry-run] [--modnet]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from matteconv.ascend.profile import Fitted, get_soc, load_graph, profile_graph  # noqa: E402
from matteconv.ascend.profile.hardware import FITTED_FILE, PUBLISHED_FILE  # noqa: E402


# --- builders (torchvision layouts) -----------------------------------------------------------------------------

def cbr(cin, cout, k, s=1, p=None, g=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2 if p is None else p, groups=g, bias=False),
                         nn.BatchNorm2d(cout), act(inplace=True))


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, c, s):
        super().__init__()
        self.a = cbr(cin, c, 3, s)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.down = (nn.Sequential(nn.Conv2d(cin, c, 1, s, bias=False), nn.BatchNorm2d(c))
                     if s != 1 or cin != c else None)

    def forward(self, x):
        return torch.relu(self.b(self.a(x)) + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, c, s):
        super().__init__()
        self.body = nn.Sequential(cbr(cin, c, 1), cbr(c, c, 3, s), nn.Conv2d(c, 4 * c, 1, bias=False),
                                  nn.BatchNorm2d(4 * c))
        self.down = (nn.Sequential(nn.Conv2d(cin, 4 * c, 1, s, bias=False), nn.BatchNorm2d(4 * c))
                     if s != 1 or cin != 4 * c else None)

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))


def resnet(block, counts, classes=1000):
    layers, cin = [cbr(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, 1)], 64
    for i, n in enumerate(counts):
        c = 64 * 2 ** i
        for j in range(n):
            layers.append(block(cin, c, 2 if j == 0 and i > 0 else 1))
            cin = c * block.expansion
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


class InvRes(nn.Module):
    def __init__(self, cin, cout, s, t):
        super().__init__()
        hid = cin * t
        body = [] if t == 1 else [cbr(cin, hid, 1, act=nn.ReLU6)]
        body += [cbr(hid, hid, 3, s, g=hid, act=nn.ReLU6), nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body, self.res = nn.Sequential(*body), s == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.res else self.body(x)


def mobilenetv2(classes=1000):
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers, cin = [cbr(3, 32, 3, 2, act=nn.ReLU6)], 32
    for t, c, n, s in cfg:
        for i in range(n):
            layers.append(InvRes(cin, c, s if i == 0 else 1, t))
            cin = c
    return nn.Sequential(*layers, cbr(cin, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(1280, classes))


def vgg16_catdog():
    layers, cin = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, 1, 1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 2))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.b1 = cbr(cin, c1, 1)
        self.b2 = nn.Sequential(cbr(cin, c3r, 1), cbr(c3r, c3, 3))
        self.b3 = nn.Sequential(cbr(cin, c5r, 1), cbr(c5r, c5, 3))  # torchvision's GoogLeNet uses 3x3 here
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), cbr(cin, pp, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def googlenet(classes=1000):
    return nn.Sequential(
        cbr(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True), cbr(64, 64, 1), cbr(64, 192, 3),
        nn.MaxPool2d(3, 2, ceil_mode=True), Inception(192, 64, 96, 128, 16, 32, 32),
        Inception(256, 128, 128, 192, 32, 96, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
        Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
        Inception(512, 128, 128, 256, 24, 64, 64), Inception(512, 112, 144, 288, 32, 64, 64),
        Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(2, 2, ceil_mode=True),
        Inception(832, 256, 160, 320, 32, 128, 128), Inception(832, 384, 192, 384, 48, 128, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1024, classes))


BUILDERS = {"resnet18": lambda: resnet(Basic, [2, 2, 2, 2]), "resnet50": lambda: resnet(Bottleneck, [3, 4, 6, 3]),
            "resnet101": lambda: resnet(Bottleneck, [3, 4, 23, 3]),
            "resnet152": lambda: resnet(Bottleneck, [3, 8, 36, 3]),
            "mobilenetv2": mobilenetv2,
            "vgg16_catdog": vgg16_catdog, "googlenet": googlenet}


def export(builder: str, hw, folder: Path) -> Path:
    """The architecture with random weights, eval mode (BatchNorm folded by the exporter), opset 11."""
    torch.manual_seed(0)
    model = BUILDERS[builder]().eval()
    path = folder / f"{builder}.onnx"
    with torch.no_grad():
        torch.onnx.export(model, torch.randn(1, 3, *hw), str(path), opset_version=11, dynamo=False,
                          input_names=["input"], output_names=["output"])
    return path


# --- fit --------------------------------------------------------------------------------------------------------

NAMES = ("cube_efficiency", "bandwidth_gbs", "op_overhead_us")
LOWER, UPPER = (0.05, 5.0, 0.0), (1.0, 500.0, 200.0)


def predict(graphs, entries, x) -> list[float]:
    soc = get_soc("Ascend310", Fitted(*x))
    return [profile_graph(g, soc, output_type=e["output"], aipp=e["aipp"]).total * 1e3 for g, e in zip(graphs, entries)]


def fit(graphs, entries, x0=(0.5, 67.0, 10.0)):
    import numpy as np
    from scipy.optimize import least_squares

    target = np.log([e["time_ms"] for e in entries])
    res = least_squares(lambda x: np.log(predict(graphs, entries, x)) - target, x0, bounds=(LOWER, UPPER),
                        diff_step=1e-3)
    return tuple(float(v) for v in res.x)


def modnet_rows(soc) -> list[dict]:
    """Profile the reference MODNet (random-free: the trained reference weights) exported as `matteconv export`
    does, at the issue's sizes, fp16 and all-INT8, fp32 output (our default build) and fp16 output."""
    from matteconv.export.onnx.exporter import export_onnx
    from matteconv.model.checkpoint import load_checkpoint
    from matteconv.ascend.profile import precisions_for

    ckpt = load_checkpoint(ROOT / "src" / "matteconv" / "references" / "modnet_ref3.safetensors")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for hw in [(320, 320), (384, 384), (512, 512), (704, 1280)]:
            path = Path(d) / f"modnet_{hw[0]}x{hw[1]}.onnx"
            export_onnx(ckpt, path, hw)
            g = load_graph(path)
            for prec in ("fp16", "int8"):
                for out in ("fp32", "fp16"):
                    p = profile_graph(g, soc, precisions_for(prec, None), out, "YUV420SP_U8")
                    rows.append({"input_hw": list(hw), "precision": prec, "output": out,
                                 "total_ms": round(p.total * 1e3, 3), "fps": round(p.fps, 1),
                                 "by_bound_ms": {k: round(v * 1e3, 3) for k, v in p.by("bound").items()},
                                 "warnings": sorted({w.rule for w in p.warnings})})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="print, do not write fitted.json")
    ap.add_argument("--modnet", action="store_true", help="also profile the reference MODNet exports")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    published = json.loads(PUBLISHED_FILE.read_text(encoding="utf-8"))
    entries = published["models"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        built = {e["builder"]: load_graph(export(e["builder"], e["input_hw"], Path(d))) for e in entries}
    graphs = [built[e["builder"]] for e in entries]
    x = fit(graphs, entries)
    full = predict(graphs, entries, x)
    loo = []
    for i in range(len(entries)):
        rest = [j for j in range(len(entries)) if j != i]
        xi = fit([graphs[j] for j in rest], [entries[j] for j in rest], x)
        loo.append(predict([graphs[i]], [entries[i]], xi)[0])
    rows = []
    print(f"{'model':12} {'published':>9} {'fit':>8} {'err':>7} {'LOO':>8} {'LOO err':>8}")
    for e, f, lo in zip(entries, full, loo):
        err, lerr = f / e["time_ms"] - 1, lo / e["time_ms"] - 1
        rows.append({"name": e["name"], "published_ms": e["time_ms"], "fit_ms": round(f, 4), "fit_error": round(err, 4),
                     "loo_ms": round(lo, 4), "loo_error": round(lerr, 4)})
        print(f"{e['name']:12} {e['time_ms']:9.3f} {f:8.3f} {err:+7.1%} {lo:8.3f} {lerr:+8.1%}")
    abs_loo = [abs(r["loo_error"]) for r in rows]
    print(f"constants: " + ", ".join(f"{n} = {v:.4g}" for n, v in zip(NAMES, x)))
    print(f"leave-one-out |error|: median {statistics.median(abs_loo):.1%}, worst {max(abs_loo):.1%} "
          f"({time.perf_counter() - t0:.1f} s)")
    out = {"about": "Fitted by scripts/profile_calibrate.py on published.json (least squares on log time); "
                    "loo_* = each model predicted from a fit on the others.",
           "constants": dict(zip(NAMES, [round(v, 5) for v in x])), "models": rows,
           "loo_median_abs_error": round(statistics.median(abs_loo), 4), "loo_worst_abs_error": round(max(abs_loo), 4)}
    val = published.get("validation", {}).get("models", [])
    if val:
        pred = predict([built[e["builder"]] for e in val], val, x)
        out["validation"] = [{"name": e["name"], "published_ms": e["time_ms"], "predicted_ms": round(p, 4),
                              "ratio": round(p / e["time_ms"], 4)} for e, p in zip(val, pred)]
        print("validation (Paddle-Lite, host side included):")
        for r in out["validation"]:
            print(f"  {r['name']:12} {r['published_ms']:7.2f} ms, predicted device {r['predicted_ms']:7.3f} ms "
                  f"({r['ratio']:.0%})")
    if args.modnet:
        out["modnet"] = modnet_rows(get_soc("Ascend310", Fitted(*x)))
        for r in out["modnet"]:
            print(f"MODNet {r['input_hw'][0]}x{r['input_hw'][1]} {r['precision']} out {r['output']}: "
                  f"{r['total_ms']:.2f} ms ({r['fps']} fps) {r['warnings']}")
    elif FITTED_FILE.is_file():
        old = json.loads(FITTED_FILE.read_text(encoding="utf-8"))
        if "modnet" in old:
            out["modnet"] = old["modnet"]
    if not args.dry_run:
        FITTED_FILE.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {FITTED_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
