"""Ascend's layer and operator rules as data: per compiler, what each rule checks and where it is written.

Why: a model that breaks one of these either fails deep inside atc/omg with a message far from the cause, or
(worse) converts and computes something else. Checking them before the compiler runs names the layer, the rule
and the page that states it. `matteconv inspect --target` and `matteconv om` use this table.

Compilers: `atc-caffe` (CANN atc, `--framework=0`), `atc-onnx` (CANN atc, `--framework=5`) and `omg` (the old
DDK of the HiLens Kit / Atlas 200 DK era, Caffe only). Layer and op *types* are checked against what each
compiler's parser takes (ascend/caffe_oplist.py, ascend/onnx_oplist.py: CANN's whole published lists, with
sources), not against the smaller set our exporter writes (export/caffe/targets.py `layers`).

The Convolution/Deconvolution limits are written on CANN's Caffe operator pages. atc parses an ONNX Conv /
ConvTranspose onto the same Conv2D / Conv2DTranspose kernels (docs/reference/ascend-operator-rules.md, [M]
onnx_plugin), so atc-onnx is held to them too. For omg only its layer list and its top-naming rule are
known; no parameter limit for it could be read (docs/reference/ascend-operator-rules.md, "omg").
The YUV420SP AIPP size rule is listed here for completeness: it is the AIPP rule `tbe.yuv420sp-even` of
aipp/rules.AIPP_RULES, which holds every AIPP config rule. Both tables report `matteconv.findings.Finding`.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import MatteconvError
from ..export.depthwise_plan import BUDGET as DEPTHWISE_BUDGET, depthwise_need
from ..findings import Finding
from .ops import ModelOps, Op, caffe_ops, caffe_shapes, onnx_ops

# --- sources --------------------------------------------------------------------------------------------------
CAFFE_LIST = "https://www.hiascend.com/doc_center/source/zh/canncommercial/800/apiref/aolapi/operatorlist_00098.html"
CONVOLUTION = ("https://www.hiascend.com/document/detail/zh/canncommercial/80RC22/apiref/operatorlist/"
               "operatorlist_0263.html")
CONVOLUTION_EN = "https://www.hiascend.com/document/detail/en/canncommercial/800/apiref/aolapi/operatorlist_00110.html"
DECONVOLUTION = "https://www.hiascend.com/document/detail/en/canncommercial/800/apiref/aolapi/operatorlist_00112.html"
ONNX_LIST = "https://www.hiascend.com/doc_center/source/zh/canncommercial/800/apiref/aolapi/operatorlist_00176.html"
ONNX_SLICE = "https://www.hiascend.com/document/detail/en/canncommercial/850/API/aolapi/atlasoxol_09_0150.html"
ONNX_RESIZE = ("https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/latest/API/aolapi/"
               "atlasoxol_09_0131.html")
HILENS_LIST = "https://support.huaweicloud.com/intl/en-us/usermanual-hilens/hilens_02_0059.html"
DDK_LIST_2019 = "https://blog.csdn.net/jacke121/article/details/100554867"
DDK_CONSTRAINTS = "https://support.huaweicloud.com/intl/ar-mena/mcg-atlas300app3000/atlasmcg_05_c30_0004.html"
YOLOV3_GUIDE = "https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/atc/atlasatc_16_0048.html"
UPSAMPLE_PLUGIN = "canndev ops/built-in/framework/caffe_plugin/upsample_plugin.cc (ParseParams_Upsample)"
AIPP_SIZES = "https://www.hiascend.com/document/detail/en/canncommercial/800/apiref/appdevgapi/aclcppdevg_03_1418.html"


@dataclass(frozen=True)
class Compiler:
    name: str
    tool: str  # atc | omg
    framework: str  # caffe | onnx
    caffe_target: str | None  # the export target whose layer table this compiler accepts
    description: str


COMPILERS: dict[str, Compiler] = {
    "atc-caffe": Compiler("atc-caffe", "atc", "caffe", "ascend", "CANN atc, Caffe (--framework=0)"),
    "atc-onnx": Compiler("atc-onnx", "atc", "onnx", None, "CANN atc, ONNX (--framework=5)"),
    "omg": Compiler("omg", "omg", "caffe", "ddk", "old DDK omg (HiLens Kit / Atlas 200 DK), Caffe"),
}

# ONNX ops matteconv's export writes, each found in CANN's ONNX operator list (docs/reference/ascend-operator-rules.md;
# tests check it against onnx_oplist). A user's model is checked against the whole list (`_onnx_type`).
# ReduceMean and Sub centre each InstanceNormalization's input (export/onnx/passes/centre_instance_norm.py): CANN
# ONNX operator pages
# ReduceMean (atlasoxol_09_0123, opset 8-16, `axes` attribute) and Sub (atlasoxol_09_0159, opset 8-15).
# BatchNormalization: IBNorm's BatchNorm half when the export does not fold it (export_onnx fold_batchnorm=False,
# the default since issue 20); CANN ONNX operator page atlasoxol_09_0024: opset 8-18, 4-D float/fp16, no constraints.
ONNX_OPS = frozenset({
    "Conv", "Relu", "Clip", "Add", "Mul", "Concat", "Sigmoid", "Slice", "Resize", "InstanceNormalization",
    "BatchNormalization",
    "MatMul", "GlobalAveragePool", "Flatten", "Reshape", "Unsqueeze", "Constant", "ReduceMean", "Sub",
    "AscendQuant", "AscendDequant",  # AMCT deploy model ops, in CANN's ONNX operator list (AscendQuant: atlasoxol_09_0015)
})
RESIZE_EXACT = ("pytorch_half_pixel", "align_corners")  # the modes Ascend's Resize parser maps faithfully
AICPU_RESIZE_SIDE = 2048


def compiler_for(framework: str, tool: str) -> Compiler:
    """The compiler that `tool` is for a model of this framework (omg takes Caffe only)."""
    if tool == "omg":
        if framework != "caffe":
            raise MatteconvError("omg (old DDK) converts Caffe only, not ONNX: use atc")
        return COMPILERS["omg"]
    if tool != "atc":
        raise MatteconvError(f"unknown tool {tool!r} (atc or omg)")
    return COMPILERS[f"atc-{framework}"]


def compiler_for_target(framework: str, target: str) -> Compiler | None:
    """`inspect --target`: ascend -> atc (Caffe or ONNX), ddk -> omg; bvlc has no Ascend compiler (None)."""
    if framework == "onnx":
        if target != "ascend":
            raise MatteconvError(f"an ONNX model goes through atc only: use --target ascend, not {target!r}")
        return COMPILERS["atc-onnx"]
    return next((c for c in COMPILERS.values() if c.caffe_target == target), None)


# --- checks: each returns what is wrong with the op (a phrase after "layer 'x' (Type)"), or None ------------

# Layers AMCT's Caffe deploy model adds around each INT8 layer; the deploy model is what atc compiles (AMCT
# convert_model / save_model: "部署模型文件 ... 经过ATC工具转换后可部署到昇腾AI处理器上", atlasamctcaffe_16_0067).
# They are rows of atc's table (caffe_oplist.ATC, registered by CANN's Caffe plugins).
AMCT_CAFFE_DEPLOY = frozenset({"Quant", "DeQuant", "AntiQuant"})


def _caffe_type(op: Op, comp: Compiler) -> tuple[str, str] | None:
    """What atc's / omg's Caffe parser does with the layer type (caffe_oplist: CANN's whole list, the parser's own
    types, the no-ops it drops, and the refusals with their cause), not what our exporter writes."""
    from . import caffe_oplist

    found = caffe_oplist.refusal(comp.name, op.type)
    if found is None:
        return None
    message, source = found
    if caffe_oplist.lookup(comp.name, op.type) is None:  # unlisted: say which table, and the export target
        target = comp.caffe_target
        message = (f"is not in the `{target}` layer set ({COMPILER_LISTS[comp.name]}): {message.removeprefix('is ')}"
                   f"; for a matteconv export, export with --target {target}")
    return message, source


COMPILER_LISTS = {"atc-caffe": "CANN 8.0's supported Caffe operator list and atc's Caffe parser",
                  "omg": "the old DDK omg's built-in Caffe operator list"}


def _onnx_type(op: Op, comp: Compiler) -> tuple[str, str] | None:
    """Whether CANN's published ONNX operator list (onnx_oplist) has the op type: ops of other domains and ops
    the list lacks are warned about (a newer CANN may take them)."""
    from . import onnx_oplist

    if onnx_oplist.listed(op.type) is not None:
        return None
    return ("is not in CANN's ONNX operator list (8.0.0, or 5.0.4 for AMCT's deploy ops): atc may refuse it "
            "(\"No parser is registered\"); check the list of the CANN version you compile with",
            f"{onnx_oplist.CANN80} ; {onnx_oplist.CANN504}")


def _upsample_scale(op: Op, comp: Compiler) -> str | None:
    if op.type != "Upsample" or "scale" not in op.attrs or op.attrs["scale"] == 1:
        return None
    if any(k in op.attrs for k in ("stride", "stride_h", "stride_w")):
        return (f"has upsample_param scale: {op.attrs['scale']:g}: atc multiplies every value by it (the size comes "
                "from stride); if scale is meant as the size factor, write scale: 1 and the stride")
    return (f"has upsample_param scale: {op.attrs['scale']:g} and no stride: atc reads scale as a factor on every "
            "value, not the size (its Upsample plugin warns \"scale means each pixel's scale factor, stride means "
            "upsample's shape magnification\"); for darknet's x2 upsample write scale: 1 stride: 2")


def _omg_top(op: Op, comp: Compiler) -> str | None:
    for top in op.tops:
        if top != op.name and not (top in op.bottoms and len(op.tops) == 1):
            return f"has top {top!r}: OMG requires top == layer name (in-place layers: top == bottom)"
    return None


def _depthwise(op: Op, comp: Compiler) -> str | None:
    if not op.depthwise:
        return None
    (fh, fw), sh, w = op.kernel, op.stride[0], op.in_shape[3]
    need = depthwise_need(fh, fw, sh, w)
    if need <= DEPTHWISE_BUDGET:
        return None
    return (f"is a depthwise {fh}x{fw} stride-{sh} convolution (group {op.group}) on input width {w}: "
            f"{fh}*{fw}*32 + {w}*(31*{sh} + {fw}) = {need:,} > {DEPTHWISE_BUDGET:,}")


def _filter_size(op: Op, comp: Compiler) -> str | None:
    fh, fw = op.kernel
    if 1 <= fh <= 255 and 1 <= fw <= 255:
        return None
    return f"has a {fh}x{fw} filter: filter height and width must be 1..255"


def _conv_width(op: Op, comp: Compiler) -> str | None:
    w = op.in_shape[3]
    return None if w <= 4096 else f"has input width {w} > 4096"


def _deconv_stride(op: Op, comp: Compiler) -> str | None:
    sh, sw = op.stride
    return None if 1 <= sh * sw < 256 else f"has stride {sh}x{sw}: stride_h*stride_w = {sh * sw} is outside [1, 256)"


def _deconv_size(op: Op, comp: Compiler) -> str | None:
    (_, _, hy, wy), (sh, sw) = op.in_shape, op.stride
    bad = [f"{n} = {v}" for n, v in ((f"Hy*stride_h = {hy}*{sh}", hy * sh), (f"Wy*stride_w = {wy}*{sw}", wy * sw))
           if not 2 <= v <= 4096]
    return None if not bad else f"has {', '.join(bad)} outside [2, 4096]"


def _resize_coordinates(op: Op, comp: Compiler) -> str | None:
    mode = op.attrs.get("mode", "nearest")
    ctm = op.attrs.get("coordinate_transformation_mode", "half_pixel")
    ok = RESIZE_EXACT if mode == "linear" else RESIZE_EXACT + ("asymmetric",)
    if op.type != "Upsample" and ctm in ok:
        return None
    return (f"uses coordinate_transformation_mode={ctm!r} (mode {mode}): Ascend computes that as asymmetric; "
            "rewrite it to pytorch_half_pixel (matteconv export does)")


def _resize_aicpu(op: Op, comp: Compiler) -> str | None:
    if op.attrs.get("mode", "nearest") != "linear":
        return None
    sides = [d for s in (op.in_shape, op.out_shape) if s and len(s) == 4 for d in s[2:]]
    big = max(sides, default=0)
    if big <= AICPU_RESIZE_SIDE:
        return None
    return f"is a bilinear Resize with a side of {big} > {AICPU_RESIZE_SIDE}: atc runs it on the AI CPU (slow)"


def _slice_last_step(op: Op, comp: Compiler) -> str | None:
    steps = op.attrs.get("steps")
    if op.type != "Slice" or steps is None or op.in_shape is None:
        return None
    rank = len(op.in_shape)
    bad = [s for a, s in zip(op.attrs["axes"], steps) if a % rank == rank - 1 and s != 1]
    return None if not bad else f"slices the last axis with step {bad[0]}: CANN's Slice takes step 1 there only"


@dataclass(frozen=True)
class Rule:
    id: str
    compilers: tuple[str, ...]
    kinds: tuple[str, ...]  # op kinds it looks at: conv, deconv, resize, or "*" for every layer
    severity: str  # error (om refuses) | warning (om says so and goes on)
    checks: str  # what, in the words of the source
    source: str
    # the check: a message, or (message, source) for per-row sources; None: enforced elsewhere (`enforced_by`)
    test: Callable[[Op, Compiler], str | tuple[str, str] | None] | None
    needs_shapes: bool = False
    enforced_by: str = ""

    def applies(self, op: Op) -> bool:
        return "*" in self.kinds or op.kind in self.kinds

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("test")
        return d


ATC = ("atc-caffe", "atc-onnx")
RULES: tuple[Rule, ...] = (
    Rule("caffe.layer-type", ("atc-caffe",), ("*",), "error",
         "atc's Caffe parser takes the layer type: CANN 8.0's supported Caffe operator list, the parser's own types "
         "(Input, DummyData, Reshape, Dropout) and CANN's plugins; DetectionOutput, Silence, Python, Region and "
         "fork-only types (SegNet/ENet BN) are refused with the fix (ascend/caffe_oplist.py)", CAFFE_LIST,
         _caffe_type),
    Rule("caffe.upsample-scale", ("atc-caffe",), ("*",), "warning",
         "Upsample: `scale` multiplies the values and `stride` sets the size (CANN's YOLOv3 guide: scale: 2 -> "
         "scale: 1 stride: 2)", f"{YOLOV3_GUIDE} ; {UPSAMPLE_PLUGIN}", _upsample_scale),
    Rule("omg.layer-type", ("omg",), ("*",), "error",
         "layer type is in the old DDK's operator list (omg accepts only listed operators; ascend/caffe_oplist.py)",
         f"{HILENS_LIST} ; {DDK_LIST_2019} ; {DDK_CONSTRAINTS}", _caffe_type),
    Rule("omg.top-name", ("omg",), ("*",), "error",
         "every top is named like its layer, except layers whose top is their bottom (BatchNorm, Scale, ReLU)",
         DDK_CONSTRAINTS, _omg_top),
    Rule("onnx.op-type", ("atc-onnx",), ("*",), "warning",
         "op type is in CANN's published ONNX operator list (ascend/onnx_oplist.py: 8.0.0, and 5.0.4 for AMCT's "
         "deploy ops)", ONNX_LIST, _onnx_type),
    Rule("conv.depthwise-buffer", ATC, ("conv",), "error",
         "group == channels: Fh*Fw*32 + W*(31*stride_h + Fw) <= 32768 (W = input width)", CONVOLUTION,
         _depthwise, needs_shapes=True),
    Rule("conv.filter-size", ATC, ("conv",), "error", "filter height and width in 1..255", CONVOLUTION_EN,
         _filter_size),
    Rule("conv.input-width", ATC, ("conv",), "error", "input width W <= 4096", CONVOLUTION, _conv_width,
         needs_shapes=True),
    Rule("deconv.stride", ATC, ("deconv",), "error", "1 <= stride_h*stride_w < 256", DECONVOLUTION,
         _deconv_stride),
    Rule("deconv.size", ATC, ("deconv",), "error", "Hy*stride_h and Wy*stride_w in [2, 4096] (Hy, Wy = input)",
         DECONVOLUTION, _deconv_size, needs_shapes=True),
    Rule("onnx.resize-coordinates", ("atc-onnx",), ("resize",), "error",
         "bilinear Resize is half-pixel only with coordinate_transformation_mode=pytorch_half_pixel "
         "(half_pixel is computed as asymmetric)", ONNX_RESIZE, _resize_coordinates),
    Rule("onnx.resize-aicpu", ("atc-onnx",), ("resize",), "warning",
         "bilinear Resize with H or W > 2048 falls back to the AI CPU", ONNX_RESIZE, _resize_aicpu,
         needs_shapes=True),
    Rule("onnx.slice-last-step", ("atc-onnx",), ("slice",), "error",
         "Slice: the step of the last axis must be 1", ONNX_SLICE, _slice_last_step, needs_shapes=True),
    Rule("aipp.yuv420sp-size", ("atc-caffe", "atc-onnx", "omg"), ("aipp",), "error",
         "YUV420SP_U8 AIPP input: width and height even, width in [2, 4096]", AIPP_SIZES, None,
         enforced_by="matteconv.aipp.rules AIPP_RULES tbe.yuv420sp-even (check_model_inputs)"),
)


def rules_for(compiler: str) -> list[Rule]:
    if compiler not in COMPILERS:
        raise MatteconvError(f"unknown compiler {compiler!r} (choose from {', '.join(COMPILERS)})")
    return [r for r in RULES if compiler in r.compilers]


# --- checking a model -----------------------------------------------------------------------------------------

@dataclass
class RuleReport:
    path: Path
    framework: str
    compiler: str
    violations: list[Finding] = field(default_factory=list)
    unchecked: list[tuple[str, str]] = field(default_factory=list)  # (layer, rule id): shapes were unknown
    shapes_error: str | None = None
    exported_for: str | None = None  # the target in a matteconv prototxt's provenance header

    @property
    def errors(self) -> list[Finding]:
        return [v for v in self.violations if v.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [v for v in self.violations if v.severity == "warning"]

    def lines(self, severity: str) -> list[str]:
        return [v.layer_text(self.path, self.framework) for v in self.violations if v.severity == severity]

    def unchecked_note(self) -> str | None:
        if not self.unchecked:
            return None
        rules = sorted({r for _, r in self.unchecked})
        why = f": {self.shapes_error}" if self.shapes_error else ""
        return (f"{self.path}: {len(self.unchecked)} check(s) of {', '.join(rules)} not run: blob shapes are "
                f"unknown{why}")

    def to_dict(self) -> dict:
        return {"path": str(self.path), "compiler": self.compiler, "violations": [v.violation_dict() for v in self.violations],
                "unchecked": [list(u) for u in self.unchecked], "shapes_error": self.shapes_error,
                "exported_for": self.exported_for}


_EXPORT_HEADER = re.compile(r"Caffe export \(target: (\w+)\)")  # export/caffe/export.py writes this line


def check_ops(model: ModelOps, compiler: str) -> RuleReport:
    """Every rule of `compiler` on every op it applies to."""
    comp = COMPILERS[compiler]
    if comp.framework != model.framework:
        raise MatteconvError(f"{model.path}: {compiler} takes {comp.framework} models, not {model.framework}")
    exported = next((m.group(1) for m in map(_EXPORT_HEADER.search, model.header) if m), None)
    report = RuleReport(model.path, model.framework, compiler, shapes_error=model.shapes_error, exported_for=exported)
    if model.format != "V2":
        from ..export.caffe.upgrade import UPGRADE_TOOL

        if comp.tool == "omg":
            report.violations.append(Finding(
                "error", "caffe.v1-format",
                f"is in the {model.format} prototxt format (`layers {{ type: CONVOLUTION }}`): omg refuses V1 layers; "
                f"upgrade it with Caffe's {UPGRADE_TOOL} IN OUT (or `matteconv inspect --upgrade OUT`)",
                source="Atlas 200 DK FAQ (omg and V1 prototxt); Caffe tools/upgrade_net_proto_text.cpp",
                layer="(net)", type=f"{model.format} layers"))
        else:
            report.violations.append(Finding(
                "warning", "caffe.v1-format",
                f"is in the {model.format} prototxt format: checked as Caffe upgrades it; that atc's Caffe parser "
                f"reads {model.format} was not found in the CANN docs: upgrade with {UPGRADE_TOOL} to be safe",
                source="Caffe src/caffe/util/upgrade_proto.cpp", layer="(net)", type=f"{model.format} layers"))
    for op in model.ops:
        for rule in rules_for(compiler):
            if rule.test is None or not rule.applies(op):
                continue
            if rule.needs_shapes and op.in_shape is None:
                report.unchecked.append((op.name, rule.id))
                continue
            if op.kind in ("conv", "deconv") and op.kernel is None:
                report.unchecked.append((op.name, rule.id))
                continue
            message = rule.test(op, comp)
            if message:
                source = rule.source
                if isinstance(message, tuple):  # a check with a per-row source (the operator lists)
                    message, source = message
                report.violations.append(Finding(rule.severity, rule.id, message, source=source, layer=op.name,
                                                 type=op.type))
    return report


def check_model(path: str | Path, compiler: str,
                shapes: tuple[dict, str | None] | None = None,
                input_shapes: dict[str, tuple[int, ...]] | None = None) -> RuleReport:
    """Load the model's ops (pycaffe shapes only when a rule of this compiler needs them) and check them.
    `shapes` = (blob shapes, error) a caller already has for a prototxt, to avoid loading it twice.
    `input_shapes` (ONNX: atc's --input_shape, name -> dims) fixes dynamic inputs so every shape rule runs."""
    path = Path(path)
    if not path.is_file():
        raise MatteconvError(f"{path}: model file not found")
    if COMPILERS[compiler].framework == "onnx":
        return check_ops(onnx_ops(path, input_shapes), compiler)
    if shapes is None:
        need = any(r.needs_shapes for r in rules_for(compiler))
        shapes = caffe_shapes(path) if need else ({}, "not needed")
    return check_ops(caffe_ops(path, *shapes), compiler)
