"""MODNet's training path: the eval path's functions with cheaper backward passes (issue 20).

Training spends two thirds of a step in backward, where PyTorch's CPU kernels for two of MODNet's operations are
slow and a third is computed on channels that need no gradient. The training path (`module.training`) uses these
instead; the eval path, which every export traces, never does.

- `Up2`: bilinear x2 whose backward is its separable transpose on strided views instead of PyTorch's scatter.
- `OneChannel1x1`: the heads' final 1x1 convolution to one channel, whose backward is a broadcast product and a
  batched matrix-vector product instead of oneDNN's convolution backward.
- `conv_of_concat`: a convolution of `torch.cat(parts, 1)` as the sum of one convolution per part. An image part
  needs no input gradient, and the parts' channel counts align with the vector width where 35 or 99 do not.
- `conv5_of_up2`: the LR branch's 5x5 convolution of a bilinear x2 upsample with its channel sums first, at low
  resolution (`ShiftSum` does the spatial half).
- `IBNormTrain` and `BatchNormTrain`: BatchNorm's training statistics from group_norm's vectorised kernel, and
  IBNorm's two halves in one pass each way (below).

Each is the same function as the eval path's in real arithmetic. `Up2` and `OneChannel1x1` compute their forward
with the very call the eval path makes (bitwise the same); their backward and `conv_of_concat`'s forward sum in
another order than PyTorch's, so they differ from it by fp32 rounding: tests/test_grad_ops.py bounds each by
the dtype's epsilon times the number of terms summed. A seeded run still repeats itself exactly on one machine.
Measured on 2 threads, batch 4 at 256x256 (the `make bench` training step): docs/benchmarks.md.

Training-mode BatchNorm on the CPU collects its statistics with a scalar loop accumulating in double (PyTorch's
`batch_norm_cpu_collect_stats_contiguous_impl`): 6.6 ms at 4x96x128x128 on 2 threads, against 1.3 ms for
`native_group_norm`, whose per-(n, c) moments are vectorised. `IBNormTrain` and `BatchNormTrain` take the per-(n, c)
mean and variance from that kernel and pool them over n by the law of total variance (equal counts, exact in real
arithmetic), then normalise with batch_norm's inference kernel and differentiate with its training backward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def up2_eval(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling, half-pixel centres, edges clamped: NxCxHxW -> NxCx2Hx2W, any float dtype."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _up2_transpose_axis(grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The transpose of bilinear x2 along one axis: `grad` has 2n samples on `dim`, the result n.

    grad_x[i] = 0.75 (g[2i] + g[2i+1]) + 0.25 g[2i-1] + 0.25 g[2i+2], where the clamped taps land on the edges:
    g[-1] counts for x[0] as g[0] does, and g[2n] for x[n-1] as g[2n-1] does. Passes over the half-size result
    on strided views of the even and odd samples (any strides); every weight is exact in binary."""
    n = grad.shape[dim] // 2
    pairs = grad.unflatten(dim, (n, 2))
    even, odd = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
    out = torch.add(even, odd).mul_(0.75)
    out.narrow(dim, 1, n - 1).add_(odd.narrow(dim, 0, n - 1), alpha=0.25)   # g[2i-1]
    out.narrow(dim, 0, n - 1).add_(even.narrow(dim, 1, n - 1), alpha=0.25)  # g[2i+2]
    out.narrow(dim, 0, 1).add_(even.narrow(dim, 0, 1), alpha=0.25)          # clamped: g[-1] = g[0]
    out.narrow(dim, n - 1, 1).add_(odd.narrow(dim, n - 1, 1), alpha=0.25)  # clamped: g[2n] = g[2n-1]
    return out


