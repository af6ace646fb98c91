"""PyTorch -> ONNX, made safe for Ascend and checked numerically before it is kept.

Why more than `torch.onnx.export`: Ascend's ONNX parser treats only `pytorch_half_pixel` as half-pixel
bilinear, but torch may write `half_pixel` (same numbers in onnxruntime, wrong on the device); the dynamo
exporter may write a newer opset than asked. So we simplify, run the runtime profile's exact rewrites
(export/onnx/passes/), check the opset actually written and (for `any`) every Resize mode, record provenance,
and compare onnxruntime against PyTorch on a real image.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from ... import __version__
from ...backends import ort_session
from ...errors import MatteconvError
from ...fileio import atomic_path
from ...model.checkpoint import Checkpoint
from ...model.fold import fold_ibnorm
from ...model.modnet import with_split_inputs
from ... import preprocess
from ..parity import judge
from .graph import GraphView
from .passes import PROFILES, PassContext, recorded_counts, resolve, run_passes

SUPPORTED_OPSETS = (11, 13, 17)
# IBNorm's BatchNorm half folded into its convolution (model/fold.py) before export. Off: on the AMD EPYC (AVX2)
# kind the unfolded graph ran 0.93 / 0.86 of the plain export's time at 384 / 512 against 0.99 / 0.95 folded
# (same run, alternating; README). `fold_batchnorm=True` keeps the fold for targets where it is measured to pay.
FOLD_BATCHNORM = False
ASCEND_RESIZE_MODES = ("pytorch_half_pixel", "align_corners")
# `any`: one file for every runtime, atc included (Ascend-safe Resize modes, no runtime-specific ops).
# `onnxruntime`: tuned for onnxruntime's CPU provider (the `ort-*` passes); `matteconv om` refuses it.
RUNTIMES = PROFILES


@dataclass(kw_only=True)
class OnnxExport:
    path: Path
    opset: int
    nodes_before: int  # as traced, before onnxsim
    nodes_after: int
    max_abs_diff: float
    parity_tolerance: float  # 1e-3, or larger at sizes where fp32's own error is (export/parity.py)
    input_names: list[str] = field(default_factory=list)
    runtime: str = "any"  # RUNTIMES
    passes: dict[str, int | dict[str, int]] = field(default_factory=dict)  # pass name -> count, in the order run
    rule_rewrites: list[str] = field(default_factory=list)  # the passes' notes (depthwise plans for Ascend's rule)
    nchwc_block: int | None = None  # the NCHWc block the `ort-*` passes tuned for (runtime onnxruntime)


def input_names_for(in_channels: int, split_inputs: bool) -> list[str]:
    return ["image", "prev_alpha"] if split_inputs else ["input"]


def dummy_inputs(in_channels: int, split_inputs: bool, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    h, w = size
    if split_inputs:
        return torch.zeros(1, 3, h, w), torch.zeros(1, 1, h, w)
    return (torch.zeros(1, in_channels, h, w),)


def written_opset(model: onnx.ModelProto, where: str, opsets: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 17)) -> int:
    """The default-domain opset of `model`; raise if it is outside `opsets`."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in opsets:
        raise MatteconvError(f"{where}: ONNX opset {opset} is outside {opsets[0]}..{opsets[-1]}")
    return opset


def check_ascend_safe(model: onnx.ModelProto, where: str, opsets: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 17)) -> int:
    """Raise if a Resize would be computed differently on Ascend; return the default-domain opset."""
    opset = written_opset(model, where, opsets)
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


def export_onnx(ckpt: Checkpoint, out: str | Path, size: tuple[int, int] = (512, 512), opset: int = 11, *,
                dynamic: bool = False, do_simplify: bool = True, split_inputs: bool = False,
                fold_batchnorm: bool = FOLD_BATCHNORM, runtime: str = "any", skip: Iterable[str] = (),
                add: Iterable[str] = (), block: int | None = None) -> OnnxExport:
    """Export, simplify, rewrite, check and parity-test; the file appears only if everything passed.
    `runtime`: the pass profile (export/onnx/passes): `any` (the default) writes one file for every runtime, atc
    included; `onnxruntime` adds the `ort-*` passes (faster in onnxruntime on the CPU, not for atc). `skip`: pass
    names not to run; `add`: non-default passes to run as well (`split-sliced-conv`); `block`: the NCHWc block
    the `ort-*` passes tune for (None: this CPU's). Skipping `centre-instance-norm` keeps onnxruntime's inexact
    InstanceNormalization on flat inputs: for tests and `compare` demonstrations only.
    Raises MatteconvError for an unknown opset, runtime or pass, a failed check or a failed parity test."""
    out = Path(out)
    passes = resolve(runtime, skip, add)
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
    ctx = PassContext(GraphView(onnx_model), block_size=block)
    counts = run_passes(onnx_model, passes, ctx)
    written = check_ascend_safe(onnx_model, str(out)) if runtime == "any" else written_opset(onnx_model, str(out))
    if written != opset:
        raise MatteconvError(f"{out}: asked for opset {opset} but the exporter wrote {written}")
    nchwc_block = ctx.block if runtime == "onnxruntime" else None
    meta = {"matteconv_version": __version__, "checkpoint_sha256": ckpt.sha256,
            "weights_sha256": ckpt.weights_sha256, "input_size": f"{size[0]}x{size[1]}",
            "in_channels": str(ckpt.in_channels), "hr_channels": str(ckpt.hr_channels), "input_names": ",".join(names),
            "dynamic": str(dynamic).lower(), "batchnorm_folded": str(fold_batchnorm).lower(), "runtime": runtime,
            **({"nchwc_block": str(nchwc_block)} if nchwc_block is not None else {}),
            "passes": json.dumps(recorded_counts(counts)), "rule_rewrites": json.dumps(ctx.notes),
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
    return OnnxExport(path=out, opset=written, nodes_before=before, nodes_after=len(onnx_model.graph.node),
                      max_abs_diff=parity.max_abs, parity_tolerance=parity.tolerance, input_names=names,
                      runtime=runtime, passes=counts, rule_rewrites=list(ctx.notes), nchwc_block=nchwc_block)


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
