"""PyTorch -> ONNX, made safe for Ascend and checked numerically before it is kept.

Why more than `torch.onnx.export`: Ascend's ONNX parser treats only `pytorch_half_pixel` as half-pixel
bilinear, but torch may write `half_pixel` (same numbers in onnxruntime, wrong on the device); the dynamo
exporter may write a newer opset than asked. So we rewrite Resize attributes, check the opset actually written,
simplify, record provenance, and compare onnxruntime against PyTorch on a real image.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from .. import __version__
from ..backends import ort_session
from ..errors import MatteconvError
from ..fileio import atomic_path
from ..model.checkpoint import Checkpoint
from ..model.fold import fold_ibnorm
from ..model.modnet import with_split_inputs
from .concat_conv import relus_before_concats, split_concat_convs
from .slice_conv import split_sliced_convs
from .depthwise_rewrite import rewrite_onnx
from .instance_norm import centre_instance_norms
from .nchwc import tune_for_onnxruntime
from .parity import judge
from .. import preprocess

SUPPORTED_OPSETS = (11, 13, 17)
# IBNorm's Conv -> Slice pairs as two Convs (export/slice_conv.py): on only where measured to pay (README,
# "How the numbers look here": onnxruntime per-node profile, AMD EPYC AVX2, issue 20: the half-width convolutions
# lose more than the Slices, BatchNorm and reorders they remove)
SPLIT_SLICES = False
# IBNorm's BatchNorm half folded into its convolution (model/fold.py) before export. Off: on the AMD EPYC (AVX2)
# kind the unfolded graph ran 0.93 / 0.86 of the plain export's time at 384 / 512 against 0.99 / 0.95 folded
# (same run, alternating; README). `fold_batchnorm=True` keeps the fold for targets where it is measured to pay.
FOLD_BATCHNORM = False
ASCEND_RESIZE_MODES = ("pytorch_half_pixel", "align_corners")
# `any`: one file for every runtime, atc included (Ascend-safe Resize modes, no runtime-specific ops).
# `onnxruntime`: tuned for onnxruntime's CPU provider (export/nchwc.py); `matteconv om` refuses it.
RUNTIMES = ("any", "onnxruntime")


@dataclass
class OnnxExport:
    path: Path
    opset: int
    nodes_before: int
    nodes_after: int
    resize_rewritten: int
    max_abs_diff: float
    input_names: list[str] = field(default_factory=list)
    concat_convs_split: int = 0
    parity_tolerance: float = 0.0  # 1e-3, or larger at sizes where fp32's own error is (export/parity.py)
    instance_norms_centred: int = 0  # export/instance_norm.py
    rule_rewrites: list[str] = field(default_factory=list)  # exact rewrites for Ascend rules (depthwise_rewrite.py)
    sliced_convs_split: int = 0  # export/slice_conv.py
    relus_before_concats: int = 0  # export/concat_conv.py
    runtime: str = "any"  # RUNTIMES
    runtime_rewrites: dict[str, int] = field(default_factory=dict)  # export/nchwc.py, for runtime="onnxruntime"


def input_names_for(in_channels: int, split_inputs: bool) -> list[str]:
    return ["image", "prev_alpha"] if split_inputs else ["input"]


def dummy_inputs(in_channels: int, split_inputs: bool, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    h, w = size
    if split_inputs:
        return torch.zeros(1, 3, h, w), torch.zeros(1, 1, h, w)
    return (torch.zeros(1, in_channels, h, w),)


def fix_resize_modes(model: onnx.ModelProto) -> int:
    """Rewrite every bilinear Resize's `half_pixel` to `pytorch_half_pixel` (identical unless a side is 1)."""
    n = 0
    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        attrs = {a.name: a for a in node.attribute}
        mode = attrs.get("coordinate_transformation_mode")
        if mode is None:
            node.attribute.append(onnx.helper.make_attribute("coordinate_transformation_mode", "pytorch_half_pixel"))
            n += 1
        elif mode.s == b"half_pixel":
            mode.s = b"pytorch_half_pixel"
            n += 1
    return n


