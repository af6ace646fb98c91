"""AIPP config rules as data: every rule `matteconv aipp check`, the strict loader (`om`, `verify`, `quantize`) and
`check_model_inputs` apply, with its id, severity, what it checks, where that is written, and its check.

Why a table: the same rule id is what the CLI prints, what tests/external/cases.toml expects, and what
`matteconv rules` lists (beside ascend/rules.RULES, the atc/omg layer rules); one row per id, so one condition has
one text. Errors are only what GraphEngine ([ge] ge_aipp_op.cc), the AIPP operator ([tbe] aipp_comm.py
check_aipp_static_config) or protobuf's text parser ([proto], parse.py) refuse; everything else ATC accepts is a
warning or a note (schema.py lists the sources).

Scopes (when a rule runs; aipp/check.py is the runner):
- `parse`   protobuf's text parser refuses the file (raised by parse.py as AippParseError; no check here).
- `block`   one aipp_op alone, in table order; a rule with `stops` ends its block's checks when it fires.
            `model_size` rules run again once the model input is known, with 0 sizes read as the model's.
- `file`    one aipp_op against the others (after its block rules; `ctx.seen` holds the inputs already fed).
- `config`  the whole file, once.
- `model`   one aipp_op against the model input it feeds (name, NCHW shape); skipped without the model.
- `lint`    one explained static aipp_op (explain.py) against what matteconv's models expect.

A check is `test(op, ctx) -> iterable of (key, message)` or `(key, message, source)`: `key` is the field whose
line the finding names (None: the aipp_op line); `config` checks get the AippConfig and yield (line, message).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from ..preprocess import MEAN, STD
from .explain import (Explanation, default_matrix, default_matrix_name, ignored_fields, source_names,
                      truncated_reciprocal, unused_by_operator)
from .parse import AippOp
from .schema import ASCEND310_FORMATS, FIELDS, YUV_FORMATS

TBE = "AIPP operator check_aipp_static_config (ascend opp aipp_comm.py)"
GE = "GraphEngine ge_aipp_op.cc"
PROTO = "protobuf text format (ATC reads the file with it)"
AIPP_SIZES = "https://www.hiascend.com/document/detail/en/canncommercial/800/apiref/appdevgapi/aclcppdevg_03_1418.html"
SCOPES = ("parse", "block", "file", "config", "model", "lint")
STATIC, DYNAMIC = ("static",), ("dynamic",)


@dataclass
class Context:
    """What a check may read besides the op. The runner fills what is known: the SoC always; the model's input
    names for the `file` rules (None without the model); the input the op feeds for `model` rules and the
    `model_size` block rules (`hw` is its (H, W), None when unknown or not positive); the explanation for `lint`."""

    soc_version: str = "Ascend310"
    names: list[str] | None = None
    seen: dict[int, int] = field(default_factory=dict)  # model input rank -> line of the aipp_op that feeds it
    inputs: list[tuple[str, tuple[int, ...]]] | None = None
    rank: int | None = None
    name: str = ""
    shape: tuple[int, ...] = ()
    hw: tuple[int, int] | None = None
    explanation: Explanation | None = None
    colours: list[str] = field(default_factory=list)  # every channel AIPP outputs (before a model drops some)
    model_channels: int | None = None


Hit = tuple  # (key, message) or (key, message, source)


@dataclass(frozen=True)
class AippRule:
    id: str
    severity: str  # error (ATC refuses) | warning (accepted, but see why) | note
    scope: str  # one of SCOPES
    checks: str  # what, in the words of the source
    source: str  # where it is written ("" for matteconv's own lints; the finding then cites nothing)
    test: Callable[..., Iterable[Hit]] | None  # None: enforced elsewhere (`enforced_by`)
    modes: tuple[str, ...] = STATIC  # the aipp_mode values it looks at; () = any block
    stops: bool = False  # block/model: when it fires, the op's later rules of the scope are not run
    model_size: bool = False  # block: run again with the model's size once it is known
    enforced_by: str = ""

    def applies(self, op: AippOp) -> bool:
        return not self.modes or op.mode in self.modes

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("test")
        return d


def _src(op: AippOp) -> tuple[int, int]:
    return int(op.get("src_image_size_w")), int(op.get("src_image_size_h"))


# --- block: one aipp_op alone ----------------------------------------------------------------------------------

def _aipp_mode(op, ctx):
    if op.mode not in ("static", "dynamic"):
        yield "aipp_mode", ("aipp_mode must be static or dynamic (it is "
                            f"{'not set' if not op.is_set('aipp_mode') else op.mode})")


def _repeated(op, ctx):
    for name, n in op.counts.items():
        if n > 1 and name != "input_edge_idx":
            yield name, f"{name} is given {n} values: GE takes one ('can not be configured repeatedly')"


def _dynamic_max_src(op, ctx):
    if int(op.get("max_src_image_size")) <= 0:
        yield "max_src_image_size", "dynamic AIPP needs max_src_image_size > 0"


def _input_format(op, ctx):
    if op.input_format == "UNDEFINED":
        yield None, "static aipp_op has no input_format (the only required field)"


def _ranges(source: str):
    def test(op, ctx):  # single-field ranges of the fields GE passes on
        ignored = ignored_fields(op)
        for name, value in op.values.items():
            f = FIELDS[name]
            if f.source != source or name in ignored or f.lo is None or isinstance(value, (bool, str)):
                continue
            if value < f.lo or (f.hi is not None and value > f.hi):
                hi = "" if f.hi is None else f"{f.hi:g}"
                yield name, f"{name} {value:g} is outside the range [{f.lo:g}, {hi}] the tools accept"
    return test


def _src_size(op, ctx):
    if _src(op)[0] == 1:
        yield "src_image_size_w", "src_image_size_w must be 0 (= model width) or 2..4096"


def _yuv420sp_even(op, ctx):
    if op.input_format != "YUV420SP_U8":
        return
    rw, rh = sw, sh = _src(op)
    zero = ""
    if ctx.hw is not None:  # a size of 0 is the model's
        if not (sw and sh):
            zero = f" (0 = model input {ctx.name!r}'s size)"
        sh, sw = sh or ctx.hw[0], sw or ctx.hw[1]
    if sw % 2 or sh % 2 or (ctx.hw is not None and not 2 <= sw <= 4096):
        yield ("src_image_size_w" if sw % 2 or not sh % 2 else "src_image_size_h",
               f"src_image_size {rw}x{rh} (WxH): the YUV420SP_U8 source {sw}x{sh}{zero} must be even, with W in "
               "[2, 4096]")


def _yuv422_even(op, ctx):
    fmt, sw = op.input_format, _src(op)[0]
    if fmt in ("YUV422SP_U8", "YUYV_U8") and sw % 2:
        yield "src_image_size_w", f"src_image_size_w {sw} must be even for {fmt}"


def _yuv400(op, ctx):
    g = op.get
    if op.input_format == "YUV400_U8" and (g("csc_switch") or g("resize") or g("padding")):
        key = next(k for k in ("csc_switch", "resize", "padding") if g(k))
        yield key, (f"YUV400_U8 cannot use {key} (the AIPP operator refuses csc, resize and padding for it); "
                    "YUV400 feeds 1-channel models only")


def _resize_soc(op, ctx):
    if op.get("resize") and not ctx.soc_version.lower().startswith("hi3796cv300"):
        yield "resize", f"AIPP resize is only available on Hi3796CV300, not on {ctx.soc_version}"


def _crop_needs_src(op, ctx):
    g = op.get
    sw, sh = _src(op)
    if (g("crop") or g("padding") or g("resize")) and not (sw > 0 and sh > 0):
        key = "crop" if g("crop") else "padding" if g("padding") else "resize"
        yield key, f"{key} is on, so src_image_size_w and src_image_size_h must be > 0 (they are {sw}x{sh})"


def _crop_xywh(op):
    return (int(op.get("load_start_pos_w")), int(op.get("load_start_pos_h")), int(op.get("crop_size_w")),
            int(op.get("crop_size_h")))


def _crop_size_zero(op, ctx):
    g = op.get
    if g("crop"):
        _, _, cw, ch = _crop_xywh(op)
        if (cw == 0 or ch == 0) and (g("padding") or g("resize")):
            yield ("crop_size_w" if cw == 0 else "crop_size_h",
                   "crop size 0 (= model size) cannot be combined with padding or resize")


def _crop_inside(op, ctx):
    if not op.get("crop"):
        return
    x, y, cw, ch = _crop_xywh(op)
    sw, sh = _src(op)
    model_w, model_h = (ctx.hw[1], ctx.hw[0]) if ctx.hw is not None else (0, 0)  # a size of 0 is the model's
    for axis, pos, size, src, model in (("w", x, cw, sw, model_w), ("h", y, ch, sh, model_h)):
        dim = "width" if axis == "w" else "height"
        size_eff, src_eff = size or model, src or model
        if src_eff and size_eff and pos + size_eff > src_eff:
            zero = f" (0: the model {dim})" if not size else ""
            yield (f"crop_size_{axis}" if size else f"load_start_pos_{axis}",
                   f"crop load_start_pos_{axis} {pos} + crop_size_{axis} {size_eff}{zero} exceeds "
                   f"src_image_size_{axis} {src_eff}")


def _yuv420sp_crop_even(op, ctx):
    if op.get("crop") and op.input_format == "YUV420SP_U8":
        x, y, cw, ch = _crop_xywh(op)
        if x % 2 or y % 2 or cw % 2 or ch % 2:
            key = next(k for k, v in (("load_start_pos_w", x), ("load_start_pos_h", y), ("crop_size_w", cw),
                                      ("crop_size_h", ch)) if v % 2)
            yield key, (f"crop offset {x},{y} and size {cw}x{ch} must be even for YUV420SP_U8 (chroma is shared "
                        "by 2x2 pixels)")


def _yuv422_crop_even(op, ctx):
    fmt = op.input_format
    if op.get("crop") and fmt in ("YUV422SP_U8", "YUYV_U8"):
        x, _, cw, _ = _crop_xywh(op)
        if x % 2 or cw % 2:
            yield "load_start_pos_w", f"load_start_pos_w {x} and crop_size_w {cw} must be even for {fmt}"


# --- file: one aipp_op against the others; config: the whole file ------------------------------------------------

def _name_over_rank(op, ctx):
    if op.input_name is not None and op.is_set("related_input_rank"):
        yield "related_input_name", (f"related_input_name {op.input_name!r} and related_input_rank {op.rank} are "
                                     "both set: GE uses the name")


def _same_input(op, ctx):
    """Two blocks on one model input. Without the model's input names a block that names its input is not
    placed (it may be any input)."""
    rank = op.resolved_rank(ctx.names)
    if rank is not None and rank in ctx.seen:
        yield ("related_input_name" if op.input_name else "related_input_rank",
               f"two aipp_op blocks for model input {rank} (the other at line {ctx.seen[rank]})")
    if rank is not None and (op.input_name is None or ctx.names is not None):
        ctx.seen[rank] = op.line


def _dynamic(op, ctx):
    yield "aipp_mode", "dynamic AIPP: the app sets the parameters at run time; nothing to explain or emulate here"


def _multi_shape(cfg, ctx):
    if cfg.multi_shape_ops:
        yield None, f"{cfg.multi_shape_ops} multi_shape_op block(s) (dynamic batch) are not checked here"


# --- model: one aipp_op against the model input it feeds -------------------------------------------------------

def _names(ctx) -> str:
    return ", ".join(ctx.names or []) or "none"


def _input_name(op, ctx):
    if ctx.rank is None:
        yield "related_input_name", f"related_input_name {op.input_name!r} is not a model input ({_names(ctx)})"


def _input_rank(op, ctx):
    if ctx.rank >= len(ctx.inputs):
        yield "related_input_rank", (f"related_input_rank {ctx.rank} but the model has {len(ctx.inputs)} "
                                     f"input(s) ({_names(ctx)})")


def _input_4d(op, ctx):
    if len(ctx.shape) != 4:
        yield "related_input_rank", (f"model input {ctx.name!r} has shape {list(ctx.shape)}, AIPP needs a 4-D NCHW "
                                     "input")


def _soc_is(soc: str, *prefixes: str) -> bool:
    return soc.lower().startswith(prefixes)


def _format_soc(op, ctx):
    fmt = op.input_format
    if _soc_is(ctx.soc_version, "ascend310", "ascend610", "ascend710") and fmt not in ASCEND310_FORMATS:
        yield "input_format", f"{ctx.soc_version} AIPP does not take {fmt} (only {', '.join(ASCEND310_FORMATS)})"


def _channels(op, ctx):
    c = int(ctx.shape[1])
    if c > op.channels:  # fewer: the model reads the first c of AIPP's channels (the channels-dropped rules)
        yield "input_format", (f"{op.input_format} feeds {op.channels} channel(s) but model input {ctx.name!r} has "
                               f"{c} (shape {list(ctx.shape)})")


def _output_size(op, ctx):
    if ctx.hw is None:
        return
    h, w = ctx.hw
    out_hw = op.output_hw(ctx.hw)
    if out_hw != (h, w):
        crop, pad = op.get("crop"), op.get("padding")
        key = "crop_size_w" if crop else "src_image_size_w"
        what = ("crop size + padding" if crop and pad else "crop size" if crop else
                "src_image_size + padding" if pad else "src_image_size")
        yield key, (f"AIPP {what} {out_hw[1]}x{out_hw[0]} (WxH) does not match model input {ctx.name!r} {w}x{h}: "
                    "AIPP cannot resize on Ascend 310")


def _padding_width(op, ctx):
    if ctx.hw is None:
        return
    w = ctx.hw[1]
    soc = ctx.soc_version
    if op.get("padding") and w > 1080 and (not soc or _soc_is(soc, "ascend310", "ascend610", "ascend710")):
        yield "padding", f"with padding the AIPP output width {w} must be <= 1080 on Ascend 310/610/710"


# --- lint: an explained static aipp_op against what matteconv's models expect ------------------------------------

def _ge_ignored(op, ctx):
    for name in sorted(ignored_fields(op)):
        fld = FIELDS[name]
        why = f"{fld.switch} is off" if fld.switch else f"it is a {fld.mode}-AIPP field and this op is {op.mode}"
        yield name, f"{name} is set but {why}: GE ignores it"


def _tbe_ignored(op, ctx):
    unused = unused_by_operator(op)
    if unused:
        yield unused[0], (f"{', '.join(unused)} set, but {op.input_format} has {op.channels} channel(s)"
                          + (" and no U/V to swap" if "rbuv_swap_switch" in unused else "")
                          + ": the AIPP operator does not use them")


def _default_matrix(op, ctx):
    missing = default_matrix(op)
    if missing:
        yield "csc_switch", (f"csc_switch is on without {len(missing)} matrix element(s): GE fills its default, "
                             f"{default_matrix_name(op)}")


def _csc_range(op, ctx):
    g, fmt = op.get, op.input_format
    if not (g("csc_switch") and len(source_names(op)) == 3 and fmt in YUV_FORMATS and fmt != "YUV400_U8"):
        return
    y_coef = {int(g(f"matrix_r{r}c0")) for r in range(3)}
    ib0 = int(g("input_bias_0"))
    if y_coef <= {298} and ib0 != 16:
        yield "input_bias_0", (f"matrix is video range (Y coefficient 298 = 255/219 x 256) but input_bias_0 is "
                               f"{ib0}, not 16: blacks and whites shift by {abs(298 * (16 - ib0)) >> 8} levels")
    if y_coef <= {256} and ib0 != 0:
        yield "input_bias_0", (f"matrix is full range (Y coefficient 256) but input_bias_0 is {ib0} (the "
                               f"video-range bias): every channel drops by {ib0} levels and blacks clip")


def _no_csc(op, ctx):
    fmt = op.input_format
    if not (op.get("csc_switch") and len(source_names(op)) == 3) and fmt in YUV_FORMATS and fmt != "YUV400_U8":
        yield "csc_switch", f"{fmt} without csc_switch: the model gets Y,U,V, not R,G,B"


def _dropped(ctx) -> tuple[list[str], str] | None:
    """(the colours of the channels the model does not read, the shared text), or None."""
    keep, colours = ctx.model_channels, ctx.colours
    if keep is None or not 0 < keep < len(colours):
        return None
    dropped = colours[keep:]
    names = ", ".join(f"ch{i}" for i in range(keep, keep + len(dropped)))
    reads = "ch0" if keep == 1 else f"ch0..ch{keep - 1}"
    return dropped, f"the model input has {keep} channel(s): it reads {reads} of AIPP's output; {names} "


def _channels_dropped(op, ctx):
    found = _dropped(ctx)
    lost = [c for c in found[0] if c != "0"] if found else []
    if lost:
        yield "input_format", found[1] + f"({', '.join(lost)}) are dropped"


def _constant_channels_dropped(op, ctx):
    found = _dropped(ctx)
    if found and all(c == "0" for c in found[0]):
        yield "input_format", found[1] + "are constant (matrix rows of zeros) and dropped"


def _ge_defaults(op, ctx):
    defaults = ctx.explanation.defaults
    if defaults and not default_matrix(op):
        yield None, "GE defaults in force: " + "; ".join(defaults), f"{GE} SetDefaultParams"
    elif any(x.startswith("var_reci") for x in defaults):
        yield (None, "GE defaults in force: " + "; ".join(x for x in defaults if x.startswith("var_reci")),
               f"{GE} SetDtcDefaultValue")


def _channel_order(op, ctx):
    colours, g = ctx.colours, op.get
    if len(colours) == 3 and all(c in "RGB" for c in colours) and colours != ["R", "G", "B"]:
        fix = ("(GE's default matrix is in B,G,R row order: write the matrix)" if default_matrix(op) else
               "(swap rows 0 and 2 of the matrix)" if g("csc_switch") else "(toggle rbuv_swap_switch)")
        yield ("matrix_r0c0" if g("csc_switch") else "rbuv_swap_switch",
               f"output channels are {','.join(colours)}; matteconv's models expect R,G,B {fix}")


def _var_reci_truncated(op, ctx):
    for i in range(len(ctx.explanation.ranges)):
        var = float(op.get(f"var_reci_chn_{i}"))
        tr = truncated_reciprocal(var) if op.is_set(f"var_reci_chn_{i}") else None
        if tr:
            std, rel = tr
            yield f"var_reci_chn_{i}", (f"var_reci_chn_{i} {var:g} is a truncated 1/{std:g} (= {1 / std!r}): "
                                        f"{rel * 100:.2g}% off, {abs(255 * (var - 1 / std)):.2g} at 255")


def _model_range(op, ctx):
    want = ((0 - MEAN) / STD, (255 - MEAN) / STD)
    for i, (lo, hi) in enumerate(ctx.explanation.ranges):
        if abs(lo - want[0]) > 1e-3 or abs(hi - want[1]) > 1e-3:
            yield f"mean_chn_{i}", (f"ch{i} maps 0..255 to [{lo:.4g}, {hi:.4g}]; matteconv's models expect "
                                    f"[{want[0]:g}, {want[1]:g}] ((x - {MEAN:g}) / {STD:g}: mean_chn "
                                    f"{math.floor(MEAN)} + min_chn {MEAN - math.floor(MEAN):g}, var_reci {1 / STD!r})")


# --- the table -------------------------------------------------------------------------------------------------
# Order matters within a scope: it is the order of the findings, and the strict loader raises the first error.
# The model rules sit between the block rules so that the `model_size` block rules run after tbe.channels and
# before tbe.output-size when the model is known.

_PARSER = "matteconv.aipp.parse (protobuf's text_format, as ATC's TextFormat::Parse)"


def _proto(rule_id: str, checks: str) -> AippRule:
    return AippRule(rule_id, "error", "parse", checks, PROTO, None, (), enforced_by=_PARSER)


AIPP_RULES: tuple[AippRule, ...] = (
    _proto("proto.syntax", "the file is protobuf text of `aipp_op { ... }` blocks (insert_op.proto)"),
    _proto("proto.unclosed", "every `aipp_op {` is closed with `}`"),
    _proto("proto.nesting", "no aipp_op or multi_shape_op block inside an aipp_op block"),
    _proto("proto.unknown-field", "every field name is in GraphEngine's insert_op.proto"),
    _proto("proto.set-twice", "a non-repeated field is not set again after a non-default value"),
    _proto("proto.enum", "input_format and aipp_mode are values of their insert_op.proto enums"),
    _proto("proto.bool", "switches are true/false/1/0"),
    _proto("proto.utf8", "outside comments the file is UTF-8 (string values) or ASCII (tokens)"),
    _proto("proto.no-aipp-op", "the file has at least one aipp_op block"),
    AippRule("ge.aipp-mode", "error", "block", "aipp_mode is static or dynamic", f"{GE} ValidateParams",
             _aipp_mode, (), stops=True),
    AippRule("ge.repeated", "error", "block", "a repeated field (matrix, biases, var_reci) has one value",
             f"{GE} ValidateParams", _repeated, ("static", "dynamic")),
    AippRule("ge.dynamic-max-src", "error", "block", "dynamic AIPP: max_src_image_size > 0", f"{GE} ValidateParams",
             _dynamic_max_src, DYNAMIC),
    AippRule("ge.input-format", "error", "block", "static AIPP: input_format is set (the only required field)",
             f"{GE} ValidateParams; ATC guide, Configuration File Template", _input_format, stops=True),
    AippRule("ge.range", "error", "block", "crop and resize fields GE passes on are in their range (schema.py)",
             f"{GE} ValidateParams", _ranges("ge")),
    AippRule("tbe.range", "error", "block", "sizes, padding, means, var_reci, matrix and biases are in their range "
             "(schema.py)", TBE, _ranges("tbe")),
    AippRule("tbe.src-size", "error", "block", "src_image_size_w is 0 (= model width) or 2..4096", TBE, _src_size),
    AippRule("ge.input-name", "error", "model", "related_input_name is one of the model's inputs",
             f"{GE} ConvertRelatedInputNameToRank", _input_name, (), stops=True),
    AippRule("ge.input-rank", "error", "model", "related_input_rank is below the model's input count",
             f"{GE} FindDataByIndex", _input_rank, (), stops=True),
    AippRule("tbe.input-4d", "error", "model", "the model input AIPP feeds is 4-D NCHW", TBE, _input_4d, (),
             stops=True),
    AippRule("tbe.format-soc", "error", "model", "Ascend 310/610/710 take YUV420SP_U8, XRGB8888_U8, RGB888_U8, "
             "YUV400_U8 (and the NC1HWC0DI formats) only", TBE, _format_soc),
    AippRule("tbe.channels", "error", "model", "the format feeds at least the model input's channels (a model with "
             "fewer reads the first ones)", TBE, _channels),
    AippRule("tbe.yuv420sp-even", "error", "block", "YUV420SP_U8: the source size (src_image_size, or the model's "
             "where it is 0) is even, with W in [2, 4096]", f"{TBE} ; {AIPP_SIZES}", _yuv420sp_even,
             model_size=True),
    AippRule("tbe.yuv422-even", "error", "block", "YUV422SP_U8, YUYV_U8: src_image_size_w is even", TBE,
             _yuv422_even),
    AippRule("tbe.yuv400", "error", "block", "YUV400_U8: no csc, resize or padding", TBE, _yuv400),
    AippRule("tbe.resize-soc", "error", "block", "resize only on Hi3796CV300", TBE, _resize_soc),
    AippRule("tbe.crop-needs-src", "error", "block", "crop, padding or resize on: src_image_size_w and _h > 0", TBE,
             _crop_needs_src),
    AippRule("tbe.crop-size-zero", "error", "block", "crop size 0 (= model size) is not combined with padding or "
             "resize", TBE, _crop_size_zero),
    AippRule("tbe.crop-inside", "error", "block", "crop: load_start_pos + crop_size <= src_image_size per axis (a "
             "crop size of 0 is the model's)", TBE, _crop_inside, model_size=True),
    AippRule("tbe.yuv420sp-crop-even", "error", "block", "YUV420SP_U8 crop: offset and size even (chroma is shared "
             "by 2x2 pixels)", TBE, _yuv420sp_crop_even),
    AippRule("tbe.yuv422-crop-even", "error", "block", "YUV422SP_U8, YUYV_U8 crop: load_start_pos_w and crop_size_w "
             "even", TBE, _yuv422_crop_even),
    AippRule("tbe.output-size", "error", "model", "crop (or source) size + padding equals the model input's H x W "
             "(no resize on Ascend 310)", TBE, _output_size),
    AippRule("tbe.padding-width", "error", "model", "padding on: model input width <= 1080 on Ascend 310/610/710",
             TBE, _padding_width),
    AippRule("ge.name-over-rank", "note", "file", "related_input_name and related_input_rank both set: GE uses the "
             "name", "ATC guide, Configuration File Template; GE ConvertRelatedInputNameToRank", _name_over_rank, ()),
    AippRule("ge.same-input", "error", "file", "one aipp_op block per model input (E10052)",
             "GE util_insert_aipp_op.cc CheckPositionNotRepeat, E10052", _same_input, ()),
    AippRule("matteconv.dynamic", "warning", "file", "dynamic AIPP: the app sets the parameters at run time "
             "(nothing to explain or emulate)", "", _dynamic, DYNAMIC),
    AippRule("matteconv.multi-shape", "warning", "config", "multi_shape_op blocks (dynamic batch) are not checked",
             "", _multi_shape, ()),
    AippRule("ge.ignored", "warning", "lint", "a field is set but its switch is off or it belongs to the other "
             "mode: GE ignores it", f"{GE} SetDefaultParams", _ge_ignored),
    AippRule("tbe.ignored", "warning", "lint", "per-channel fields beyond the format's channels, or "
             "rbuv_swap_switch on a 1-channel format: the AIPP operator does not use them", TBE, _tbe_ignored),
    AippRule("ge.default-matrix", "warning", "lint", "csc_switch on without the whole matrix: GE fills its default "
             "(B,G,R rows for YUV420SP_U8)", f"{GE} SetCscDefaultValue", _default_matrix),
    AippRule("lint.csc-range", "warning", "lint", "the matrix's range (Y coefficient 298 = video, 256 = full) "
             "agrees with input_bias_0 (16, 0)", "ATC guide, CSC Configuration", _csc_range),
    AippRule("lint.no-csc", "warning", "lint", "a YUV format without csc_switch gives the model Y,U,V", "",
             _no_csc),
    AippRule("lint.channels-dropped", "warning", "lint", "the model has fewer channels than AIPP outputs and the "
             "ones it does not read carry image data", "ATC guide, AIPP: the model reads the first C of the op's "
             "output channels", _channels_dropped),
    AippRule("aipp.channels-dropped", "note", "lint", "the model has fewer channels than AIPP outputs and the ones "
             "it does not read are constant (the guide's *_U8 to GRAY)", "ATC guide, CSC configuration: *_U8 to "
             "GRAY", _constant_channels_dropped),
    AippRule("ge.defaults", "warning", "lint", "GE defaults in force (bias, var_reci, padding_value)",
             f"{GE} SetDefaultParams", _ge_defaults),
    AippRule("lint.channel-order", "warning", "lint", "the output channels are R,G,B, as matteconv's models expect",
             "", _channel_order),
    AippRule("lint.var-reci-truncated", "warning", "lint", "var_reci is not 1/std cut to a few digits (beyond the "
             "fp16 register's own 2^-12)", "", _var_reci_truncated),
    AippRule("lint.model-range", "warning", "lint", "each channel maps 0..255 onto (x - 127.5) / 127.5, "
             "matteconv's preprocessing (preprocess.MEAN, STD)", "", _model_range),
)

RULES_BY_ID: dict[str, AippRule] = {r.id: r for r in AIPP_RULES}


def _check_table() -> None:
    """Import-time checks of the table itself: unique ids, known scopes and severities."""
    assert len(RULES_BY_ID) == len(AIPP_RULES), "duplicate AIPP rule id"
    for r in AIPP_RULES:
        assert r.scope in SCOPES and r.severity in ("error", "warning", "note"), r.id
        assert (r.test is None) == bool(r.enforced_by), r.id
        assert not r.model_size or r.scope == "block", r.id


_check_table()
