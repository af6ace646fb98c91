"""`compare CKPT MODEL.onnx|MODEL.prototxt --precision int8`: where INT8 hurts. Each layer AMCT would quantize is
quantized alone (everything else under the fp16 device model) on one golden input, and ranked by the alpha error
it adds over the fp16 prediction (max |d| vs the float64 golden); each layer is named with the PyTorch module it
came from.
These are the layers `quantize --tolerance` keeps fp16 first.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Int8Row:
    rank: int
    layer: str
    module: str | None
    op: str
    macs_share: float
    max_abs: float  # alpha vs float64 with this layer alone INT8
    mean_abs: float
    added_max: float  # over the fp16 prediction
    added_mean: float


@dataclass
class Int8CompareReport:
    model: str
    golden: str
    input_name: str
    fp16: dict
    all_int8: dict
    rows: list[Int8Row]
    skipped: list[tuple[str, str]]  # layers AMCT/matteconv keep fp16 anyway, with why
    seconds: float

    def to_dict(self) -> dict:
        from ..fileio import json_safe

        return json_safe(asdict(self))


def compare_int8(ckpt: str | Path | None, model: str | Path, golden_dir: str | Path, input_name: str | None = None,
                 record_path: str | Path | None = None) -> Int8CompareReport:
    from ..int8.quantize import errors, golden_inputs, rank_layers, switchable
    from ..model.checkpoint import load_checkpoint
    from .compare import ModuleTree, _pick_input, onnx_nodes
    from .golden import load_golden
    from .int8_stages import load_or_calibrate

    t0 = time.perf_counter()
    gset = load_golden(golden_dir)
    idx = _pick_input(gset, input_name)
    record = load_or_calibrate(Path(model), gset, Path(record_path) if record_path else None)
    inputs = golden_inputs(golden_dir)
    x, gold = [inputs.xs[idx]], [inputs.goldens[idx]]
    backend = switchable(model, record)
    fp16 = errors([backend.run(x[0], set())[0, 0].astype(np.float64)], gold)
    every = errors([backend.run(x[0], set(backend.layers))[0, 0].astype(np.float64)], gold)
    ranked = rank_layers(backend, x, gold)
    if hasattr(backend, "close"):  # the Caffe emulator's pycaffe worker
        backend.close()
    scopes = {}
    if ckpt is not None:  # layer -> PyTorch module path, as `compare` maps them
        tree = ModuleTree(load_checkpoint(ckpt).model)
        if Path(model).suffix.lower() == ".prototxt":  # the export names each layer after its module
            scopes = {name: tree.resolve_caffe_name(name)[0] for name in backend.layers}
        else:
            import onnx

            scopes = {n.name: n.scope for n in onnx_nodes(onnx.load(str(model), load_external_data=False), tree)}
    rows = [Int8Row(i, h.name, scopes.get(h.name), h.op, h.macs / record.total_macs if record.total_macs else 0.0,
                    h.max_abs, h.mean_abs, h.added_max, h.added_mean) for i, h in enumerate(ranked)]
    return Int8CompareReport(str(model), str(gset.root), gset.items[idx].name, fp16, every, rows,
                             [(r.name, r.skip) for r in record.skipped], time.perf_counter() - t0)
