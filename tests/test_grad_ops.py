"""MODNet's training path (model/grad_ops.py, IBNorm, BatchNorm and ReLU6 in training): the eval path's function,
with gradients equal to PyTorch's own within the rounding of the terms each one sums.

Tolerances: a value that sums K terms differs between two summation orders by at most about K * eps * (sum of the
terms' magnitudes); the tests bound that sum by the largest magnitude times K, or compare float32 against a float64
reference, where the float64 error is negligible."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from matteconv.model import grad_ops
from matteconv.model import mobilenetv2 as mobilenet_module
from matteconv.model import modnet as modnet_module
from matteconv.model.grad_ops import (BatchNormTrain, IBNormTrain, OneChannel1x1, ShiftSum, Up2, conv1x1_to_one,
                                      conv5_of_up2, conv_of_concat, run_sequential, trains_fast, up2, up2_eval)
from matteconv.model.modnet import Conv2dIBNormRelu, IBNorm, MODNet
from matteconv.train import trainer as trainer_module
from matteconv.train.losses import modnet_losses, trimap
from matteconv.train.trainer import TrainingMODNet

EPS32 = torch.finfo(torch.float32).eps


@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (2, 3, 1, 4), (1, 2, 3, 5), (2, 1, 4, 4)])
def test_up2_backward_is_the_transpose_of_bilinear_x2(shape):
    """gradcheck: the backward against finite differences of the forward, in float64, at sizes whose every output
    row or column touches a clamped edge (1) and at odd sizes."""
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Up2.apply, (x,))
    assert torch.equal(Up2.apply(x), up2_eval(x))


def test_up2_float32_gradient_is_pytorchs_within_rounding():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16, 12, requires_grad=True)
    g = torch.randn(2, 5, 32, 24)
    up2(x, training=True).backward(g)
    ours = x.grad.clone()
    x64 = x.detach().double().requires_grad_()
    up2_eval(x64).backward(g.double())  # PyTorch's own upsample_bilinear2d_backward, float64
    # each input gradient sums at most 4 x 4 = 16 terms whose weights add up to 2 x 2 = 4: |error| <= 16 * eps * 4
    # * max |g| (summation) plus eps * 4 * max |g| (the result's rounding); measured here: 1.3 * eps * max |g|
    assert (ours.double() - x64.grad).abs().max() <= 17 * 4 * EPS32 * g.abs().max()


def test_up2_uses_the_plain_interpolate_outside_training():
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    assert up2(x).grad_fn.name() == "UpsampleBilinear2DBackward0"
    assert up2(x, training=True).grad_fn.name() == "Up2Backward"
    with torch.no_grad():
        assert up2(x, training=True).grad_fn is None


@pytest.mark.parametrize("bias", [True, False])
def test_one_channel_1x1_backward(bias):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, dtype=torch.float64, requires_grad=True) if bias else None
    assert torch.autograd.gradcheck(OneChannel1x1.apply, (x, w, b))


def test_one_channel_1x1_float32_gradient_is_the_convolutions_within_rounding():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(32, 1, 1)
    x = torch.randn(2, 32, 24, 20, requires_grad=True)
    g = torch.randn(2, 1, 24, 20)
    conv1x1_to_one(conv, x, training=True).backward(g)
    ours = (x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone())
    conv64 = torch.nn.Conv2d(32, 1, 1).double()
    conv64.load_state_dict(conv.state_dict())
    x64 = x.detach().double().requires_grad_()
    conv64(x64).backward(g.double())
    terms = g.numel()  # the weight and bias gradients sum over every pixel of the batch
    scale = (g.abs() * x.detach().abs().amax(1, keepdim=True)).sum()
    assert (ours[0].double() - x64.grad).abs().max() <= EPS32 * g.abs().max() * conv.weight.abs().max()
    assert (ours[1].double() - conv64.weight.grad).abs().max() <= terms * EPS32 * scale
    assert (ours[2].double() - conv64.bias.grad).abs().max() <= terms * EPS32 * g.abs().sum()


def test_conv_of_concat_is_the_convolution_of_the_concatenation():
    torch.manual_seed(0)
    block = torch.nn.Sequential(Conv2dIBNormRelu(7, 6, 3, padding=1), Conv2dIBNormRelu(6, 4, 3, padding=1))
    block = block.double().train()
    parts = (torch.randn(2, 4, 8, 8, dtype=torch.float64, requires_grad=True),
             torch.randn(2, 3, 8, 8, dtype=torch.float64))  # an image part: no gradient wanted
    g = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    conv_of_concat(block, parts, training=True).backward(g)
    got = (parts[0].grad.clone(), *(p.grad.clone() for p in block.parameters()))
    parts[0].grad = None
    block.zero_grad()
    block(torch.cat(parts, 1)).backward(g)
    want = (parts[0].grad, *(p.grad for p in block.parameters()))
    # float64: the longest sums (the weight gradients') have 2 * 8 * 8 * 7 * 9 terms, and each IBNorm divides by
    # its inputs' standard deviation, so rounding stays below 1e-11 of the largest gradient (the conv biases before
    # a normalisation have a gradient of 0 plus that rounding); a wrong slice or bias is O(1)
    largest = max(b.abs().max() for b in want)
    for a, b in zip(got, want):
        assert (a - b).abs().max() <= 1e-11 * largest
    with torch.no_grad():
        assert torch.equal(conv_of_concat(block, parts, training=False), block(torch.cat(parts, 1)))


@pytest.mark.parametrize("shape", [(1, 50, 1, 1), (2, 25, 3, 5), (1, 75, 6, 4)])
def test_shift_sum_backward_is_its_forwards_transpose(shape):
    """gradcheck in float64, at sizes where every tap's shift reaches past an edge (1x1, 3x5); and the forward is
    the 5x5 convolution of the tap maps with one-hot kernels (tap k: a 1 at (r, t))."""
    torch.manual_seed(0)
    u = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ShiftSum.apply, (u,))
    m = shape[1] // 25
    one_hot = torch.zeros(m, 25 * m, 5, 5, dtype=torch.float64)
    for k in range(25):
        one_hot[torch.arange(m), k * m + torch.arange(m), k // 5, k % 5] = 1
    assert torch.allclose(ShiftSum.apply(u), F.conv2d(u, one_hot, padding=2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_conv5_of_up2_is_the_convolution_of_the_upsample(bias):
    """In training, the contracted path gives the block's output and gradients (input, weight, bias, IBNorm's) of
    the plain block(up2(x)), in float64 up to rounding; outside training it is the plain path itself."""
    torch.manual_seed(0)
    block = Conv2dIBNormRelu(12, 4, 5, padding=2, bias=bias).double().train()
    x = torch.randn(2, 12, 5, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, 10, 8, dtype=torch.float64)
    out = conv5_of_up2(block, x, training=True)
    out.backward(g)
    got = (out.detach(), x.grad.clone(), *(p.grad.clone() for p in block.parameters()))
    x.grad = None
    block.zero_grad()
    out = block(up2_eval(x))
    out.backward(g)
    want = (out.detach(), x.grad, *(p.grad for p in block.parameters()))
    # float64: the longest sums have 2 * 10 * 8 * 12 * 25 terms, far below 1e-10 of the largest value; a wrong tap,
    # shift or edge is O(1) of it
    largest = max(b.abs().max() for b in want)
    for a, b in zip(got, want):
        assert (a - b).abs().max() <= 1e-10 * largest
    with torch.no_grad():
        block.eval()
        assert torch.equal(conv5_of_up2(block, x, training=False), block(up2_eval(x)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ibnorm_training_path_is_the_sliced_batchnorm_and_instancenorm(dtype):
    """IBNorm trains through IBNormTrain (both halves in one pass); the numbers are those of the eval path's sliced
    BatchNorm and InstanceNorm run in training mode, within the rounding of their sums, running statistics and
    batch count included."""
    torch.manual_seed(0)
    m = IBNorm(9).to(dtype).train()
    m.inorm.eps = 0.01  # not BatchNorm's: each half must use its own
    with torch.no_grad():
        m.bnorm.weight.uniform_(0.5, 1.5)
        m.bnorm.bias.uniform_(-1, 1)
    m2 = copy.deepcopy(m)
    x = (3 + 2 * torch.randn(2, 9, 12, 10, dtype=dtype)).requires_grad_()
    g = torch.randn(2, 9, 12, 10, dtype=dtype)
    y = m(x)
    y.backward(g)
    got = (y.detach(), x.grad.clone(), *(p.grad.clone() for p in m.parameters()), m.bnorm.running_mean.clone(),
           m.bnorm.running_var.clone())
    x.grad = None
    k = m2.bnorm_channels
    y2 = torch.cat((m2.bnorm(x[:, :k].contiguous()), m2.inorm(x[:, k:].contiguous())), 1)
    y2.backward(g)
    want = (y2.detach(), x.grad, *(p.grad for p in m2.parameters()), m2.bnorm.running_mean,
            m2.bnorm.running_var)
    assert y.grad_fn.name() == "IBNormTrainBackward"
    assert m.bnorm.num_batches_tracked == m2.bnorm.num_batches_tracked == 1
    # the statistics and gradient sums run over N x H x W terms; an error in a mean is relative to |x|, and the
    # normalisation divides it by the standard deviation; the gradients carry |g|
    terms = 2 * 12 * 10
    scale = (x.abs().max() / x.std()).item() * max(g.abs().max().item(), 1.0)
    for a, b in zip(got, want):
        assert (a - b).abs().max() <= terms * torch.finfo(dtype).eps * scale * max(b.abs().max().item(), 1.0)


def test_relu6_is_in_place_in_eval_only():
    model = MODNet(3)
    relu6 = [m for m in model.modules() if isinstance(m, torch.nn.ReLU6)]
    assert relu6 and not any(r.inplace for r in relu6)  # built in training mode
    model.eval()
    assert all(r.inplace for r in relu6)
    model.train()
    assert not any(r.inplace for r in relu6)


@pytest.mark.parametrize("in_channels", [3, 4])
def test_the_training_step_gradients_are_the_plain_paths(monkeypatch, in_channels):
    """The whole training step in float64, through grad_ops and through plain PyTorch (the eval path's ops, in
    training mode): the same losses and parameter gradients, up to float64 rounding. 4 channels: the temporal
    model, whose image parts carry the previous alpha."""
    torch.manual_seed(0)
    model = MODNet(in_channels).double().train()
    x = torch.rand(2, in_channels, 64, 64, dtype=torch.float64) * 2 - 1
    gt = (torch.rand(2, 1, 64, 64, dtype=torch.float64) > 0.5).double()
    gt = F.avg_pool2d(gt, 5, 1, 2)

    def run():
        model.zero_grad()
        loss = modnet_losses(*TrainingMODNet(model)(x), x[:, :3], gt, trimap(gt)).total
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    state = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(grad_ops, "FAST_BN_MIN_NUMEL", 0)  # every BatchNorm of the backbone through BatchNormTrain
    loss, grads = run()
    ours_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # the same running statistics for the second pass
    monkeypatch.setattr(modnet_module, "up2", lambda t, training=False: up2_eval(t))
    monkeypatch.setattr(modnet_module, "conv_of_concat", lambda block, parts, training: block(torch.cat(parts, 1)))
    monkeypatch.setattr(modnet_module, "conv5_of_up2", lambda block, t, training: block(up2_eval(t)))
    for module in (modnet_module, trainer_module):  # the two full-resolution heads
        monkeypatch.setattr(module, "upsampled_head",
                            lambda head, low, img, training: torch.sigmoid(head(torch.cat((up2_eval(low), img), 1))))
    monkeypatch.setattr(modnet_module, "trains_fast", lambda bn: False)  # IBNorm's sliced halves
    monkeypatch.setattr(mobilenet_module, "run_sequential", lambda seq, t, training: seq(t))
    plain_loss, plain_grads = run()
    plain_state = model.state_dict()
    for key, value in plain_state.items():  # running statistics and batch counts, within float64 rounding
        # a mean's rounding is relative to the data's spread (a mean of normalised data is 0 plus rounding)
        scale = plain_state[key[:-4] + "var"].max().sqrt() if key.endswith("running_mean") else value.abs().max()
        assert (ours_state[key] - value).abs().max() <= 1e-12 * scale, key
    assert abs(loss - plain_loss) <= 1e-12 * abs(plain_loss)
    # float64 rounding of sums over the batch's pixels, far below 1e-9 of the largest gradient (a convolution bias
    # before a normalisation has a gradient of 0 plus rounding); a wrong tap, slice or weight is O(1) of it
    largest = max(b.abs().max() for b in plain_grads)
    for a, b in zip(grads, plain_grads):
        assert (a - b).abs().max() <= 1e-9 * largest


def _bn(channels: int, dtype: torch.dtype) -> torch.nn.BatchNorm2d:
    bn = torch.nn.BatchNorm2d(channels).to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    return bn


def test_ibnorm_train_backward_is_the_forwards_derivative():
    """gradcheck in float64, with a channel constant in one sample (variance 0: group_norm's rstd is inf there)."""
    torch.manual_seed(0)
    bn = _bn(3, torch.float64)
    x = 3 + 2 * torch.randn(2, 7, 5, 6, dtype=torch.float64)
    x[1, 5] = 0.25
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t, w, b: IBNormTrain.apply(t, w, b, 1e-3, bn),
                                    (x, bn.weight, bn.bias))


