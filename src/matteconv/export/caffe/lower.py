"""The lowering table: each captured torch op -> Caffe layers that compute the same numbers.

Only exact lowerings are in the table (exact up to float32 rounding); anything else stops the export with
one line naming the module path, the op and the target. Weights are folded in float64, stored as float32.

Exactness notes (all checked layer by layer against torch in tests/test_caffe_lowering.py):
- BatchNorm after a conv is folded into the conv; IBNorm's BatchNorm half is folded into the matching output
  channels. Where the target has Slice (bvlc, ascend) the conv stays one Convolution and a Slice splits the
  halves, so Caffe unfolds the input (im2col) once; ddk has no Slice, so there it is two Convolutions (one per
  half), each unfolding the same input. Measured at 512 (bvlc, pycaffe's warm forward, Intel Xeon with
  AVX-512): all Convolutions 0.97 -> 0.60 s.
- InstanceNorm: Caffe's MVN divides by (std + eps), torch by sqrt(var + eps); on low-variance channels that
  differs by up to 3x, so MVN is used only to centre (normalize_variance false) and the scale is computed
  exactly. With s = FP16_PRESCALE (a power of two, so scaling by it is exact in fp32 and fp16):
      ascend, bvlc:  Power(scale 1/s) -> MVN (centre) -> MVN (centre again, `_centre_mvn`) = c/s
      ddk (no MVN):  mean -> Power(scale 0, shift 1) = ones -> Scale(ones, mean) -> Eltwise SUM(x, map;
                     coeff 1/s, -1/s) = c/s
      then: Eltwise PROD (c/s, c/s) -> mean over (H, W) = var/s^2 -> Power(-0.5, shift eps/s^2) = s/sqrt(var + eps)
            -> Scale(c/s, that) = c/sqrt(var + eps)
  mean over (H, W): Reduction MEAN (ascend), else a pairwise pooling cascade + Flatten / identity InnerProduct
  (`_spatial_mean`: bvlc avoids Reduction for OpenCV DNN 4.x, ddk has none). Why s: on Ascend 310 Power runs in
  fp16 only (max 65504, docs/reference/ascend-operator-rules.md), and every tensor between layers is fp16 under
  atc's default force_fp16, so the unscaled square overflows once |x - mean| >= 256 and the variance once
  its rms does; with s = 8 both hold up to 2048, while eps/s^2 (1.6e-7) and the variance of the lowest-variance
  channel seen (0.06 / 64) stay representable (fp16 subnormals reach 6e-8). In fp32 the scaled chain rounds
  exactly like the unscaled one (power-of-two scaling commutes with rounding).
- ReLU6 -> `ReLU6` where the target accepts it; else relu(x) - relu(x - 6) (ReLU, Power shift -6, ReLU,
  Eltwise SUM 1,-1): exact for x <= 12 (Sterbenz), above that within half an ulp of x.
- Bilinear x2 (align_corners False): fixed bilinear Deconvolution (k4 s2 p1, group C) then a fixed Scale over
  (H, W) holding 1 / deconv(ones): the deconvolution zero-pads where torch clamps, and at the border the
  missing weight belongs to the same pixel, so multiplying by that map is exact. For OpenCV (bvlc) the map is
  made by layers instead, on one channel: ones by a 1x1 Convolution (zero weights, bias 1) -> the same
  Deconvolution -> Power(-1) -> Concat of that one channel C times -> Eltwise PROD (the same fp32 values: the
  cover is 1, .75 or .5625, exact). Not Tile (OpenCV 4.14's Tile wants ONNX `repeats`) and not a two-bottom Scale
  over (H, W) (pycaffe's Scale then loops per pixel: 45 ms at 512). At 512 the map's Power + Deconvolution went
  0.43 -> 0.25 s against the earlier C-channel map.
- Bilinear 1/2 = 2x2 AVE Pooling stride 2 (a fixed dense conv where Huawei's pooling width limit fails);
  bilinear 1/4 = a fixed 4x4 stride-4 conv, outer([0,.5,.5,0]) per channel, written dense (group 1, zero
  cross-channel weights) because Huawei's depthwise limit fails for it (`_fixed_dense_conv`).
"""
from __future__ import annotations