class Up2(torch.autograd.Function):
    """`up2_eval` with its backward as the separable transpose, one axis at a time, instead of PyTorch's
    `upsample_bilinear2d_backward` (a scatter). At 4x32x256x256 on 2 threads: 7.7 ms, against 19 ms for the
    scatter and 38 ms for the same transpose as one depthwise 4x4 stride-2 convolution of the replicate-padded
    gradient (oneDNN, AMD EPYC; docs/benchmarks.md).

    Forward, per axis (PyTorch's `area_pixel_compute_source_index`, scale 1/2, align_corners=False):
    out[2i] = 0.75 x[i] + 0.25 x[i-1] and out[2i+1] = 0.75 x[i] + 0.25 x[i+1], an index outside [0, n) clamped to
    the edge. Its transpose: `_up2_transpose_axis` on H, then on W."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return up2_eval(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _up2_transpose_axis(_up2_transpose_axis(grad, 2), 3)


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


class ShiftSum(torch.autograd.Function):
    """sum over the taps k = 5 r + t of u[:, k M : k M + M] shifted by (r - 2, t - 2), zeros beyond the edges: the
    spatial half of a 5x5 convolution (pad 2) whose channel sums ran first. N x 25M x H x W -> N x M x H x W.
    Backward: each tap's gradient is the output gradient shifted back, one copy per tap into one tensor, instead
    of autograd's 25 slice backwards, each of which fills a zero tensor the size of u."""

    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        n, c, h, w = u.shape
        m = c // 25
        padded = F.pad(u, (2, 2, 2, 2))
        out = padded[:, :m, :h, :w].clone()
        for k in range(1, 25):
            r, t = divmod(k, 5)
            out.add_(padded[:, k * m:(k + 1) * m, r:r + h, t:t + w])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, m, h, w = grad.shape
        padded = F.pad(grad, (2, 2, 2, 2))
        out = grad.new_empty(n, 25 * m, h, w)
        for k in range(25):
            r, t = divmod(k, 5)
            out[:, k * m:(k + 1) * m] = padded[:, :, 4 - r:4 - r + h, 4 - t:4 - t + w]
        return out


def conv5_of_up2(block: nn.Module, x: torch.Tensor, training: bool) -> torch.Tensor:
    """`block(up2(x))` for a `Conv2dIBNormRelu` whose convolution is 5x5, stride 1, padding 2, groups 1, C -> M
    channels: N x C x H x W -> N x M x 2H x 2W. In training, contracted first: the upsample works on each channel
    alone, so the channel sums run at low resolution, a 1x1 convolution to the 25 taps' maps (25 M channels, the
    kernel's taps as 1x1 weights), then `Up2` of those and `ShiftSum`, then the bias and the rest of the block.
    25 M C multiply-adds per low-resolution pixel instead of 100 M C, forward and backward alike: MODNet's
    conv_lr16x (1280 -> 96 at 1/32 -> 1/16) went from 86 to 47 ms forward and backward at batch 4, 256x256, 2
    threads (AMD EPYC); export/onnx/passes/ort_upsampled_conv.py does the same for onnxruntime. Worth it where C is large against
    25 M / 4: conv_lr8x (96 -> 32) keeps the plain path."""
    if not training:
        return block(up2_eval(x))
    conv = block.layers[0]
    m, c = conv.weight.shape[:2]
    taps = F.conv2d(x, conv.weight.permute(2, 3, 0, 1).reshape(25 * m, c, 1, 1))
    out = ShiftSum.apply(up2(taps, True))
    if conv.bias is not None:
        out = out + conv.bias.view(1, m, 1, 1)
    for layer in block.layers[1:]:
        out = layer(out)
    return out


