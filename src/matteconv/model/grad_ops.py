"""MODNet's training path: the eval path's functions with cheaper backward passes (issue 20).

Training spends two thirds of a step in backward, where PyTorch's CPU kernels for two of MODNet's operations are
slow and a third is computed on channels that need no gradient. The training path (`module.training`) uses these
instead; the eval path, which every export traces, never does.

- `Up2`: bilinear x2 whose backward is one depthwise convolution instead of PyTorch's scatter.
- `OneChannel1x1`: the heads' final 1x1 convolution to one channel, whose backward is a broadcast product and a
  batched matrix-vector product instead of oneDNN's convolution backward.
- `conv_of_concat`: a convolution of `torch.cat(parts, 1)` as the sum of one convolution per part. An image part
  needs no input gradient, and the parts' channel counts align with the vector width where 35 or 99 do not.

Each is the same function as the eval path's in real arithmetic. `Up2` and `OneChannel1x1` compute their forward
with the very call the eval path makes (bitwise the same); their backward and `conv_of_concat`'s forward sum in
another order than PyTorch's, so they differ from it by fp32 rounding: tests/test_grad_ops.py bounds each by
the dtype's epsilon times the number of terms summed. A seeded run still repeats itself exactly on one machine.
Measured on 2 threads, batch 4 at 256x256 (the `make bench` training step): README, "How the numbers look here".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# grad_x[i] = 0.25 g[2i-1] + 0.75 g[2i] + 0.75 g[2i+1] + 0.25 g[2i+2]: the transpose of bilinear x2 (below)
_UP2_TAPS = (0.25, 0.75, 0.75, 0.25)


def up2_eval(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling, half-pixel centres, edges clamped: NxCxHxW -> NxCx2Hx2W, any float dtype."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class Up2(torch.autograd.Function):
    """`up2_eval` with its backward as one depthwise convolution instead of PyTorch's `upsample_bilinear2d_backward`
    (a scatter: 22 ms against 8 ms at 4x32x256x256 on 2 threads).

    Forward, per axis (PyTorch's `area_pixel_compute_source_index`, scale 1/2, align_corners=False):
    out[2i] = 0.75 x[i] + 0.25 x[i-1] and out[2i+1] = 0.75 x[i] + 0.25 x[i+1], an index outside [0, n) clamped to
    the edge. Its transpose: grad_x[i] = 0.25 g[2i-1] + 0.75 g[2i] + 0.75 g[2i+1] + 0.25 g[2i+2] with g padded by
    one replicated sample on each side, where the clamped taps land: a stride-2 convolution with the separable
    kernel k x k, k = (1, 3, 3, 1) / 4, every weight exact in binary."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return up2_eval(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        channels = grad.shape[1]
        k = torch.tensor(_UP2_TAPS, dtype=grad.dtype, device=grad.device)
        kernel = (k[:, None] * k[None, :]).expand(channels, 1, 4, 4).contiguous()
        return F.conv2d(F.pad(grad, (1, 1, 1, 1), mode="replicate"), kernel, stride=2, groups=channels)


def up2(x: torch.Tensor, training: bool = False) -> torch.Tensor:
    """`up2_eval`; with `training` and an input that needs its gradient, through `Up2`."""
    if training and x.requires_grad:
        return Up2.apply(x)
    return up2_eval(x)


class OneChannel1x1(torch.autograd.Function):
    """`F.conv2d(x, weight, bias)` for a 1x1 convolution to one channel (weight 1xCx1x1, bias 1), with backward
    grad_x = g * weight (a broadcast product), grad_weight[c] = sum over n, h, w of g * x[:, c] (a batched
    matrix-vector product) and grad_bias = sum of g. Forward and backward at 4x32x256x256 on 2 threads: 22 ms with
    oneDNN's convolution backward, 11 with these."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        n, c = x.shape[:2]
        grad_x = grad * weight.view(1, c, 1, 1) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(x.reshape(n, c, -1), grad.reshape(n, -1, 1)).sum(0).view_as(weight)
        grad_b = grad.sum().view(1) if ctx.has_bias else None
        return grad_x, grad_w, grad_b


def conv1x1_to_one(conv: nn.Conv2d, x: torch.Tensor, training: bool) -> torch.Tensor:
    """`conv(x)` for a 1x1, stride 1, one-output-channel `conv`; in training through `OneChannel1x1`."""
    if training and torch.is_grad_enabled():
        return OneChannel1x1.apply(x.contiguous(), conv.weight, conv.bias)
    return conv(x)


def conv_of_concat(block: nn.Module, parts: tuple[torch.Tensor, ...], training: bool) -> torch.Tensor:
    """`block(torch.cat(parts, 1))`, for a `Conv2dIBNormRelu` (convolution, then optional IBNorm and ReLU) or an
    `nn.Sequential` that starts with one. In training, that first convolution is the sum of one convolution per
    part, with the weight sliced by input channels and the bias added once, by the first part; the rest of the
    block follows unchanged. The convolution must have groups 1."""
    if not training:
        return block(torch.cat(parts, 1))
    first, rest = (block[0], list(block)[1:]) if isinstance(block, nn.Sequential) else (block, [])
    conv = first.layers[0]
    out, start = None, 0
    for part in parts:
        weight = conv.weight[:, start:start + part.shape[1]]
        start += part.shape[1]
        y = F.conv2d(part, weight, conv.bias if out is None else None, conv.stride, conv.padding, conv.dilation)
        out = y if out is None else out.add_(y)  # in place: a convolution's backward does not read its output
    for layer in [*first.layers[1:], *rest]:
        out = layer(out)
    return out