import operator
from typing import Callable

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ...errors import MatteconvError
from ...model.modnet import IBNorm, SEBlock
from .capture import scope, shape
from .ir import Layer, Net
from .targets import Target

FP16_PRESCALE = 8.0  # InstanceNorm works on (x - mean) / 8 so that fp16 squares do not overflow (docstring)
INPLACE_TYPES = ("ReLU", "BatchNorm", "Scale")  # OMG: in-place layers write their bottom, all others their name


class Refusal(MatteconvError):
    pass


def _f32(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64).astype(np.float32))


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Eval BatchNorm as y = a * x + b, in float64."""
    mean = bn.running_mean.detach().double().numpy()
    var = bn.running_var.detach().double().numpy()
    a = 1.0 / np.sqrt(var + bn.eps)
    b = -mean * a
    if bn.affine:
        g, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
        a, b = a * g, b * g + beta
    return a, b


class Lowering:
    """Walks the fx graph in order, emitting layers; `tops` maps fx node name -> Caffe blob name."""

    def __init__(self, gm: fx.GraphModule, target: Target, input_names: dict[str, str], name: str):
        self.gm = gm
        self.net_name = name
        self.target = target
        self.modules = dict(gm.named_modules())
        self.input_names = input_names  # placeholder name -> Caffe input name
        self.layers: list[Layer] = []
        self.tops: dict[str, str] = {}
        self.absorbed: dict[str, str] = {}  # node name -> node that lowered it (BN folded into a conv)
        self.node: fx.Node | None = None
        self._names: set[str] = set()
        self.shapes: dict[str, tuple[int, ...]] = {}  # blob -> shape of the fx node it holds

    # -- helpers used by the table --------------------------------------------------------------------
    def refuse(self, why: str) -> None:
        node = self.node
        where = scope(node) or node.name
        raise Refusal(f"{where}: {describe(node, self.modules)} {why} for Caffe target '{self.target.name}'")

    def module(self, node: fx.Node) -> nn.Module:
        return self.modules[node.target]

    def blob(self, arg) -> str:
        if not isinstance(arg, fx.Node):
            self.refuse(f"takes a constant ({type(arg).__name__}) where a tensor is needed, which has no lowering")
        return self.tops[arg.name]

    def can_inplace(self, arg: fx.Node) -> bool:
        """Safe to overwrite arg's blob: this node is its only reader and it is not a network input."""
        return arg.op != "placeholder" and len(arg.users) == 1

    def emit(self, name: str, type_: str, bottoms: list[str], params: dict | None = None,
             blobs: list[np.ndarray] | None = None, inplace: bool = False, tops: list[str] | None = None) -> str:
        if not self.target.accepts(type_):
            self.refuse(f"needs a {type_} layer, which is not accepted")
        if name in self._names:
            raise AssertionError(f"duplicate layer name {name}")
        self._names.add(name)
        if tops is None:
            tops = [bottoms[0]] if (inplace and type_ in INPLACE_TYPES) else [name]
        source = scope(self.node) if self.node is not None else ""
        self.layers.append(Layer(name, type_, list(bottoms), tops, params or {}, list(blobs or []), source))
        return tops[0]

    def name(self, suffix: str = "") -> str:
        node = self.node
        base = str(node.target) if node.op == "call_module" else ".".join(p for p in (scope(node), node.name) if p)
        return base + suffix

    # -- graph walk -----------------------------------------------------------------------------------
    def run(self) -> Net:
        inputs: dict[str, tuple[int, ...]] = {}
        output = None
        for node in self.gm.graph.nodes:
            self.node = node
            if node.name in self.absorbed:  # already lowered together with its producer
                self.tops[node.name] = self.tops[self.absorbed[node.name]]
                continue
            if node.op == "placeholder":
                name = self.input_names[node.name]
                inputs[name] = shape(node)
                self.tops[node.name] = self.emit(
                    name, "Input", [], {"input_param": {"shape": [{"dim": list(shape(node))}]}}, tops=[name])
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, fx.Node):
                    self.refuse("returns several values; the export needs one matte tensor")
                output = self.tops[out.name]
            else:
                handler = lookup(node, self.modules)
                if handler is None:
                    self.refuse("has no exact lowering")
                self.tops[node.name] = handler(self, node)
            meta = node.meta.get("tensor_meta")
            if node.op != "output" and hasattr(meta, "shape"):
                self.shapes[self.tops[node.name]] = tuple(meta.shape)
        output = self._name_output(output)
        return Net(self.net_name, self.layers, inputs, output, self.shapes)

    def _name_output(self, output: str) -> str:
        """Call the final blob `alpha` when that renames only the last layer (nothing else reads it)."""
        last = self.layers[-1]
        readers = [la for la in self.layers if output in la.bottoms]
        if last.tops == [output] and last.name == output and not readers and "alpha" not in self._names:
            last.name = last.tops[0] = "alpha"
            return "alpha"
        return output


