"""Each lowering against torch on small random tensors, through real pycaffe (the child-process runner)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from matteconv.errors import MatteconvError
from matteconv.export.caffe.convert import convert
from matteconv.export.caffe.lower import INPLACE_TYPES
from matteconv.export.caffe.runner import CaffeBackend
from matteconv.export.caffe.writer import write_caffemodel, write_prototxt
from matteconv.model.modnet import IBNorm, SEBlock

import caffe  # noqa: E402,F401  (real pycaffe is required: make install builds it; no skip)

TOL = 1e-5


def err(out: np.ndarray, ref: np.ndarray) -> float:
    """max |caffe - torch float64| relative to the output's scale (at least 1): float32 sums of N terms carry
    ~N * 6e-8 relative error, so a normalised output of magnitude 10 cannot be judged at 1e-5 absolute."""
    return float(np.abs(out - ref).max() / max(1.0, float(np.abs(ref).max())))


def run_caffe(module: nn.Module, x: torch.Tensor, tmp_path, target: str = "bvlc"):
    """Convert, write, run in pycaffe; return (caffe output, float64 torch output, net)."""
    module = module.eval()
    net = convert(module, {"x": tuple(x.shape)}, target)
    proto, weights = tmp_path / f"{target}.prototxt", tmp_path / f"{target}.caffemodel"
    write_prototxt(proto, net, ["test"])
    write_caffemodel(weights, net)
    with CaffeBackend(proto, weights) as backend:
        out = backend.run(x.numpy())
    with torch.no_grad():
        ref = module.double()(x.double()).numpy()
    module.float()
    return out, ref, net


def randomize_bn(bn: nn.BatchNorm2d, gen: torch.Generator) -> None:
    with torch.no_grad():
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=gen))
        bn.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
        bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=gen) * 0.3)


class Seq(nn.Sequential):
    def forward(self, x):  # fx traces Sequential children as separate nodes, like MODNet's blocks
        return super().forward(x)


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.fixture
def gen():
    torch.manual_seed(0)
    return torch.Generator().manual_seed(1)


@pytest.mark.parametrize("conv", [
    dict(in_channels=3, out_channels=8, kernel_size=3, stride=2, padding=1, bias=True),
    dict(in_channels=8, out_channels=8, kernel_size=3, stride=1, padding=1, groups=8, bias=False),  # depthwise
    dict(in_channels=4, out_channels=6, kernel_size=5, stride=1, padding=2, bias=True),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=1, padding=2, dilation=2, bias=True),
])
def test_convolution(conv, tmp_path, gen):
    m = Seq(nn.Conv2d(**conv))
    x = torch.randn(1, conv["in_channels"], 16, 16, generator=gen)
    out, ref, net = run_caffe(m, x, tmp_path)
    assert net.counts() == {"Convolution": 1, "Input": 1}
    assert err(out, ref) < TOL


def test_batchnorm_folds_into_conv(tmp_path, gen):
    m = Seq(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6))
    randomize_bn(m[1], gen)
    x = torch.randn(1, 4, 16, 16, generator=gen)
    out, ref, net = run_caffe(m, x, tmp_path)
    assert net.counts() == {"Convolution": 1, "Input": 1}
    assert err(out, ref) < TOL


def test_standalone_batchnorm_is_one_scale(tmp_path, gen):
    m = Seq(nn.ReLU(), nn.BatchNorm2d(5))
    randomize_bn(m[1], gen)
    x = torch.randn(1, 5, 8, 8, generator=gen)
    out, ref, net = run_caffe(m, x, tmp_path)
    assert net.counts() == {"Input": 1, "ReLU": 1, "Scale": 1}
    assert err(out, ref) < TOL


def low_variance_input(gen: torch.Generator, c: int = 6, h: int = 16, w: int = 16) -> torch.Tensor:
    """Channels with std from 1e-3 to 3: where Caffe's MVN (x - m) / (std + eps) is far from torch's."""
    stds = torch.logspace(-3, 0.5, c)
    return (torch.randn(1, c, h, w, generator=gen) * stds[None, :, None, None] + torch.randn(c, generator=gen)[None, :, None, None])


TARGETS = ("bvlc", "ascend", "ddk")


def centring_floor(x: torch.Tensor) -> np.ndarray:
    """Per channel (1, C): one fp32 ulp of the channel mean over its std. No fp32 centring beats half an ulp of
    the mean (x - mean with the mean rounded to fp32): on a 5e-3 std channel with mean 1.1 that is 1.2e-5."""
    xc = x.double().numpy()
    return np.spacing(np.abs(xc.mean(axis=(2, 3))).astype(np.float32)) / xc.std(axis=(2, 3))


@pytest.mark.parametrize("target", TARGETS)
def test_instance_norm_exact_on_low_variance_channels(target, tmp_path, gen):
    m = Seq(nn.InstanceNorm2d(6, affine=False))
    x = low_variance_input(gen)
    out, ref, net = run_caffe(m, x, tmp_path, target)
    counts = net.counts()
    # two MVNs: centre, then centre again (lower._centre_mvn)
    assert counts.get("MVN", 0) == 2 * (target != "ddk") and counts.get("Reduction", 0) == (target == "ascend")
    assert (np.abs(out - ref).max(axis=(2, 3)) < TOL + centring_floor(x)).all()  # absolute, std 1e-3 .. 3
    # Caffe's own variance normalisation would be far off on the std=1e-3 channel: that is why it is not used.
    xc = x.double().numpy()
    centred = xc - xc.mean(axis=(2, 3), keepdims=True)
    caffe_mvn = centred / (centred.std(axis=(2, 3), keepdims=True) + 1e-5)
    assert np.abs(caffe_mvn - ref).max() > 0.1


@pytest.mark.parametrize("target", TARGETS)
def test_instance_norm_exact_on_near_flat_channels(target, tmp_path, flat_wall_channels):
    """Caffe's MVN centres in one fp32 pass and leaves a residual mean that the variance then counts: with one
    MVN such an input was 2.6e-3 from float64 (measured; PyTorch fp32 3e-5), with the lowering's second MVN 7.8e-5
    (ascend) and 3e-6 (bvlc); ddk's pairwise pooling mean 7e-6. Outputs reach |34| (border pixels over a tiny
    std), so the bound is relative to the largest output, as for the ONNX export's centring: 5e-5 of it (fp32's
    6e-8 times the ~800 border terms that hold all the variance)."""
    x = flat_wall_channels
    out, _, _ = run_caffe(Seq(nn.InstanceNorm2d(4, affine=False)), x, tmp_path, target)
    ref = F.instance_norm(x.double()).numpy()
    assert np.abs(out - ref).max() < 5e-5 * np.abs(ref).max()


@pytest.mark.parametrize("target", ["bvlc", "ddk"])
@pytest.mark.parametrize("h,w", [(256, 256), (40, 24), (64, 640), (8, 1280)])
def test_instance_norm_pooled_means_are_pairwise_accurate(target, h, w, tmp_path, gen):
    """Means by pooling (no Reduction): a 2x2 cascade (a pairwise sum), so 256x256 channels far from zero mean
    stay at the fp32 floor; one global pooling summing 65536 values one by one in fp32 would not. Width 640 is
    too wide for a 2x2 pooling under Huawei's limit (704x1280's half-resolution maps): the width is halved alone
    first (1x2), where the cascade used to stop and sum 40960 values one by one (measured 1.4e-4 on the 0.05
    channel, 3x this bound); wider than 991 even 1x2 pooling breaks the limit, and a fixed 1x2 convolution does it."""
    m = Seq(nn.InstanceNorm2d(3, affine=False))
    x = torch.randn(1, 3, h, w, generator=gen) * torch.tensor([0.05, 1.0, 3.0])[None, :, None, None] + 20.0
    out, ref, net = run_caffe(m, x, tmp_path, target)
    pools = [la for la in net.layers if la.type == "Pooling"]
    assert pools and all("global_pooling" in la.params["pooling_param"] or la.params["pooling_param"]["stride_h"] <= 2
                         for la in pools)
    if 510 < w <= 991:
        first = pools[0].params["pooling_param"]
        assert (first["kernel_h"], first["kernel_w"]) == (1, 2)
    if w > 991:  # 704x1280's full-resolution maps: the first pair means are a fixed 1x2 convolution
        first = next(la for la in net.layers if la.type == "Convolution").params["convolution_param"]
        assert (first["kernel_h"], first["kernel_w"], first["stride_w"]) == (1, 2, 2)
    assert (np.abs(out - ref).max(axis=(2, 3)) < TOL + centring_floor(x)).all()


@pytest.mark.parametrize("target", TARGETS)
def test_conv_ibnorm_splits_conv_and_folds_bn_half(target, tmp_path, gen):
    m = Seq(nn.Conv2d(4, 8, 3, padding=1, bias=True), IBNorm(8), nn.ReLU())
    randomize_bn(m[1].bnorm, gen)
    with torch.no_grad():
        m[0].weight[4:] *= 1e-3  # low-variance IN channels
    x = torch.randn(1, 4, 16, 16, generator=gen)
    out, ref, net = run_caffe(m, x, tmp_path, target)
    counts = net.counts()
    if target == "ddk":  # no Slice in the DDK list: one Convolution per half
        assert counts["Convolution"] == 2 and "Slice" not in counts
    else:  # one Convolution (im2col once), the halves by Slice
        assert counts["Convolution"] == 1 and counts["Slice"] == 1
    assert "BatchNorm" not in counts
    assert err(out, ref) < TOL


def test_ibnorm_without_conv_uses_slice(tmp_path, gen):
    m = Seq(nn.ReLU(), IBNorm(7))
    randomize_bn(m[1].bnorm, gen)
    x = low_variance_input(gen, c=7)
    out, ref, net = run_caffe(m, x, tmp_path)
    assert net.counts()["Slice"] == 1
    assert err(out, ref) < TOL


@pytest.mark.parametrize("target,expected", [("bvlc", "Eltwise"), ("ascend", "ReLU6"), ("ddk", "Eltwise")])
def test_relu6(target, expected, tmp_path, gen):
    m = Seq(nn.Conv2d(3, 4, 1), nn.ReLU6())
    x = torch.randn(1, 3, 8, 8, generator=gen) * 20  # values below 0, inside, above 6 and above 12
    out, ref, net = run_caffe(m, x, tmp_path, target)
    assert net.layers[-1].type == expected
    assert (ref >= 6).any() and (ref <= 0).any()
    assert err(out, ref) < TOL


@pytest.mark.parametrize("target,counts", [
    ("ascend", {"Deconvolution": 1, "Input": 1, "Scale": 1}),  # border map as one fixed Scale over (H, W)
    # map made by layers on one channel (OpenCV): ones by a 1x1 conv, Deconvolution, Power -1, Concat to C channels
    ("bvlc", {"Concat": 1, "Convolution": 1, "Deconvolution": 2, "Eltwise": 1, "Input": 1, "Power": 1}),
])
@pytest.mark.parametrize("h,w", [(8, 8), (5, 7)])
def test_bilinear_up2_including_border(target, counts, h, w, tmp_path, gen):
    m = Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    x = torch.randn(1, 3, h, w, generator=gen) + 2.0
    out, ref, net = run_caffe(m, x, tmp_path, target)
    assert net.counts() == counts
    border = np.ones(ref.shape[2:], bool)
    border[1:-1, 1:-1] = False
    assert np.abs(out - ref)[..., border].max() < TOL  # where a plain deconvolution is off by 25-44 %
    assert err(out, ref) < TOL


def test_bilinear_up2_of_one_channel_needs_no_concat(tmp_path, gen):
    """bvlc's one-channel border map is used as it is when the input has one channel."""
    m = Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    x = torch.randn(1, 1, 5, 7, generator=gen) + 2.0
    out, ref, net = run_caffe(m, x, tmp_path, "bvlc")
    assert net.counts() == {"Convolution": 1, "Deconvolution": 2, "Eltwise": 1, "Input": 1, "Power": 1}
    assert err(out, ref) < TOL


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("factor,width,layer", [(0.5, 16, "Pooling"), (0.5, 544, "Convolution"),
                                                (0.25, 16, "Convolution")])
