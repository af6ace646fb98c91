"""The checkpoint as the device runs it: BatchNorm folded, weights on the fp16 grid, every module's inputs and
outputs rounded to fp16, computed in float32 (so convolutions accumulate in fp32 as the Cube unit does).

Why hooks on a float32 model rather than `model.half()`: torch's CPU float16 kernels are slow, and InstanceNorm
would then compute in fp16, which the device does not (device.DEVICE_MODEL).
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..model.fold import fold_ibnorm
from .device import round16, round16_t


def fold_batchnorms(model: nn.Module) -> nn.Module:
    """In place: every BatchNorm2d right after a Conv2d in a Sequential is fused into it (-> Identity), as
    ONNX export's constant folding, the Caffe lowering and atc all do before the weights go to fp16."""
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
    return model


def folded_form(model: nn.Module) -> nn.Module:
    """A float32 copy with every BatchNorm folded into its conv: the graph the device is given."""
    return fold_batchnorms(fold_ibnorm(copy.deepcopy(model).float().eval()))


# Ops Ascend310 computes in fp16 whatever atc's --keep_dtype asks (op info lists float16 only: [INFO] in
# device.py; README "fp16: predicting the .om", step 2): a kept module's convolutions stay on the fp16 grid.
FP16_ONLY = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def _kept(path: str, mod: nn.Module, keep_fp32: tuple[str, ...]) -> bool:
    """True when leaf `path` lies inside a module of `keep_fp32` (module paths, "" = the whole model) and the
    device can compute it in fp32 (not FP16_ONLY)."""
    inside = any(k == "" or path == k or path.startswith(k + ".") for k in keep_fp32)
    return inside and not isinstance(mod, FP16_ONLY)


def device_form(model: nn.Module, keep_fp32: tuple[str, ...] = ()) -> nn.Module:
    """folded_form with every floating parameter and buffer on the fp16 grid, except those of the leaves kept in
    fp32 (`keep_fp32`: module paths, as `om --keep-fp32` keeps their layers; see _kept)."""
    m = folded_form(model)
    kept = {id(t) for path, mod in _leaves(m) if _kept(path, mod, tuple(keep_fp32))
            for t in list(mod.parameters()) + list(mod.buffers())}
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point() and id(t) not in kept:
                t.copy_(round16_t(t))
    return m


def _leaves(model: nn.Module):
    for path, mod in model.named_modules():
        if not any(True for _ in mod.children()) and not isinstance(mod, nn.Identity):
            yield path, mod


def _round_all(args):
    return tuple(round16_t(a) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def emulate_fp16(model: nn.Module, keep_fp32: tuple[str, ...] = ()) -> list:
    """Hook every leaf module of `model` (a device_form copy): inputs and output rounded to fp16, except the
    leaves kept in fp32 (`keep_fp32`, see _kept: they read and write fp32, as atc's --keep_dtype layers do behind
    the Casts it inserts; a kept leaf after an fp16 one still reads that one's fp16 output). Returns the handles."""
    handles = []
    for path, mod in _leaves(model):
        if _kept(path, mod, tuple(keep_fp32)):
            continue
        handles.append(mod.register_forward_pre_hook(lambda _m, args: _round_all(args)))
        handles.append(mod.register_forward_hook(
            lambda _m, _a, out: round16_t(out) if isinstance(out, torch.Tensor) else out))
    return handles


def run_model(model: nn.Module, x: np.ndarray, fp16: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if fp16:
        t = round16_t(t)
    with torch.no_grad():
        out = model(t[:, :3], t[:, 3:4]) if model.split_inputs else model(t)
    return round16_t(out) if fp16 else out


class Fp16TorchBackend:
    """Backend protocol: the checkpoint under the device model (the `fp16` stage of the checkpoint)."""

    name = "torch-fp16"
    size = None

    def __init__(self, model: nn.Module, keep_fp32: tuple[str, ...] = ()):
        """`keep_fp32`: module paths whose layers the .om keeps in fp32 (`om --keep-fp32`; see _kept)."""
        self.model = device_form(model, keep_fp32)
        self.in_channels = model.in_channels
        self.keep_fp32 = tuple(keep_fp32)
        emulate_fp16(self.model, self.keep_fp32)

    def run(self, x: np.ndarray) -> np.ndarray:
        return run_model(self.model, x, fp16=True).numpy()


def record_modules(model: nn.Module, x: np.ndarray, fp16: bool,
                   inputs_of: Callable[[str, nn.Module], bool] = lambda p, m: False) -> tuple[dict, dict, np.ndarray]:
    """Run a device_form model once (emulated or plain fp32) and keep every module's output (float32 numpy), and
    the input of the modules `inputs_of` selects; returns (outputs by path, inputs by path, alpha)."""
    outs: dict[str, np.ndarray] = {}
    ins: dict[str, np.ndarray] = {}
    handles = emulate_fp16(model) if fp16 else []

    def keep(path):
        def fn(_m, args, out):
            if isinstance(out, torch.Tensor):
                outs[path] = out.detach().numpy().copy()  # copy: in-place ReLUs follow
            if inputs_of(path, _m) and args and isinstance(args[0], torch.Tensor):
                ins[path] = (round16_t(args[0]) if fp16 else args[0]).detach().numpy().copy()
        return fn

    for path, mod in model.named_modules():
        if path:
            handles.append(mod.register_forward_hook(keep(path)))
    try:
        alpha = run_model(model, x, fp16).numpy()
    finally:
        for h in handles:
            h.remove()
    return outs, ins, alpha


__all__ = ["Fp16TorchBackend", "device_form", "folded_form", "emulate_fp16", "record_modules", "round16"]
