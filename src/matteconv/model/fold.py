"""Fold IBNorm's BatchNorm half into the conv before it, for export.

Why: runtimes fuse Conv+BatchNorm only when BN directly follows the conv; IBNorm slices the channels first,
so a plain export keeps 16 BatchNormalization nodes at full resolution. Folding them (in float64, exact up to
rounding) removes that work from the ONNX graph; the Caffe exporter does the same fold its own way.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .modnet import Conv2dIBNormRelu, IBNorm


class _IBNormFolded(nn.Module):
    """IBNorm whose BatchNorm half already lives in the preceding conv: identity on the first half."""

    def __init__(self, ib: IBNorm):
        super().__init__()
        self.bnorm_channels = ib.bnorm_channels
        self.inorm = ib.inorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x[:, : self.bnorm_channels], self.inorm(x[:, self.bnorm_channels :].contiguous())), 1)


def fold_ibnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval) with every Conv -> IBNorm BatchNorm folded into the conv's first channels."""
    model = copy.deepcopy(model).eval()
    for block in model.modules():
        if not isinstance(block, Conv2dIBNormRelu) or len(block.layers) < 2 or not isinstance(block.layers[1], IBNorm):
            continue
        conv, ib = block.layers[0], block.layers[1]
        bn, n = ib.bnorm, ib.bnorm_channels
        with torch.no_grad():
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = conv.weight.double()
            b = conv.bias.double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            w[:n] *= scale.view(-1, 1, 1, 1)
            b[:n] = (b[:n] - bn.running_mean.double()) * scale + bn.bias.double()
            conv.weight.copy_(w.to(conv.weight.dtype))
            if conv.bias is None:
                conv.bias = nn.Parameter(b.to(conv.weight.dtype))
            else:
                conv.bias.copy_(b.to(conv.bias.dtype))
        block.layers[1] = _IBNormFolded(ib)
    return model