# ---- the table: module types ------------------------------------------------------------------------

def _conv_params(conv: nn.Conv2d, out_channels: int, bias: bool) -> dict:
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    ph, pw = conv.padding
    dh, dw = conv.dilation
    p = {"num_output": out_channels, "kernel_h": kh, "kernel_w": kw, "stride_h": sh, "stride_w": sw,
         "pad_h": ph, "pad_w": pw, "bias_term": bias}
    if (dh, dw) != (1, 1):
        p["dilation"] = [dh, dw]
    if conv.groups != 1:
        p["group"] = conv.groups
    return {"convolution_param": p}


def lower_conv(lw: Lowering, node: fx.Node) -> str:
    conv = lw.module(node)
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        lw.refuse(f"uses padding {conv.padding!r}/{conv.padding_mode}, which Caffe cannot express exactly")
    w = conv.weight.detach().double().numpy()
    b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w.shape[0])
    users = list(node.users)
    nxt = users[0] if len(users) == 1 and users[0].op == "call_module" else None
    nxt_mod = lw.module(nxt) if nxt is not None else None
    if type(nxt_mod) is nn.BatchNorm2d and _bn_ok(nxt_mod):
        a, c = _bn_affine(nxt_mod)
        w, b = w * a[:, None, None, None], b * a + c
        lw.absorbed[nxt.name] = node.name
        return lw.emit(lw.name(), "Convolution", [lw.blob(node.args[0])], _conv_params(conv, w.shape[0], True),
                       [_f32(w), _f32(b)])
    if type(nxt_mod) is IBNorm and _bn_ok(nxt_mod.bnorm) and _in_ok(nxt_mod.inorm) and conv.groups == 1:
        return _conv_ibnorm(lw, node, conv, w, b, nxt, nxt_mod)
    has_bias = conv.bias is not None
    blobs = [_f32(w), _f32(b)] if has_bias else [_f32(w)]
    return lw.emit(lw.name(), "Convolution", [lw.blob(node.args[0])], _conv_params(conv, w.shape[0], has_bias), blobs)