@pytest.mark.parametrize("relu6", [False, True])
def test_batchnorm_train_backward_is_the_forwards_derivative(relu6):
    """gradcheck in float64, with a constant channel (variance 0)."""
    torch.manual_seed(0)
    bn = _bn(4, torch.float64)
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64) * 3
    x[:, 2] = 0.25
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t, w, b: BatchNormTrain.apply(t, w, b, bn, relu6),
                                    (x, bn.weight, bn.bias))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batchnorm_train_with_relu6_is_pytorchs(dtype):
    """Output, gradients, running statistics and batch count against nn.BatchNorm2d then nn.ReLU6, within the
    rounding of sums over N x H x W. Weights of 2 to 4 put outputs on both sides of both of ReLU6's edges."""
    torch.manual_seed(0)
    bn = _bn(3, dtype).train()
    with torch.no_grad():
        bn.weight.uniform_(2, 4)
    ref = copy.deepcopy(bn)
    x = (3 + 2 * torch.randn(4, 3, 9, 11, dtype=dtype)).requires_grad_()
    g = torch.randn(4, 3, 9, 11, dtype=dtype)
    y = BatchNormTrain.apply(x, bn.weight, bn.bias, bn, True)
    y.backward(g)
    got = (y.detach(), x.grad.clone(), bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var)
    x.grad = None
    y2 = torch.nn.functional.relu6(ref(x))
    y2.backward(g)
    want = (y2.detach(), x.grad, ref.weight.grad, ref.bias.grad, ref.running_mean, ref.running_var)
    assert (y == 0).any() and (y == 6).any() and ((y > 0) & (y < 6)).any()
    # as for IBNorm above: statistics over N x H x W terms, an error in a mean relative to |x| and divided by the
    # standard deviation, gradients carrying |g|
    terms = 4 * 9 * 11
    scale = (x.abs().max() / x.std((0, 2, 3)).min()).item() * max(g.abs().max().item(), 1.0)
    for a, b in zip(got, want):
        assert (a - b).abs().max() <= terms * torch.finfo(dtype).eps * scale * max(b.abs().max().item(), 1.0)
    assert bn.num_batches_tracked == ref.num_batches_tracked == 1


def test_run_sequential_takes_the_fast_batchnorm_in_training_only(monkeypatch):
    """Large BatchNorms (with the ReLU6 after them) go through BatchNormTrain in training; eval, small inputs and a
    BatchNorm subclass (distributed training's GlobalBatchNorm) run the Sequential as it is."""
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU6())
    x = torch.randn(2, 3, 8, 8)
    monkeypatch.setattr(grad_ops, "FAST_BN_MIN_NUMEL", 2 * 4 * 8 * 8)
    assert run_sequential(seq.train(), x, True).grad_fn.name() == "BatchNormTrainBackward"
    monkeypatch.setattr(grad_ops, "FAST_BN_MIN_NUMEL", 2 * 4 * 8 * 8 + 1)
    assert run_sequential(seq, x, True).grad_fn.name() == "HardtanhBackward0"

    class Sub(torch.nn.BatchNorm2d):
        pass

    assert trains_fast(seq[1]) and not trains_fast(Sub(4)) and not trains_fast(torch.nn.BatchNorm2d(4, momentum=None))
    with torch.no_grad():
        assert torch.equal(run_sequential(seq.eval(), x, False), seq(x))
