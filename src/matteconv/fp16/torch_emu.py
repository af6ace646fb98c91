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


def device_form(model: nn.Module) -> nn.Module:
    """folded_form with every floating parameter and buffer on the fp16 grid."""
    m = folded_form(model)
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point():
                t.copy_(round16_t(t))
    return m


def _leaves(model: nn.Module):
    for path, mod in model.named_modules():
        if not any(True for _ in mod.children()) and not isinstance(mod, nn.Identity):
            yield path, mod


def _round_all(args):
    return tuple(round16_t(a) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def emulate_fp16(model: nn.Module) -> list:
    """Hook every leaf module of `model` (a device_form copy): inputs and output rounded to fp16. Returns the
    hook handles."""
    handles = []
    for _, mod in _leaves(model):
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

    def __init__(self, model: nn.Module):
        self.model = device_form(model)
        self.in_channels = model.in_channels
        emulate_fp16(self.model)

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