def _conv_ibnorm(lw: Lowering, node, conv, w, b, ib_node, ib: IBNorm) -> str:
    """Conv + IBNorm: the BN half folded into its output channels, the IN half through the exact norm."""
    k = ib.bnorm_channels
    a, c = _bn_affine(ib.bnorm)
    bottom = lw.blob(node.args[0])
    lw.absorbed[ib_node.name] = node.name
    n_in = w.shape[0] - k
    _, _, h, wd = shape(ib_node)
    w, b = w.copy(), b.copy()
    w[:k], b[:k] = w[:k] * a[:, None, None, None], b[:k] * a + c  # the BN half folded; the IN half as it was
    if k and n_in and lw.target.accepts("Slice"):  # one Convolution, then the halves by Slice (module docstring)
        top = lw.emit(lw.name(), "Convolution", [bottom], _conv_params(conv, w.shape[0], True), [_f32(w), _f32(b)])
        base = str(ib_node.target)
        lw.emit(base + "/slice", "Slice", [top], {"slice_param": {"axis": 1, "slice_point": [k]}},
                tops=[base + "/bn", base + "/in_in"])
        inn = _instance_norm(lw, base + "/in_in", ib.inorm.eps, base + "/in", (n_in, h, wd))
        return lw.emit(base, "Concat", [base + "/bn", inn], {"concat_param": {"axis": 1}})
    parts = []
    if k:
        parts.append(lw.emit(lw.name(), "Convolution", [bottom], _conv_params(conv, k, True),
                             [_f32(w[:k]), _f32(b[:k])]))
    if n_in:
        top = lw.emit(lw.name("/in"), "Convolution", [bottom], _conv_params(conv, n_in, True),
                      [_f32(w[k:]), _f32(b[k:])])
        parts.append(_instance_norm(lw, top, ib.inorm.eps, str(ib_node.target) + "/in", (n_in, h, wd)))
    if len(parts) == 1:
        return parts[0]
    return lw.emit(str(ib_node.target), "Concat", parts, {"concat_param": {"axis": 1}})


def _instance_norm(lw: Lowering, bottom: str, eps: float, base: str, chw: tuple[int, int, int]) -> str:
    """(x - mean) / sqrt(var + eps) per channel, exactly as torch and fp16-safe (see module docstring)."""
    s = FP16_PRESCALE
    if lw.target.accepts("MVN"):
        # Scale first: MVN with a single reader (a Power) is fused by OpenCV DNN into an unsupported form.
        prescaled = lw.emit(base + "/prescale", "Power", [bottom], {"power_param": {"scale": 1.0 / s}})
        scaled = _centre_mvn(lw, prescaled, base)
    else:
        mean = _spatial_mean(lw, bottom, base + "/mean", chw)
        ones = lw.emit(base + "/ones", "Power", [bottom], {"power_param": {"scale": 0.0, "shift": 1.0}})
        mean_map = lw.emit(base + "/mean_map", "Scale", [ones, mean], {"scale_param": {"axis": 0}}, inplace=True)
        scaled = lw.emit(base + "/centred", "Eltwise", [bottom, mean_map],
                         {"eltwise_param": {"operation": "SUM", "coeff": [1.0 / s, -1.0 / s]}})
    # x * x as Eltwise PROD: the same fp32 value as Power(2), whose pycaffe kernel calls pow() per element
    # (91 of 145 ms of Power at 512, bvlc, Intel Xeon); on the device both are one fp16 multiply per element.
    sq = lw.emit(base + "/sq", "Eltwise", [scaled, scaled], {"eltwise_param": {"operation": "PROD"}})
    var = _spatial_mean(lw, sq, base + "/var", chw)  # var / s^2
    rstd = lw.emit(base + "/rstd", "Power", [var], {"power_param": {"power": -0.5, "shift": float(eps) / (s * s)}})
    return lw.emit(base, "Scale", [scaled, rstd], {"scale_param": {"axis": 0}})


def _centre_mvn(lw: Lowering, bottom: str, base: str) -> str:
    """x - mean(x) per channel with two MVNs (normalize_variance false): Caffe's MVN sums the channel in one fp32
    pass, so on a near-flat channel (a grey wall: mean far from zero, spread tiny) its output keeps a residual
    mean that the variance then counts (measured: matte 4.3e-4 from float64 on a grey frame with one pixel
    off, 8x PyTorch fp32's 5.4e-5). The second MVN removes that residual from values near zero, where the sum
    is exact enough; centring is shift-invariant, so in exact arithmetic the second MVN is the identity."""
    mvn = {"mvn_param": {"normalize_variance": False, "across_channels": False}}
    once = lw.emit(base + "/mvn", "MVN", [bottom], mvn)
    return lw.emit(base + "/recentre", "MVN", [once], mvn)


