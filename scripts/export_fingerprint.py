#!/usr/bin/env python3
"""sha256 of `matteconv export --to onnx` for each profile / option combination on the shipped trained references.

Why: a refactor of the ONNX rewrites must not change a byte of what users get. Run it before and after and diff the
two listings (or `--compare BEFORE.json`, which exits 1 and names every combination that changed). The hashes
depend on this process's torch, onnx, onnxsim and onnxruntime versions and, for `--runtime onnxruntime`, on the
CPU's NCHWc block (`nchwc_block_size`): compare listings made on one machine with one venv only; the header line
records them. Every export is the real one (torch export, onnxsim, rewrites, checker, parity test against PyTorch).

    PYTHONPATH=src .venv/bin/python scripts/export_fingerprint.py --json /tmp/before.json
    PYTHONPATH=src .venv/bin/python scripts/export_fingerprint.py --compare /tmp/before.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from matteconv.export.onnx import export_onnx
from matteconv.export.onnx.ort_block import nchwc_block_size
from matteconv.model.checkpoint import load_checkpoint
from matteconv.reference import trained_path

SIZE = (384, 384)
WIDE = (288, 1280)  # depthwise inputs 640 wide (1/2 resolution) break CANN's depthwise rule: depthwise-split runs
NO_SPLIT_CONCAT = ("relu-before-concat", "split-concat-conv")  # what --no-split-concat skips
# name -> (input channels, size, export_onnx keyword arguments)
COMBOS: dict[str, tuple[int, tuple[int, int], dict]] = {
    "ref3-any": (3, SIZE, {}),
    "ref3-onnxruntime": (3, SIZE, {"runtime": "onnxruntime"}),
    "ref3-any-no-split-concat": (3, SIZE, {"skip": NO_SPLIT_CONCAT}),
    "ref3-onnxruntime-no-split-concat": (3, SIZE, {"runtime": "onnxruntime", "skip": NO_SPLIT_CONCAT}),
    "ref3-any-no-centre-norms": (3, SIZE, {"skip": ("centre-instance-norm",)}),
    "ref3-onnxruntime-no-centre-norms": (3, SIZE, {"runtime": "onnxruntime", "skip": ("centre-instance-norm",)}),
    "ref3-any-split-slices": (3, SIZE, {"add": ("split-sliced-conv",)}),
    "ref3-any-fold-batchnorm": (3, SIZE, {"fold_batchnorm": True}),
    "ref3-onnxruntime-fold-batchnorm": (3, SIZE, {"runtime": "onnxruntime", "fold_batchnorm": True}),
    "ref3-any-no-simplify": (3, SIZE, {"do_simplify": False}),
    "ref3-any-opset13": (3, SIZE, {"opset": 13}),
    "ref3-any-opset17": (3, SIZE, {"opset": 17}),
    "ref3-any-dynamic": (3, SIZE, {"dynamic": True}),
    "ref3-any-288x1280": (3, WIDE, {}),
    "ref3-onnxruntime-288x1280": (3, WIDE, {"runtime": "onnxruntime"}),
    "ref4-any": (4, SIZE, {}),
    "ref4-onnxruntime": (4, SIZE, {"runtime": "onnxruntime"}),
    "ref4-any-split-inputs": (4, SIZE, {"split_inputs": True}),
}


def fingerprint(name: str, tmp: Path) -> tuple[str, float]:
    """(sha256 of the exported file, seconds the export took) for one combination."""
    channels, size, kwargs = COMBOS[name]
    out = tmp / f"{name}.onnx"
    start = time.perf_counter()
    export_onnx(load_checkpoint(trained_path(channels)), out, size, **kwargs)
    took = time.perf_counter() - start
    return hashlib.sha256(out.read_bytes()).hexdigest(), took


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxsim

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxsim": onnxsim.__version__,
            "onnxruntime": onnxruntime.__version__, "nchwc_block": str(nchwc_block_size())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="a combination name (repeatable); default all")
    ap.add_argument("--json", type=Path, help="write {versions, sha256: {name: hash}} here")
    ap.add_argument("--compare", type=Path, help="a listing written by --json: exit 1 if any hash differs")
    args = ap.parse_args()
    names = args.only or list(COMBOS)
    unknown = [n for n in names if n not in COMBOS]
    if unknown:
        print(f"unknown combination(s) {', '.join(unknown)}; choose from {', '.join(COMBOS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    info = versions()
    print("# " + " ".join(f"{k}={v}" for k, v in info.items()))
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            hashes[name], took = fingerprint(name, Path(tmp))
            print(f"{hashes[name]}  {name}  ({took:.1f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"versions": info, "sha256": hashes}, indent=1) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        changed = [n for n in names if before["sha256"].get(n) != hashes[n]]
        if before["versions"] != info:
            print(f"note: versions differ from {args.compare}: {before['versions']}", file=sys.stderr)
        for n in changed:
            print(f"changed: {n} {before['sha256'].get(n)} -> {hashes[n]}", file=sys.stderr)
        print(f"{len(names) - len(changed)} of {len(names)} identical to {args.compare}")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