def upsampled_head(head: nn.Sequential, low: torch.Tensor, img: torch.Tensor, training: bool) -> torch.Tensor:
    """sigmoid(head(cat(up2(low), img))) for a full-resolution head of MODNet (`hr_branch.conv_hr`, `f_branch.conv_f`:
    a 3x3 Conv2dIBNormRelu, then a 1x1 convolution to one channel): Nx1xHxW in (0, 1). In training, through `Up2`,
    `conv_of_concat` and `OneChannel1x1`; otherwise the plain operations, which exports trace."""
    if not training:
        return torch.sigmoid(head(torch.cat((up2_eval(low), img), dim=1)))
    f = conv_of_concat(head[0], (up2(low, True), img), True)
    return torch.sigmoid(conv1x1_to_one(head[1].layers[0], f, True))


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(n, c) mean and biased variance of NxCxHxW contiguous `x`, both NxC, from group_norm's kernel with one
    group per channel and eps 0 (rstd = 1/sqrt(var); a constant channel gives rstd inf and variance 0)."""
    n, c, h, w = x.shape
    _, mean, rstd = torch.native_group_norm(x, None, None, n, c, h * w, c, 0.0)
    return mean, rstd.pow(-2)


def _pooled(mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm's statistics over n, h, w from per-(n, c) ones of equal counts: the mean of the means, and the mean
    of the variances plus the variance of the means (law of total variance)."""
    between, pooled_mean = torch.var_mean(mean, 0, correction=0)
    return pooled_mean, var.mean(0).add_(between)