def _spatial_mean(lw: Lowering, bottom: str, base: str, chw: tuple[int, int, int]) -> str:
    """Per-channel mean over (H, W) as a (1, C) blob, the shape a two-bottom Scale broadcasts from axis 0.
    Reduction (a BLAS dot) where accepted and OpenCV need not load it. Else 2x2 AVE poolings while a side is
    even, then global pooling: a pairwise sum (matte at 512x512 within 1.5e-4 max / 1.1e-5 mean of float64,
    against 1.4e-4 / 3e-6 with Reduction), where one global pooling sums H*W values one by one in fp32 (up to
    1.8e-3 in the matte, measured). A map too wide for 2x2 under Huawei's pooling limit (`_avg_pool_fits`: w > 510)
    is first halved in width alone (1x2, stride 1 in height: fits up to w = 991; wider, the same 0.5/0.5 pairs as
    a fixed dense convolution, which the pooling limit does not cover), as at 704x1280, where the cascade used to
    stop at once and the ddk export missed parity (1.5e-3). Then (1, C, 1, 1) -> (1, C) by Flatten, or an identity
    InnerProduct (ddk)."""
    c, h, w = chw
    if lw.target.accepts("Reduction") and not lw.target.opencv_dnn:
        return lw.emit(base, "Reduction", [bottom], {"reduction_param": {"operation": "MEAN", "axis": 2}})
    top, level = bottom, 0
    while h * w > 16 and (h % 2 == 0 or w % 2 == 0):
        kh, kw = 2 - h % 2, 2 - w % 2
        if not _avg_pool_fits(kh, kw, kh, w):
            if w % 2:
                break
            kh, kw = 1, 2  # too wide for 2x2 (w > 510): halve the width alone first
        if _avg_pool_fits(kh, kw, kh, w):
            top = lw.emit(f"{base}/pool{level}", "Pooling", [top], {"pooling_param": {
                "pool": "AVE", "kernel_h": kh, "kernel_w": kw, "stride_h": kh, "stride_w": kw}})
        else:  # too wide even for 1x2 pooling (w > 991): the same pair means as a fixed dense 1x2 convolution
            top = _fixed_dense_conv(lw, top, c, np.full((1, 2), 0.5), (1, 2), f"{base}/pool{level}")
        h, w, level = h // kh, w // kw, level + 1
    top = lw.emit(base + "/pool", "Pooling", [top], {"pooling_param": {"pool": "AVE", "global_pooling": True}})
    if lw.target.accepts("Flatten"):
        return lw.emit(base, "Flatten", [top])
    return lw.emit(base, "InnerProduct", [top], {"inner_product_param": {"num_output": c, "bias_term": False}},
                   [np.eye(c, dtype=np.float32)])


def _bn_ok(bn: nn.BatchNorm2d) -> bool:
    return (not bn.training) and bn.track_running_stats and bn.running_mean is not None


def _in_ok(inorm: nn.InstanceNorm2d) -> bool:
    return not inorm.affine and not inorm.track_running_stats


def lower_batchnorm(lw: Lowering, node: fx.Node) -> str:
    """A BatchNorm not after a conv: one Scale layer with bias (the folded affine)."""
    bn = lw.module(node)
    if not _bn_ok(bn):
        lw.refuse("is in training mode or has no running statistics, so it has no fixed lowering")
    a, c = _bn_affine(bn)
    arg = node.args[0]
    return lw.emit(lw.name(), "Scale", [lw.blob(arg)], {"scale_param": {"bias_term": True}}, [_f32(a), _f32(c)],
                   inplace=lw.can_inplace(arg))


def lower_instancenorm(lw: Lowering, node: fx.Node) -> str:
    m = lw.module(node)
    if not _in_ok(m):
        lw.refuse("has affine parameters or running statistics, which have no lowering here")
    return _instance_norm(lw, lw.blob(node.args[0]), m.eps, lw.name(), shape(node)[1:])