def check_ascend_safe(model: onnx.ModelProto, where: str, opsets: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 17)) -> int:
    """Raise if a Resize would be computed differently on Ascend; return the default-domain opset."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in opsets:
        raise MatteconvError(f"{where}: ONNX opset {opset} is outside {opsets[0]}..{opsets[-1]}")
    for node in model.graph.node:
        if node.op_type == "Resize":
            mode = next((a.s.decode() for a in node.attribute if a.name == "coordinate_transformation_mode"),
                        "half_pixel")
            if mode not in ASCEND_RESIZE_MODES:
                raise MatteconvError(f"{where}: Resize node {node.name!r} uses coordinate_transformation_mode="
                                     f"{mode}; Ascend computes that as asymmetric (wrong mattes)")
    return opset


def _torch_export(model: torch.nn.Module, args, names, opset: int, dynamic: bool) -> onnx.ModelProto:
    dyn = {n: {2: "height", 3: "width"} for n in names} | {"alpha": {2: "height", 3: "width"}} if dynamic else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, buf, opset_version=opset, input_names=names, output_names=["alpha"],
                          dynamic_axes=dyn, do_constant_folding=True, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise MatteconvError("onnxsim could not validate the simplified model")
    return simplified


def parity_image(size: tuple[int, int]) -> np.ndarray:
    """A real portrait photo (scikit-image's astronaut) prepared with the device policy at the model size."""
    from skimage import data

    return preprocess.prepare(data.astronaut(), "device", size).tensor


def export_onnx(ckpt: Checkpoint, out: str | Path, size: tuple[int, int] = (512, 512), opset: int = 11,
                dynamic: bool = False, do_simplify: bool = True, split_inputs: bool = False,
                split_concat: bool = True, centre_norms: bool = True, split_slices: bool = SPLIT_SLICES,
                fold_batchnorm: bool = FOLD_BATCHNORM, runtime: str = "any") -> OnnxExport:
    """Export, fix, simplify, check and parity-test; the file appears only if everything passed.
    `centre_norms=False` keeps onnxruntime's inexact InstanceNormalization on flat inputs (export/instance_norm.py):
    for tests and `compare` demonstrations only. `runtime="onnxruntime"` adds export/nchwc.py's rewrites (faster in
    onnxruntime on the CPU, not for atc); `any` (the default) writes one file for every runtime, atc included.
    Raises MatteconvError for an unknown opset or runtime, a failed check or a failed parity test."""
    out = Path(out)
    if runtime not in RUNTIMES:
        raise MatteconvError(f"runtime {runtime!r} not supported (choose from {', '.join(RUNTIMES)})")
    if opset not in SUPPORTED_OPSETS:
        raise MatteconvError(f"opset {opset} not supported (choose from {', '.join(map(str, SUPPORTED_OPSETS))})")
    if split_inputs and ckpt.in_channels != 4:
        raise MatteconvError(f"{ckpt.path}: --split-inputs needs a 4-channel (temporal) checkpoint")
    model = with_split_inputs(ckpt.model, split_inputs)
    names = input_names_for(ckpt.in_channels, split_inputs)
    args = dummy_inputs(ckpt.in_channels, split_inputs, size)
    onnx_model = _torch_export(fold_ibnorm(model) if fold_batchnorm else model, args, names, opset, dynamic)
    before = len(onnx_model.graph.node)
    if do_simplify:
        onnx_model = simplify(onnx_model)
    n_relus = relus_before_concats(onnx_model) if split_concat else 0
    n_sliced = split_sliced_convs(onnx_model) if split_slices else 0
    n_split = split_concat_convs(onnx_model) if split_concat else 0
    n_centred = centre_instance_norms(onnx_model) if centre_norms else 0
    rule_rewrites = rewrite_onnx(onnx_model)
    rewritten = fix_resize_modes(onnx_model)
    written = check_ascend_safe(onnx_model, str(out))
    runtime_rewrites = tune_for_onnxruntime(onnx_model) if runtime == "onnxruntime" else {}
    if written != opset:
        raise MatteconvError(f"{out}: asked for opset {opset} but the exporter wrote {written}")
    meta = {"matteconv_version": __version__, "checkpoint_sha256": ckpt.sha256,
            "weights_sha256": ckpt.weights_sha256, "input_size": f"{size[0]}x{size[1]}",
            "in_channels": str(ckpt.in_channels), "hr_channels": str(ckpt.hr_channels), "input_names": ",".join(names),
            "dynamic": str(dynamic).lower(), "concat_convs_split": str(n_split),
            "relus_before_concats": str(n_relus), "sliced_convs_split": str(n_sliced),
            "instance_norms_centred": str(n_centred),
            "batchnorm_folded": str(fold_batchnorm).lower(),
            "runtime": runtime, "runtime_rewrites": json.dumps(runtime_rewrites),
            "rule_rewrites": json.dumps(rule_rewrites),
            "preprocessing": json.dumps({"color": "RGB", "mean": preprocess.MEAN, "std": preprocess.STD,
                                         "layout": "NCHW"})}
    del onnx_model.metadata_props[:]
    for k, v in meta.items():
        onnx_model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(onnx_model, full_check=True)

    image = parity_image(size)
    feeds, targs = _parity_feeds(image, ckpt.in_channels, split_inputs)
    with torch.no_grad():
        ref = model(*[torch.from_numpy(t) for t in targs]).numpy()
    got = ort_session(onnx_model.SerializeToString(), where=out).run(None, feeds)[0]
    parity = judge(got, ref, lambda: run_float64(model, targs), out, ckpt.path, "onnxruntime")
    with atomic_path(out) as tmp:
        onnx.save(onnx_model, str(tmp))
    return OnnxExport(out, written, before, len(onnx_model.graph.node), rewritten, parity.max_abs, names, n_split,
                      parity.tolerance, n_centred, rule_rewrites, n_sliced, n_relus, runtime, runtime_rewrites)


def run_float64(model: torch.nn.Module, inputs) -> np.ndarray:
    """The model once in float64 on a copy (the parity rule's reference at large sizes). Convolutions run in row
    tiles: torch has no fast float64 convolution and its fallback unfolds the whole input (10 GB at 2048x2048)."""
    import copy

    model64 = copy.deepcopy(model).double().eval()
    with torch.no_grad(), row_tiled_float64_convs():
        return model64(*[torch.from_numpy(np.asarray(t, np.float64)) for t in inputs]).numpy()


@contextlib.contextmanager
def row_tiled_float64_convs(rows: int = 64):
    """Within the block, a float64 conv2d is computed band by band of `rows` output rows (the same sums per
    output pixel, so the same result up to float64 summation order, which the kernel may block differently
    for a band than for the whole image), bounding the unfold buffer by the band instead of the image."""
    import torch.nn.functional as F
    from torch.nn.modules.utils import _pair

    plain = F.conv2d

    def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if x.dtype != torch.float64 or x.dim() != 4 or isinstance(padding, str):
            return plain(x, weight, bias, stride, padding, dilation, groups)
        (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
        xp = torch.nn.functional.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        reach = dh * (weight.shape[2] - 1) + 1
        out_h = (xp.shape[2] - reach) // sh + 1
        bands = [plain(xp[:, :, o * sh: (min(o + rows, out_h) - 1) * sh + reach], weight, bias, (sh, sw), 0,
                       (dh, dw), groups) for o in range(0, out_h, rows)]
        return bands[0] if len(bands) == 1 else torch.cat(bands, dim=2)

    F.conv2d = conv2d
    try:
        yield
    finally:
        F.conv2d = plain


def _parity_feeds(image: np.ndarray, in_channels: int, split_inputs: bool):
    """The same real image for both runtimes; for temporal models, a smooth non-zero previous alpha."""
    h, w = image.shape[-2:]
    prev = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (1, 1, h, w)).copy()
    if split_inputs:
        return {"image": image, "prev_alpha": prev}, (image, prev)
    x = image if in_channels == 3 else np.concatenate([image, prev], axis=1)
    return {"input": x}, (x,)