def _update_running(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    """What nn.BatchNorm2d does to its buffers in a training forward (momentum set): running = (1 - m) running +
    m batch, the variance unbiased by count / (count - 1)."""
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        bn.running_mean.lerp_(mean, bn.momentum)
        bn.running_var.lerp_(var * (count / max(count - 1, 1)), bn.momentum)


def trains_fast(bn: nn.Module) -> bool:
    """Whether `bn` is a plain affine nn.BatchNorm2d in training mode on the CPU with running statistics and a
    momentum: the case `BatchNormTrain` and `IBNormTrain` reproduce, and the kernel they replace. A subclass
    (distributed training's GlobalBatchNorm) keeps its own forward; on a GPU, PyTorch's kernels stay; a BatchNorm
    in eval mode inside a training model (`train --freeze-norm`) normalises with its running statistics."""
    return (type(bn) is nn.BatchNorm2d and bn.training and bn.affine and bn.track_running_stats and bn.momentum is not None
            and bn.weight.device.type == "cpu")


class IBNormTrain(torch.autograd.Function):
    """IBNorm in training: BatchNorm (batch statistics, affine) on channels [0, cb), InstanceNorm (no affine) on
    [cb, C), for NxCxHxW contiguous float `x`, without splitting it.

    Forward: the per-(n, c) moments of all channels in one pass (`_moments`); the BatchNorm half's pooled over n;
    then one inference-mode batch_norm over x viewed as 1 x NC x H x W, whose row (n, c) gets either the pooled or
    its own statistics. Backward: batch_norm's training backward over the same rows gives the InstanceNorm half's
    input gradient as it is, and per-row sums of g and g * xhat; the BatchNorm half is then corrected from per-row
    to pooled sums by an affine map of x per row. Returns (NxCxHxW output; grads for x, weight, bias).
    4x32x256x256 forward and backward on 2 threads: 31 ms split into halves, 17 ms here."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps_in: float, bn: nn.BatchNorm2d):
        n, c, h, w = x.shape
        cb = weight.shape[0]
        mean, var = _moments(x)
        bn_mean, bn_var = _pooled(mean[:, :cb], var[:, :cb])
        _update_running(bn, bn_mean, bn_var, n * h * w)
        mean[:, :cb] = bn_mean
        var[:, :cb] = bn_var
        var[:, :cb] += bn.eps
        var[:, cb:] += eps_in
        row_w = torch.ones_like(mean)
        row_w[:, :cb] = weight
        row_b = torch.zeros_like(mean)
        row_b[:, :cb] = bias
        rows = (1, n * c, h, w)
        y = torch.empty_like(x)  # written through a view: a view returned from here could not take an in-place ReLU
        torch.ops.aten.native_batch_norm.out(x.view(rows), row_w.view(-1), row_b.view(-1), mean.view(-1),
                                             var.view(-1), False, 0.0, 0.0, out=y.view(rows),
                                             save_mean=x.new_empty(0), save_invstd=x.new_empty(0))
        ctx.save_for_backward(x, mean, var.rsqrt_(), row_w)
        ctx.cb = cb
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, mean, invstd, row_w = ctx.saved_tensors
        n, c, h, w = x.shape
        rows = (1, n * c, h, w)
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous().view(rows), x.view(rows), row_w.view(-1), None, None, mean.view(-1),
            invstd.view(-1), True, 0.0, [True, True, True])
        dx = dx.view(n, c, h, w)
        cb = ctx.cb
        # per row: dw = sum of g * xhat, db = sum of g; the pooled gradient uses their sums over n
        dw, db = dw.view(n, c)[:, :cb], db.view(n, c)[:, :cb]
        dw_all, db_all = dw.sum(0), db.sum(0)
        k, m = h * w, n * h * w
        a = row_w[0, :cb] * invstd[0, :cb]
        slope = a * invstd[0, :cb] * (dw / k - dw_all / m)
        offset = a * (db / k - db_all / m) - slope * mean[0, :cb]
        dx[:, :cb].addcmul_(x[:, :cb], slope[:, :, None, None]).add_(offset[:, :, None, None])
        return dx, dw_all, db_all, None, None


def ibnorm_train(bn: nn.BatchNorm2d, eps_in: float, x: torch.Tensor) -> torch.Tensor:
    """IBNorm's training forward through `IBNormTrain`: BatchNorm `bn` on the first bn.num_features channels (its
    running statistics updated), InstanceNorm with `eps_in` on the rest. `bn` must satisfy `trains_fast`."""
    return IBNormTrain.apply(x.contiguous(), bn.weight, bn.bias, eps_in, bn)


class BatchNormTrain(torch.autograd.Function):
    """nn.BatchNorm2d's training forward (batch statistics, affine, running statistics updated) for NxCxHxW
    contiguous float `x`, optionally followed by ReLU6 applied in place to its own output.

    Statistics from `_moments` pooled over n; output from batch_norm's inference kernel with them; backward by
    batch_norm's training backward, after ReLU6's mask (0 < y < 6, the same as 0 < x < 6 on its input) from the
    saved output. 4x96x128x128 forward and backward on 2 threads: 15.5 -> 11.7 ms. Smaller tensors pay more for the
    Python calls than they save: `run_sequential` uses it from FAST_BN_MIN_NUMEL elements."""

    @staticmethod
    def forward(ctx, x, weight, bias, bn: nn.BatchNorm2d, relu6: bool):
        n, _, h, w = x.shape
        mean, var = _pooled(*_moments(x))
        _update_running(bn, mean, var, n * h * w)
        y = F.batch_norm(x, mean, var, weight, bias, False, 0.0, bn.eps)
        if relu6:
            y.clamp_(0.0, 6.0)
        ctx.relu6 = relu6
        ctx.save_for_backward(x, weight, mean, var.add_(bn.eps).rsqrt_(), y if relu6 else None)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight, mean, invstd, y = ctx.saved_tensors
        if ctx.relu6:
            grad = torch.ops.aten.hardtanh_backward(grad, y, 0.0, 6.0)
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(grad.contiguous(), x, weight, None, None, mean,
                                                               invstd, True, 0.0, [True, True, True])
        return dx, dw, db, None, None


# 2 threads, batch 4 at 256x256, step timed against the plain path: from 2^19 to 2^21 elements all gain ~10 ms;
# from 0, every BatchNorm included, 6 ms (the 16x16 and 8x8 ones lose)
FAST_BN_MIN_NUMEL = 1 << 20


def run_sequential(seq: nn.Sequential, x: torch.Tensor, training: bool) -> torch.Tensor:
    """`seq(x)`; in training, each BatchNorm2d that `trains_fast` on an input of at least FAST_BN_MIN_NUMEL
    elements runs through `BatchNormTrain`, together with a ReLU6 that follows it."""
    if not training:
        return seq(x)
    layers = list(seq)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if trains_fast(layer) and x.numel() >= FAST_BN_MIN_NUMEL:
            relu6 = i + 1 < len(layers) and type(layers[i + 1]) is nn.ReLU6
            x = BatchNormTrain.apply(x.contiguous(), layer.weight, layer.bias, layer, relu6)
            i += 2 if relu6 else 1
        else:
            x = layer(x)
            i += 1
    return x