def lower_ibnorm(lw: Lowering, node: fx.Node) -> str:
    """IBNorm not after a conv: Slice the channels, BN half as Scale, IN half as the exact norm, Concat."""
    ib = lw.module(node)
    if not (_bn_ok(ib.bnorm) and _in_ok(ib.inorm)) or not ib.bnorm_channels:
        lw.refuse("has a norm configuration with no lowering here")
    base = lw.name()
    a, c = _bn_affine(ib.bnorm)
    lw.emit(base + "/slice", "Slice", [lw.blob(node.args[0])],
            {"slice_param": {"axis": 1, "slice_point": [ib.bnorm_channels]}}, tops=[base + "/bn_in", base + "/in_in"])
    bn = lw.emit(base + "/bn", "Scale", [base + "/bn_in"], {"scale_param": {"bias_term": True}},
                 [_f32(a), _f32(c)], inplace=True)
    _, _, h, w = shape(node)
    inn = _instance_norm(lw, base + "/in_in", ib.inorm.eps, base + "/in", (ib.inorm_channels, h, w))
    return lw.emit(base, "Concat", [bn, inn], {"concat_param": {"axis": 1}})


def lower_relu(lw: Lowering, node: fx.Node) -> str:
    arg = node.args[0]
    return lw.emit(lw.name(), "ReLU", [lw.blob(arg)], inplace=lw.can_inplace(arg))


def lower_relu6(lw: Lowering, node: fx.Node) -> str:
    m = lw.module(node)
    if type(m) is nn.Hardtanh and (m.min_val, m.max_val) != (0.0, 6.0):
        lw.refuse(f"clips to [{m.min_val}, {m.max_val}], which has no lowering here")
    arg = node.args[0]
    if lw.target.accepts("ReLU6"):
        return lw.emit(lw.name(), "ReLU6", [lw.blob(arg)])
    base = lw.name()
    r = lw.emit(base + "/relu", "ReLU", [lw.blob(arg)], inplace=lw.can_inplace(arg))
    over = lw.emit(base + "/minus6", "Power", [r], {"power_param": {"shift": -6.0}})
    over = lw.emit(base + "/over6", "ReLU", [over], inplace=True)
    return lw.emit(base, "Eltwise", [r, over], {"eltwise_param": {"operation": "SUM", "coeff": [1.0, -1.0]}})


def lower_sigmoid(lw: Lowering, node: fx.Node) -> str:
    return lw.emit(lw.name(), "Sigmoid", [lw.blob(node.args[0])])


def lower_se(lw: Lowering, node: fx.Node) -> str:
    """x * sigmoid(W2 relu(W1 avgpool(x))): pooling, two InnerProducts, broadcast Scale (axis 0, 2 bottoms)."""
    se = lw.module(node)
    fc = list(se.fc)
    ok = (isinstance(se.pool, nn.AdaptiveAvgPool2d) and se.pool.output_size in (1, (1, 1)) and len(fc) == 4
          and type(fc[0]) is nn.Linear and fc[0].bias is None and type(fc[1]) is nn.ReLU
          and type(fc[2]) is nn.Linear and fc[2].bias is None and type(fc[3]) is nn.Sigmoid)
    if not ok:
        lw.refuse("is not the pool-Linear-ReLU-Linear-Sigmoid SE block this lowering knows")
    base, x = lw.name(), lw.blob(node.args[0])
    pooled = lw.emit(base + "/pool", "Pooling", [x], {"pooling_param": {"pool": "AVE", "global_pooling": True}})
    h = lw.emit(base + "/fc1", "InnerProduct", [pooled],
                {"inner_product_param": {"num_output": fc[0].out_features, "bias_term": False}}, [_f32(fc[0].weight)])
    h = lw.emit(base + "/relu", "ReLU", [h], inplace=True)
    h = lw.emit(base + "/fc2", "InnerProduct", [h],
                {"inner_product_param": {"num_output": fc[2].out_features, "bias_term": False}}, [_f32(fc[2].weight)])
    gate = lw.emit(base + "/sigmoid", "Sigmoid", [h])
    return lw.emit(base, "Scale", [x, gate], {"scale_param": {"axis": 0}})