def test_bilinear_downsample(factor, width, layer, target, tmp_path, gen):
    m = Fn(lambda x: F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False))
    x = torch.randn(1, 4, 8, width, generator=gen)
    out, ref, net = run_caffe(m, x, tmp_path, target)
    last = net.layers[-1]
    assert last.type == layer
    if layer == "Convolution":  # dense, not depthwise: Huawei's depthwise/pooling width limits do not apply
        assert "group" not in last.params["convolution_param"]
        assert np.count_nonzero(last.blobs[0]) == 4 * np.count_nonzero(last.blobs[0][0])
    assert err(out, ref) < TOL


def test_se_block(tmp_path, gen):
    m = Seq(SEBlock(16, 16, reduction=4))
    x = torch.randn(1, 16, 6, 6, generator=gen)
    out, ref, net = run_caffe(m, x, tmp_path)
    assert net.counts() == {"InnerProduct": 2, "Input": 1, "Pooling": 1, "ReLU": 1, "Scale": 1, "Sigmoid": 1}
    assert err(out, ref) < TOL


class CatAddSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        y = torch.cat((self.a(x), x), dim=1)
        return torch.sigmoid(self.b(y) + x)


def test_cat_add_sigmoid(tmp_path, gen):
    x = torch.randn(1, 3, 8, 8, generator=gen)
    out, ref, net = run_caffe(CatAddSigmoid(), x, tmp_path)
    assert {"Concat", "Eltwise", "Sigmoid"} <= set(net.counts())
    assert err(out, ref) < TOL


def test_omg_naming_rule_and_no_bn_after_conv():
    """OMG (the ddk target): every top equals its layer name, except in-place ReLU/BatchNorm/Scale whose top is
    their bottom. The other targets also split IBNorm's conv output with a Slice (two tops)."""
    from matteconv.model.modnet import MODNet

    for target in TARGETS:
        net = convert(MODNet(3).eval(), {"img": (1, 3, 64, 64)}, target)
        for layer in net.layers:
            if layer.tops != [layer.name] and not (target != "ddk" and layer.type == "Slice"):
                assert layer.type in INPLACE_TYPES and layer.tops == layer.bottoms[:1], layer
        names = [la.name for la in net.layers]
        assert len(names) == len(set(names))
        assert "BatchNorm" not in net.counts()


@pytest.mark.parametrize("op", [
    lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
    lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True),
    lambda x: F.interpolate(x, scale_factor=3, mode="bilinear", align_corners=False),
    lambda x: x * 2,
])
def test_inexact_ops_are_refused(op):
    with pytest.raises(MatteconvError, match="for Caffe target 'bvlc'"):
        convert(Fn(op), {"x": (1, 3, 8, 8)}, "bvlc")
