"""`export_caffe`: checkpoint -> OUT.prototxt + OUT.caffemodel for a target, written atomically and kept only
if pycaffe reproduces the PyTorch fp32 matte on a real photo (the rule in export/parity.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ... import __version__, preprocess, samples
from ...errors import MatteconvError
from ...fileio import atomic_paths
from ...model.checkpoint import Checkpoint
from ...model.modnet import MODNet, with_split_inputs
from ..onnx.exporter import run_float64
from ..parity import judge
from .convert import convert
from .runner import split_input
from .segments import run_in_segments, start_worker
from .writer import write_caffemodel, write_prototxt

PROBE_PHOTO = "astronaut"


@dataclass
class CaffeExport:
    prototxt: Path
    caffemodel: Path
    target: str
    size: tuple[int, int]
    input_names: list[str]
    layer_counts: dict[str, int]
    num_layers: int
    num_params: int
    max_abs_diff: float  # vs torch fp32 on the probe photo
    mean_abs_diff: float
    seconds: float
    rule_rewrites: list[str] = field(default_factory=list)  # exact rewrites for Ascend rules (export/caffe/depthwise_split.py)


def probe_input(in_channels: int, size: tuple[int, int], photo: str = PROBE_PHOTO) -> np.ndarray:
    """The real photo the export is checked on (1xCxHxW); 4-channel models get a plausible previous matte."""
    x = preprocess.prepare(samples.photo(photo), "device", size).tensor
    if in_channels == 4:
        h, w = size
        prev = samples.soft_ellipse(h, w, h * 0.55, w / 2, h * 0.5, w * 0.3).astype(np.float32)
        x = np.concatenate([x, prev[None, None]], axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _export_model(ckpt: Checkpoint, split_inputs: bool) -> MODNet:
    if not split_inputs:
        return ckpt.model.eval()
    if ckpt.in_channels != 4:
        raise MatteconvError(f"{ckpt.path}: --split-inputs needs a 4-channel (temporal) model, this one has "
                             f"{ckpt.in_channels} input channels")
    return with_split_inputs(ckpt.model, True)


def export_caffe(ckpt: Checkpoint, out_stem: Path, target: str = "bvlc", size: tuple[int, int] = (512, 512),
                 split_inputs: bool = False) -> CaffeExport:
    """Write out_stem.prototxt + out_stem.caffemodel (both or neither) and return what was written."""
    t0 = time.perf_counter()
    size = preprocess.parse_size(tuple(size))
    out_stem = Path(out_stem)
    prototxt, caffemodel = out_stem.with_suffix(".prototxt"), out_stem.with_suffix(".caffemodel")
    model = _export_model(ckpt, split_inputs)
    worker = start_worker()  # caffe imports in the child while the model converts here (about 1 s at any size)
    try:
        return _export(ckpt, model, prototxt, caffemodel, target, size, split_inputs, worker, t0)
    finally:
        worker.close()


def _export(ckpt: Checkpoint, model: MODNet, prototxt: Path, caffemodel: Path, target: str, size: tuple[int, int],
            split_inputs: bool, worker, t0: float) -> CaffeExport:
    h, w = size
    c = ckpt.in_channels
    if split_inputs:
        inputs, names = {"img": (1, 3, h, w), "prev_alpha": (1, 1, h, w)}, {"img": "image", "prev_alpha": "prev_alpha"}
    else:
        inputs, names = {"img": (1, c, h, w)}, {"img": "input"}
    x = probe_input(c, size)
    args = (x[:, :3], x[:, 3:4]) if split_inputs else (x,)
    # the shapes come from a forward on the probe photo, so its output is the PyTorch reference (one forward)
    net = convert(model, inputs, target, names, example=tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in args))
    ref = net.example_output.numpy()
    header = [f"matteconv {__version__} Caffe export (target: {target})",
              f"checkpoint sha256: {ckpt.sha256} ({ckpt.path.name})",
              "inputs: " + ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in net.inputs.items()),
              "output: alpha 1x1x{}x{} in [0, 1]; input normalised (x - 127.5) / 127.5, RGB".format(h, w)]
    header += [f"rewritten for Ascend rules: {r}" for r in net.rewrites]

    with atomic_paths(prototxt, caffemodel) as (tmp_proto, tmp_model):
        write_prototxt(tmp_proto, net, header)
        write_caffemodel(tmp_model, net)
        try:  # one segment of the net at a time: the whole Net would peak at 4.8 GB at 512 (export/caffe/segments.py)
            (alpha,) = run_in_segments(tmp_proto, tmp_model, split_input(x, net.inputs.items()), worker=worker).values()
        except MatteconvError as e:
            raise MatteconvError(str(e).replace(str(tmp_proto), str(prototxt))) from None
        parity = judge(alpha, ref, lambda: run_float64(model, args), prototxt, ckpt.path,
                       f"Caffe (on the {PROBE_PHOTO} photo)")
    return CaffeExport(prototxt, caffemodel, target, size, list(net.inputs), net.counts(), len(net.layers),
                       net.num_params(), parity.max_abs, parity.mean_abs, time.perf_counter() - t0, net.rewrites)