# ---- the table: functions ---------------------------------------------------------------------------

BILINEAR_UP2 = np.array([0.25, 0.75, 0.75, 0.25])
BILINEAR_DOWN2 = np.array([0.5, 0.5])
BILINEAR_DOWN4 = np.array([0.0, 0.5, 0.5, 0.0])


def _avg_pool_fits(kh: int, kw: int, stride_h: int, w: int) -> bool:
    """The DDK/CANN limit for AVE pooling (and depthwise convolution) wider than its kernel:
    Fh*Fw*32 + W*(31*stride_h + Fw) <= 32768 (Atlas 200 DK "Caffe算子规格",
    https://support.huaweicloud.com/ti-atc-A200dk_3000/altasatc_16_021.html). 2x2 pooling of a 512-wide image
    gives 32,896."""
    return kh * kw * 32 + w * (31 * stride_h + kw) <= 32768


def _fixed_dense_conv(lw: Lowering, x: str, c: int, kernel: np.ndarray, stride: int | tuple[int, int],
                      name: str | None = None) -> str:
    """The same fixed kernel (kh, kw) on every channel, as a group=1 convolution whose cross-channel weights are
    zero. Not depthwise (group=C): the depthwise limit above fails for a k4 s4 conv on the full-resolution image
    at every size we export (49,664 at 384). Zero weights add exact zeros, so the numbers are the depthwise ones."""
    kh, kw = kernel.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    weight = np.zeros((c, c, kh, kw))
    weight[np.arange(c), np.arange(c)] = kernel
    shape = {"kernel_size": [kh], "stride": [sh]} if (kh, sh) == (kw, sw) else \
        {"kernel_h": kh, "kernel_w": kw, "stride_h": sh, "stride_w": sw}
    return lw.emit(name or lw.name(), "Convolution", [x], {"convolution_param": {
        "num_output": c, **shape, "bias_term": False}}, [_f32(weight)])


def lower_interpolate(lw: Lowering, node: fx.Node) -> str:
    kw = dict(zip(("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
                   "antialias"), node.args))
    kw.update(node.kwargs)
    mode, ac = kw.get("mode", "nearest"), kw.get("align_corners")
    if mode != "bilinear" or ac or kw.get("antialias"):
        lw.refuse(f"(mode={mode}, align_corners={ac}) has no exact lowering; only bilinear with "
                  "align_corners=False is lowered")
    n, c, h, w = shape(node.args[0])
    _, _, oh, ow = shape(node)
    x = lw.blob(node.args[0])
    if (oh, ow) == (2 * h, 2 * w):
        return _upsample2(lw, x, c, h, w)
    if (oh * 2, ow * 2) == (h, w) and _avg_pool_fits(2, 2, 2, w):
        return lw.emit(lw.name(), "Pooling", [x], {"pooling_param": {"pool": "AVE", "kernel_size": 2, "stride": 2}})
    for factor, taps in ((2, BILINEAR_DOWN2), (4, BILINEAR_DOWN4)):
        if (oh * factor, ow * factor) == (h, w):
            return _fixed_dense_conv(lw, x, c, np.outer(taps, taps), factor)
    lw.refuse(f"resizes {h}x{w} -> {oh}x{ow}; only exact x2, 1/2 and 1/4 bilinear resizes are lowered")


def _upsample2(lw: Lowering, x: str, c: int, h: int, w: int) -> str:
    k = np.outer(BILINEAR_UP2, BILINEAR_UP2)
    base = lw.name()
    deconv = {"convolution_param": {"num_output": c, "kernel_size": [4], "stride": [2], "pad": [1], "group": c,
                                    "bias_term": False}}
    kernel = _f32(np.broadcast_to(k, (c, 1, 4, 4)))
    up = lw.emit(base, "Deconvolution", [x], deconv, [kernel])
    if lw.target.opencv_dnn:  # the same 1/cover made by layers on one channel
        ones = lw.emit(base + "/ones", "Convolution", [x], {"convolution_param": {"num_output": 1, "kernel_size": [1],
                                                                                "bias_term": True}},
                       [np.zeros((1, c, 1, 1), np.float32), np.ones(1, np.float32)])
        cover = lw.emit(base + "/cover", "Deconvolution", [ones], {"convolution_param": {
            "num_output": 1, "kernel_size": [4], "stride": [2], "pad": [1], "bias_term": False}}, [kernel[:1]])
        inv = lw.emit(base + "/inv_cover", "Power", [cover], {"power_param": {"power": -1.0}})
        if c > 1:  # to C channels by a Concat of copies: OpenCV's Tile is ONNX's, not Caffe's
            inv = lw.emit(base + "/inv_cover_c", "Concat", [inv] * c, {"concat_param": {"axis": 1}})
        return lw.emit(base + "/border", "Eltwise", [up, inv], {"eltwise_param": {"operation": "PROD"}})
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    cover = F.conv_transpose2d(ones, torch.from_numpy(k)[None, None], stride=2, padding=1)[0, 0].numpy()
    return lw.emit(base + "/border", "Scale", [up], {"scale_param": {"axis": 2, "num_axes": 2, "bias_term": False}},
                   [_f32(1.0 / cover)], inplace=True)


def lower_cat(lw: Lowering, node: fx.Node) -> str:
    tensors = node.args[0] if node.args else node.kwargs["tensors"]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    rank = len(shape(node))
    if dim % rank != 1:
        lw.refuse(f"concatenates along dim {dim}; only channels (dim 1) are lowered")
    return lw.emit(lw.name(), "Concat", [lw.blob(t) for t in tensors], {"concat_param": {"axis": 1}})


def lower_add(lw: Lowering, node: fx.Node) -> str:
    a, b = node.args[:2]
    if node.kwargs.get("alpha", 1) != 1 or not (isinstance(a, fx.Node) and isinstance(b, fx.Node)) \
            or shape(a) != shape(b):
        lw.refuse("is not an add of two same-shape tensors, which is all Eltwise SUM lowers")
    return lw.emit(lw.name(), "Eltwise", [lw.blob(a), lw.blob(b)], {"eltwise_param": {"operation": "SUM"}})


MODULES: dict[type, Callable[[Lowering, fx.Node], str]] = {
    nn.Conv2d: lower_conv,
    nn.BatchNorm2d: lower_batchnorm,
    nn.InstanceNorm2d: lower_instancenorm,
    IBNorm: lower_ibnorm,
    nn.ReLU: lower_relu,
    nn.ReLU6: lower_relu6,
    nn.Hardtanh: lower_relu6,
    nn.Sigmoid: lower_sigmoid,
    SEBlock: lower_se,
}

FUNCTIONS: dict[object, Callable[[Lowering, fx.Node], str]] = {
    F.interpolate: lower_interpolate,
    torch.cat: lower_cat,
    torch.concat: lower_cat,
    operator.add: lower_add,
    torch.add: lower_add,
    torch.sigmoid: lower_sigmoid,
    F.relu: lambda lw, node: lw.emit(lw.name(), "ReLU", [lw.blob(node.args[0])], inplace=lw.can_inplace(node.args[0])),
}

METHODS: dict[str, Callable[[Lowering, fx.Node], str]] = {
    "contiguous": lambda lw, node: lw.blob(node.args[0]),
    "sigmoid": lower_sigmoid,
}


def lookup(node: fx.Node, modules: dict[str, nn.Module]):
    if node.op == "call_module":
        return MODULES.get(type(modules[node.target]))
    if node.op == "call_function":
        return FUNCTIONS.get(node.target)
    if node.op == "call_method":
        return METHODS.get(node.target)
    return None


def describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    if node.op == "call_method":
        return f".{node.target}()"
    return node.op


def lower(gm: fx.GraphModule, target: Target, input_names: dict[str, str], name: str = "net") -> Net:
    """fx graph (with shapes) -> Net for `target`, or a MatteconvError naming the first op it cannot lower."""
    with torch.no_grad():
        return Lowering(gm, target, input_names, name).run()
