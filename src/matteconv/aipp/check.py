"""What ATC refuses in an AIPP config (errors, each with its rule and source) and what it accepts but a
deployment engineer must know (warnings, each with its reason), plus a plain explanation of the config: output
size, raw bytes per frame, and every output channel as an affine map of the source channels.

Errors are only what GraphEngine or the AIPP operator refuse ([ge], [tbe] in schema.py) or the protobuf text
parser (parse.py). Everything else ATC accepts is a warning: fields of a switch that is off (GE ignores them),
GE defaults in force, the channel order against what matteconv's models expect (R, G, B), truncated
reciprocals in var_reci, a mean/std that does not map 0..255 onto the model's range, a CSC matrix whose range
(298 = video, 256 = full) disagrees with input_bias_0.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..errors import MatteconvError
from ..preprocess import MEAN, STD
from .parse import AippConfig, AippOp
from .schema import ASCEND310_FORMATS, FIELDS, MATRIX_KEYS, YUV_FORMATS

TBE = "AIPP operator check_aipp_static_config (ascend opp aipp_comm.py)"
GE = "GraphEngine ge_aipp_op.cc"


@dataclass
class Finding:
    """One message about a config: level error (ATC refuses) | warning (accepted, but see reason) | note."""

    level: str
    rule: str
    message: str
    line: int | None = None
    source: str = ""

    def text(self, path: str) -> str:
        where = f"{path}:{self.line}" if self.line else path
        src = f" [{self.source}]" if self.source else ""
        return f"{where}: {self.message}{src}"


def _line(op: AippOp, key: str | None) -> int:
    return op.lines.get(key, op.line) if key else op.line


def _err(out: list, op: AippOp, key: str | None, rule: str, msg: str, source: str) -> None:
    out.append(Finding("error", rule, msg, _line(op, key), source))


def _warn(out: list, op: AippOp, key: str | None, rule: str, msg: str, source: str = "") -> None:
    out.append(Finding("warning", rule, msg, _line(op, key), source))


def _ignored(op: AippOp) -> set[str]:
    """Fields the file sets that GE does not use: their switch is off, or they belong to the other mode."""
    out = set()
    for name in op.values:
        f = FIELDS[name]
        if f.mode in ("static", "dynamic") and op.mode in ("static", "dynamic") and f.mode != op.mode:
            out.add(name)
        elif f.switch and not op.get(f.switch):
            out.add(name)
    return out


def refusals(op: AippOp, soc_version: str = "Ascend310") -> list[Finding]:
    """What GE or the AIPP operator refuse in one block, without the model (see check_model_inputs for that)."""
    out: list[Finding] = []
    g = op.get
    if op.mode not in ("static", "dynamic"):
        _err(out, op, "aipp_mode", "ge.aipp-mode", "aipp_mode must be static or dynamic (it is "
             f"{'not set' if not op.is_set('aipp_mode') else op.mode})", f"{GE} ValidateParams")
        return out
    for name, n in op.counts.items():
        if n > 1 and name != "input_edge_idx":
            _err(out, op, name, "ge.repeated", f"{name} is given {n} values: GE takes one ('can not be configured "
                 "repeatedly')", f"{GE} ValidateParams")
    if op.mode == "dynamic":
        if int(g("max_src_image_size")) <= 0:
            _err(out, op, "max_src_image_size", "ge.dynamic-max-src", "dynamic AIPP needs max_src_image_size > 0",
                 f"{GE} ValidateParams")
        return out
    ignored = _ignored(op)
    fmt = op.input_format
    if fmt == "UNDEFINED":
        _err(out, op, None, "ge.input-format", "static aipp_op has no input_format (the only required field)",
             f"{GE} ValidateParams; ATC guide, Configuration File Template")
        return out
    for name, value in op.values.items():  # single-field ranges of the fields GE passes on
        f = FIELDS[name]
        if name in ignored or f.lo is None or isinstance(value, (bool, str)):
            continue
        if value < f.lo or (f.hi is not None and value > f.hi):
            hi = "" if f.hi is None else f"{f.hi:g}"
            _err(out, op, name, f"{f.source}.range", f"{name} {value:g} is outside the range [{f.lo:g}, {hi}] "
                 "the tools accept", TBE if f.source == "tbe" else f"{GE} ValidateParams")
    sw, sh = int(g("src_image_size_w")), int(g("src_image_size_h"))
    if sw == 1:
        _err(out, op, "src_image_size_w", "tbe.src-size", "src_image_size_w must be 0 (= model width) or 2..4096",
             TBE)
    if fmt == "YUV420SP_U8" and (sw % 2 or sh % 2):
        _err(out, op, "src_image_size_w" if sw % 2 else "src_image_size_h", "tbe.yuv420sp-even",
             f"src_image_size {sw}x{sh} (WxH) must be even for YUV420SP_U8", TBE)
    if fmt in ("YUV422SP_U8", "YUYV_U8") and sw % 2:
        _err(out, op, "src_image_size_w", "tbe.yuv422-even", f"src_image_size_w {sw} must be even for {fmt}", TBE)
    if fmt == "YUV400_U8" and (g("csc_switch") or g("resize") or g("padding")):
        key = next(k for k in ("csc_switch", "resize", "padding") if g(k))
        _err(out, op, key, "tbe.yuv400", f"YUV400_U8 cannot use {key} (the AIPP operator refuses csc, resize and "
             "padding for it); YUV400 feeds 1-channel models only", TBE)
    if g("resize") and not soc_version.lower().startswith("hi3796cv300"):
        _err(out, op, "resize", "tbe.resize-soc", f"AIPP resize is only available on Hi3796CV300, not on "
             f"{soc_version}", TBE)
    if (g("crop") or g("padding") or g("resize")) and not (sw > 0 and sh > 0):
        key = "crop" if g("crop") else "padding" if g("padding") else "resize"
        _err(out, op, key, "tbe.crop-needs-src", f"{key} is on, so src_image_size_w and src_image_size_h must be "
             f"> 0 (they are {sw}x{sh})", TBE)
    if g("crop"):
        x, y = int(g("load_start_pos_w")), int(g("load_start_pos_h"))
        cw, ch = int(g("crop_size_w")), int(g("crop_size_h"))
        if (cw == 0 or ch == 0) and (g("padding") or g("resize")):
            _err(out, op, "crop_size_w" if cw == 0 else "crop_size_h", "tbe.crop-size-zero",
                 "crop size 0 (= model size) cannot be combined with padding or resize", TBE)
        if sw and cw and x + cw > sw:
            _err(out, op, "crop_size_w", "tbe.crop-inside", f"crop load_start_pos_w {x} + crop_size_w {cw} exceeds "
                 f"src_image_size_w {sw}", TBE)
        if sh and ch and y + ch > sh:
            _err(out, op, "crop_size_h", "tbe.crop-inside", f"crop load_start_pos_h {y} + crop_size_h {ch} exceeds "
                 f"src_image_size_h {sh}", TBE)
        if fmt == "YUV420SP_U8" and (x % 2 or y % 2 or cw % 2 or ch % 2):
            key = next(k for k, v in (("load_start_pos_w", x), ("load_start_pos_h", y), ("crop_size_w", cw),
                                      ("crop_size_h", ch)) if v % 2)
            _err(out, op, key, "tbe.yuv420sp-crop-even", f"crop offset {x},{y} and size {cw}x{ch} must be even for "
                 "YUV420SP_U8 (chroma is shared by 2x2 pixels)", TBE)
        if fmt in ("YUV422SP_U8", "YUYV_U8") and (x % 2 or cw % 2):
            _err(out, op, "load_start_pos_w", "tbe.yuv422-crop-even", f"load_start_pos_w {x} and crop_size_w {cw} "
                 f"must be even for {fmt}", TBE)
    return out


def validate_op(op: AippOp, path: str = "<text>", soc_version: str = "Ascend310") -> None:
    """Raise the first refusal of one block as MatteconvError("file:line: ... [source]")."""
    errs = refusals(op, soc_version)
    if errs:
        raise MatteconvError(errs[0].text(path))


def validate_config(cfg: AippConfig, soc_version: str = "Ascend310") -> None:
    """Raise the first refusal in the file (blocks, then two blocks on one input: GE E10052)."""
    seen: dict[int, int] = {}
    for op in cfg.ops:
        validate_op(op, cfg.path, soc_version)
        if op.input_name is not None:
            continue  # which input it feeds is known only with the model (model_findings)
        if op.rank in seen:
            raise MatteconvError(f"{op.where(cfg.path, 'related_input_rank')}: two aipp_op blocks for model input "
                                 f"{op.rank} (the other at line {seen[op.rank]}) [GE util_insert_aipp_op.cc "
                                 "CheckPositionNotRepeat, E10052]")
        seen[op.rank] = op.line


def check_model_inputs(cfg: AippConfig, inputs: list[tuple[str, tuple[int, ...]]], soc_version: str = "") -> None:
    """AIPP config vs the model's inputs (name, NCHW shape): rank exists, channels, output H x W ([tbe])."""
    for f in model_findings(cfg, inputs, soc_version):
        if f.level == "error":
            raise MatteconvError(f.text(cfg.path))


def model_findings(cfg: AippConfig, inputs: list[tuple[str, tuple[int, ...]]], soc_version: str = "") -> list[Finding]:
    out: list[Finding] = []
    names = [n for n, _ in inputs]
    for op in cfg.ops:
        rank = op.resolved_rank(names)
        if rank is None:
            _err(out, op, "related_input_name", "ge.input-name", f"related_input_name {op.input_name!r} is not a "
                 f"model input ({', '.join(names) or 'none'})", f"{GE} ConvertRelatedInputNameToRank")
            continue
        if rank >= len(inputs):
            _err(out, op, "related_input_rank", "ge.input-rank", f"related_input_rank {rank} but the model has "
                 f"{len(inputs)} input(s) ({', '.join(names) or 'none'})", f"{GE} FindDataByIndex")
            continue
        name, shape = inputs[rank]
        if len(shape) != 4:
            _err(out, op, "related_input_rank", "tbe.input-4d", f"model input {name!r} has shape {list(shape)}, "
                 "AIPP needs a 4-D NCHW input", TBE)
            continue
        _, c, h, w = (int(d) for d in shape)
        if op.mode == "dynamic":
            continue
        fmt = op.input_format
        if soc_version.lower().startswith(("ascend310", "ascend610", "ascend710")) and fmt not in ASCEND310_FORMATS:
            _err(out, op, "input_format", "tbe.format-soc", f"{soc_version} AIPP does not take {fmt} "
                 f"(only {', '.join(ASCEND310_FORMATS)})", TBE)
        want_c = op.channels
        if c > want_c:  # fewer: the model reads the first c of AIPP's channels (explain_op reports the rest)
            _err(out, op, "input_format", "tbe.channels", f"{fmt} feeds {want_c} channel(s) but model input "
                 f"{name!r} has {c} (shape {list(shape)})", TBE)
        if h > 0 and w > 0:
            sh, sw = op.src_hw((h, w))
            if fmt == "YUV420SP_U8" and (sh % 2 or sw % 2 or not 2 <= sw <= 4096):  # rule aipp.yuv420sp-size
                _err(out, op, "src_image_size_w", "tbe.yuv420sp-even", f"YUV420SP_U8 source {sw}x{sh} (WxH; a size "
                     f"of 0 means model input {name!r}'s) must be even, with W in [2, 4096]", TBE)
            if op.get("crop") and op.get("crop_size_w") == 0 and op.get("load_start_pos_w") + w > sw:
                _err(out, op, "load_start_pos_w", "tbe.crop-inside", f"crop load_start_pos_w + model width {w} "
                     f"exceeds src_image_size_w {sw}", TBE)
            out_hw = op.output_hw((h, w))
            if out_hw != (h, w):
                crop, pad = op.get("crop"), op.get("padding")
                key = "crop_size_w" if crop else "src_image_size_w"
                what = ("crop size + padding" if crop and pad else "crop size" if crop else
                        "src_image_size + padding" if pad else "src_image_size")
                _err(out, op, key, "tbe.output-size", f"AIPP {what} {out_hw[1]}x{out_hw[0]} (WxH) does not match "
                     f"model input {name!r} {w}x{h}: AIPP cannot resize on Ascend 310", TBE)
            if op.get("padding") and w > 1080 and (not soc_version or soc_version.lower().startswith(
                    ("ascend310", "ascend610", "ascend710"))):
                _err(out, op, "padding", "tbe.padding-width", f"with padding the AIPP output width {w} must be <= "
                     "1080 on Ascend 310/610/710", TBE)
    return out


# --- explanation and lints ------------------------------------------------------------------------------------

RAW_BYTES_PER_PIXEL = {  # bytes per pixel of the raw frame the app sends ([atc] input_format descriptions)
    "YUV420SP_U8": 1.5, "RGB888_U8": 3, "XRGB8888_U8": 4, "ARGB8888_U8": 4, "YUV400_U8": 1, "YUYV_U8": 2,
    "YUV422SP_U8": 2, "AYUV444_U8": 4, "RAW10": 2, "RAW12": 2, "RAW16": 2, "RGB16": 2, "RGB8_IR": 1,
    "RGB16_IR": 2,
}


def _source_names(op: AippOp) -> list[str]:
    """What AIPP sees after the swap, channel by channel, named in the frame's own terms."""
    fmt = op.input_format
    if fmt in ("YUV420SP_U8", "YUV422SP_U8", "YUYV_U8", "AYUV444_U8"):
        return ["Y", "U", "V"]  # swap turns NV21's V,U into U,V
    if fmt == "YUV400_U8":
        return ["Y"]
    if fmt in ("RGB888_U8", "XRGB8888_U8", "ARGB8888_U8"):
        return ["R", "G", "B"]  # the app sends R,G,B bytes, or B,G,R (cv2) when rbuv_swap_switch is on
    return [f"in{i}" for i in range(op.channels)]


def _row_colour(row: tuple[int, int, int]) -> str | None:
    """Which BT.601 YUV->RGB row this is (R: V only, G: U and V negative, B: U only, Y: Y only, as in the ATC
    guide's "YUV420SP_U8 to GRAY"), by the sign pattern; "0" for a row of zeros (a constant channel)."""
    y, u, v = row
    if not any(row):
        return "0"
    if y > 0 and u == 0 and v == 0:
        return "Y"
    if y <= 0:
        return None
    if abs(u) * 8 < y and v > 0:
        return "R"
    if u < 0 and v < 0:
        return "G"
    if u > 0 and abs(v) * 8 < y:
        return "B"
    return None


def _four_byte_frame(x: str, rbuv_swap: bool, ax_swap: bool) -> str:
    """The bytes per pixel an XRGB8888_U8 / ARGB8888_U8 op must be sent for R,G,B in channels 0..2: ax_swap_switch
    takes the 4th channel from the front of the pixel, rbuv_swap_switch swaps R and B ([atc] template, table of
    XRGB / XBGR / RGBX / BGRX: ax_swap on for the first two, rbuv_swap on for the second and fourth)."""
    colours = "B,G,R" if rbuv_swap else "R,G,B"
    pixel = f"{x},{colours}" if ax_swap else f"{colours},{x}"
    return f"{pixel} bytes per pixel" + (" for R,G,B at the model" if rbuv_swap else "")


def _rgb_row_colour(row: tuple[int, int, int]) -> str | None:
    """An RGB->YUV/GRAY row: "Y" when every weight is positive (the ATC guide's "RGB888_U8 to GRAY" 76, 150, 30
    and BT.601's Y row 66, 129, 25), "0" for a row of zeros; None otherwise (a chroma row)."""
    if not any(row):
        return "0"
    return "Y" if all(c > 0 for c in row) else None


def _fmt(v: float) -> str:
    return f"{v:.6g}"


@dataclass
class Explanation:
    """What one static aipp_op does, for people and for --json."""

    rank: int  # the model input it feeds (related_input_name resolved when the model's inputs are known)
    input_format: str
    frame: str  # what the app must send
    src_hw: tuple[int, int] | None
    output_hw: tuple[int, int] | None
    raw_bytes: int | None
    csc: list[str] = field(default_factory=list)  # one line per CSC output channel
    channels: list[str] = field(default_factory=list)  # "ch0 = (B - 104) x 1.0"
    order: list[str] = field(default_factory=list)  # colour of each output channel ("R", "Y", "?")
    ranges: list[tuple[float, float]] = field(default_factory=list)  # what 0..255 maps to per channel
    defaults: list[str] = field(default_factory=list)  # GE defaults in force
    findings: list[Finding] = field(default_factory=list)
    index: int = 0  # which aipp_op block of the file (0-based)
    input_name: str | None = None  # related_input_name, when the op names its input

    def as_dict(self) -> dict:
        d = asdict(self)
        d["findings"] = [asdict(f) for f in self.findings]
        return d


KNOWN_STDS = (255.0, 127.5, 128.0, 58.395, 57.12, 57.375, 256.0, 64.0)  # [0,1], [-1,1] and ImageNet scalings
FP16_REL = 2.0 ** -12  # half an fp16 ulp, relative: the AIPP register's own rounding of var_reci


def _truncated_reciprocal(var: float) -> tuple[float, float] | None:
    """(intended std, relative error) when var_reci is 1/std rounded to the few digits the file wrote and the
    error exceeds what the fp16 register itself loses (2^-12). Known scalings are preferred over other halves."""
    if not (var > 0 and math.isfinite(var)):
        return None
    digits = len(repr(var).split("e")[0].replace("-", "").replace(".", "").lstrip("0"))
    for s in KNOWN_STDS + tuple(k / 2 for k in range(2, 1025)):
        exact = 1.0 / s
        rel = abs(var * s - 1.0)
        if rel <= FP16_REL:
            return None  # exact, or closer than the register can hold
        scale = 10 ** (digits - math.floor(math.log10(exact)) - 1)
        if float(f"{exact:.{digits}g}") == var or math.floor(exact * scale) / scale == var:  # rounded or cut
            return s, rel
    return None


def explain_op(op: AippOp, model_hw: tuple[int, int] | None = None, ignored_ok: bool = False,
               model_channels: int | None = None) -> Explanation:
    """Describe one static op and lint it against matteconv's preprocessing ((RGB - 127.5) / 127.5, R,G,B).
    `model_channels`: the channels of the model input it feeds, when known; a model with fewer channels than the
    op produces reads the first ones (the ATC guide's GRAY configs for 1-channel models), and the explanation
    lists only those."""
    g = op.get
    fmt = op.input_format
    swap = bool(g("rbuv_swap_switch"))
    src = op.src_hw(model_hw)
    out_hw = op.output_hw(model_hw)
    bpp = RAW_BYTES_PER_PIXEL.get(fmt)
    raw_bytes = int(src[0] * src[1] * bpp) if (src and bpp) else None
    frame = {
        "YUV420SP_U8": "NV21 (Y plane, then V,U interleaved)" if swap else "NV12 (Y plane, then U,V interleaved)",
        "RGB888_U8": "B,G,R bytes per pixel (e.g. cv2.imread) for R,G,B at the model" if swap else
                     "R,G,B bytes per pixel",
        "YUV400_U8": "Y plane (grey)",
        "XRGB8888_U8": _four_byte_frame("X", swap, bool(g("ax_swap_switch"))),
        "ARGB8888_U8": _four_byte_frame("A", swap, bool(g("ax_swap_switch"))),
    }.get(fmt, fmt)
    ex = Explanation(op.rank, fmt, frame, src, out_hw, raw_bytes)
    names = _source_names(op)
    colours = list(names)
    f = ex.findings
    for name in sorted(_ignored(op)):
        fld = FIELDS[name]
        why = f"{fld.switch} is off" if fld.switch else f"it is a {fld.mode}-AIPP field and this op is {op.mode}"
        _warn(f, op, name, "ge.ignored", f"{name} is set but {why}: GE ignores it", f"{GE} SetDefaultParams")
    unused = _unused_by_operator(op)
    if unused:
        _warn(f, op, unused[0], "tbe.ignored", f"{', '.join(unused)} set, but {fmt} has {op.channels} channel(s)"
              + (" and no U/V to swap" if "rbuv_swap_switch" in unused else "") + ": the AIPP operator does not "
              "use them", TBE)
    if g("csc_switch") and len(names) == 3:
        m = [[int(g(f"matrix_r{r}c{c}")) for c in range(3)] for r in range(3)]
        missing = [k for k in MATRIX_KEYS if not op.is_set(k)]
        yuv_in = fmt in YUV_FORMATS
        if missing:
            what = ("BT.601 video-range YUV->RGB with rows in B,G,R order" if fmt == "YUV420SP_U8"
                    else "BT.601 RGB->YUV")
            ex.defaults.append(f"matrix ({', '.join(missing)}): GE default {what}")
            _warn(f, op, "csc_switch", "ge.default-matrix", f"csc_switch is on without {len(missing)} matrix "
                  f"element(s): GE fills its default, {what}", f"{GE} SetCscDefaultValue")
        for key, default in (("input_bias", 16), ("output_bias", 16)):
            miss = [f"{key}_{i}" for i in range(3) if not op.is_set(f"{key}_{i}")]
            if miss and ((key == "input_bias") == yuv_in):
                ex.defaults.append(f"{', '.join(miss)}: GE default 16,128,128")
        ib = [int(g(f"input_bias_{i}")) for i in range(3)]
        ob = [int(g(f"output_bias_{i}")) for i in range(3)]
        colours = []
        for r in range(3):
            terms = " + ".join(f"{m[r][c]}*({names[c]}-{ib[c]})" if yuv_in else f"{m[r][c]}*{names[c]}"
                               for c in range(3))
            bias = "" if yuv_in else f" + {ob[r]}"
            colour = _row_colour(tuple(m[r])) if yuv_in else _rgb_row_colour(tuple(m[r]))
            colours.append(colour or f"csc{r}")
            ex.csc.append(f"csc{r} = clamp((({terms}) >> 8){bias}, 0, 255)" + (f"  [{colour}]" if colour else ""))
        if yuv_in and fmt != "YUV400_U8":
            y_coef = {m[r][0] for r in range(3)}
            if y_coef <= {298} and ib[0] != 16:
                _warn(f, op, "input_bias_0", "lint.csc-range", f"matrix is video range (Y coefficient 298 = "
                      f"255/219 x 256) but input_bias_0 is {ib[0]}, not 16: blacks and whites shift by "
                      f"{abs(298 * (16 - ib[0])) >> 8} levels", "ATC guide, CSC Configuration")
            if y_coef <= {256} and ib[0] != 0:
                _warn(f, op, "input_bias_0", "lint.csc-range", f"matrix is full range (Y coefficient 256) but "
                      f"input_bias_0 is {ib[0]} (the video-range bias): every channel drops by {ib[0]} levels and "
                      "blacks clip", "ATC guide, CSC Configuration")
    elif fmt in YUV_FORMATS and fmt != "YUV400_U8":
        _warn(f, op, "csc_switch", "lint.no-csc", f"{fmt} without csc_switch: the model gets Y,U,V, not R,G,B")
    ex.order = colours
    for i, s in enumerate(colours):
        mean, mn, var = int(g(f"mean_chn_{i}")), float(g(f"min_chn_{i}")), float(g(f"var_reci_chn_{i}"))
        sub = mean + mn
        ex.channels.append(f"ch{i} = ({s} - {_fmt(sub)}) x {_fmt(var)}")
        ex.ranges.append(((0 - sub) * var, (255 - sub) * var))
        if not op.is_set(f"var_reci_chn_{i}"):
            ex.defaults.append(f"var_reci_chn_{i}: GE default 1.0")
    if g("padding"):
        pv = float(g("padding_value"))
        ex.defaults += [] if op.is_set("padding_value") else ["padding_value: 0"]
        t, b, left, r = op.padding_hw()
        ex.csc.append(f"padding: top {t}, bottom {b}, left {left}, right {r} filled with {_fmt(pv)} "
                      "(after normalisation)")
    if model_channels is not None and 0 < model_channels < len(ex.channels):
        _dropped_channels(ex, op, model_channels)
    if ex.defaults and not any(x.rule == "ge.default-matrix" for x in f):
        _warn(f, op, None, "ge.defaults", "GE defaults in force: " + "; ".join(ex.defaults), f"{GE} SetDefaultParams")
    elif any(x.startswith("var_reci") for x in ex.defaults):
        _warn(f, op, None, "ge.defaults", "GE defaults in force: " + "; ".join(x for x in ex.defaults
                                                                                 if x.startswith("var_reci")),
              f"{GE} SetDtcDefaultValue")
    # lints against matteconv's models: R,G,B in (x - MEAN) / STD
    if len(colours) == 3 and all(c in "RGB" for c in colours) and colours != ["R", "G", "B"]:
        _warn(f, op, "matrix_r0c0" if g("csc_switch") else "rbuv_swap_switch", "lint.channel-order",
              f"output channels are {','.join(colours)}; matteconv's models expect R,G,B "
              + ("(GE's default matrix is in B,G,R row order: write the matrix)" if any(
                  x.rule == "ge.default-matrix" for x in f) else "(swap rows 0 and 2 of the matrix)"
                 if g("csc_switch") else "(toggle rbuv_swap_switch)"))
    want = ((0 - MEAN) / STD, (255 - MEAN) / STD)
    for i, (lo, hi) in enumerate(ex.ranges):
        var = float(g(f"var_reci_chn_{i}"))
        tr = _truncated_reciprocal(var) if op.is_set(f"var_reci_chn_{i}") else None
        if tr:
            std, rel = tr
            _warn(f, op, f"var_reci_chn_{i}", "lint.var-reci-truncated", f"var_reci_chn_{i} {var:g} is a truncated "
                  f"1/{std:g} (= {1 / std!r}): {rel * 100:.2g}% off, {abs(255 * (var - 1 / std)):.2g} at 255")
        if abs(lo - want[0]) > 1e-3 or abs(hi - want[1]) > 1e-3:
            _warn(f, op, f"mean_chn_{i}", "lint.model-range", f"ch{i} maps 0..255 to [{lo:.4g}, {hi:.4g}]; "
                  f"matteconv's models expect [{want[0]:g}, {want[1]:g}] ((x - {MEAN:g}) / {STD:g}: mean_chn "
                  f"{math.floor(MEAN)} + min_chn {MEAN - math.floor(MEAN):g}, var_reci {1 / STD!r})")
    return ex


def _unused_by_operator(op: AippOp) -> list[str]:
    """Fields the file sets to a non-neutral value that the AIPP operator has no channel for: per-channel
    normalisation beyond the format's channels, and rbuv_swap_switch on a one-channel format ([tbe]
    aipp_comm.py sets the swap bit only for formats other than YUV400_U8 and RAW; emulate.py does the same)."""
    n = op.channels
    out = []
    if n == 1 and op.get("rbuv_swap_switch"):
        out.append("rbuv_swap_switch")
    for i in range(n, 4):
        for key, neutral in ((f"mean_chn_{i}", 0), (f"min_chn_{i}", 0), (f"var_reci_chn_{i}", 1.0)):
            if op.is_set(key) and float(op.get(key)) != neutral:
                out.append(key)
    return sorted(out, key=lambda k: op.lines.get(k, 0))


def _dropped_channels(ex: Explanation, op: AippOp, keep: int) -> None:
    """Cut the explanation to the model's first `keep` channels and say what the rest carried: a note when they
    are constant (CSC rows of zeros: the ATC guide's GRAY setups), else a warning (image data the model never
    sees)."""
    dropped = ex.order[keep:]
    lost = [c for c in dropped if c != "0"]
    ex.order, ex.channels, ex.ranges = ex.order[:keep], ex.channels[:keep], ex.ranges[:keep]
    names = ", ".join(f"ch{i}" for i in range(keep, keep + len(dropped)))
    reads = "ch0" if keep == 1 else f"ch0..ch{keep - 1}"
    what = f"the model input has {keep} channel(s): it reads {reads} of AIPP's output; {names} "
    if lost:
        _warn(ex.findings, op, "input_format", "lint.channels-dropped", what + f"({', '.join(lost)}) are dropped",
              "ATC guide, AIPP: the model reads the first C of the op's output channels")
    else:
        ex.findings.append(Finding("note", "aipp.channels-dropped", what + "are constant (matrix rows of zeros) "
                                   "and dropped", op.lines.get("input_format", op.line),
                                   "ATC guide, CSC configuration: *_U8 to GRAY"))


def check_config(cfg: AippConfig, inputs: list[tuple[str, tuple[int, ...]]] | None = None,
                 soc_version: str = "Ascend310") -> tuple[list[Explanation], list[Finding]]:
    """Everything `matteconv aipp check` reports: per-op explanations and all findings (errors first).
    Raises nothing for a parsed config; refusals are findings with level 'error'."""
    findings: list[Finding] = []
    explanations: list[Explanation] = []
    names = [n for n, _ in inputs] if inputs is not None else None
    seen: dict[int, int] = {}
    for index, op in enumerate(cfg.ops):
        errs = refusals(op, soc_version)
        findings += errs
        rank = op.resolved_rank(names)
        if op.input_name is not None and op.is_set("related_input_rank"):
            findings.append(Finding("note", "ge.name-over-rank", f"related_input_name {op.input_name!r} and "
                                    f"related_input_rank {op.rank} are both set: GE uses the name",
                                    op.lines.get("related_input_name"), "ATC guide, Configuration File Template; "
                                    "GE ConvertRelatedInputNameToRank"))
        if rank is not None and rank in seen:
            _err(findings, op, "related_input_name" if op.input_name else "related_input_rank", "ge.same-input",
                 f"two aipp_op blocks for model input {rank} (the other at line {seen[rank]})",
                 "GE util_insert_aipp_op.cc E10052")
        if rank is not None and (op.input_name is None or names is not None):
            seen[rank] = op.line
        if op.mode != "static" or errs:
            if op.mode == "dynamic":
                _warn(findings, op, "aipp_mode", "matteconv.dynamic", "dynamic AIPP: the app sets the parameters "
                      "at run time; nothing to explain or emulate here")
            continue
        hw, channels = None, None
        if inputs and rank is not None and rank < len(inputs) and len(inputs[rank][1]) == 4:
            c, h, w = (int(d) for d in inputs[rank][1][1:])
            hw = (h, w) if h > 0 and w > 0 else None
            channels = c if c > 0 else None
        ex = explain_op(op, hw, model_channels=channels)
        ex.rank, ex.index, ex.input_name = (op.rank if rank is None else rank), index, op.input_name
        explanations.append(ex)
        findings += ex.findings
    if cfg.multi_shape_ops:
        findings.append(Finding("warning", "matteconv.multi-shape", f"{cfg.multi_shape_ops} multi_shape_op "
                                "block(s) (dynamic batch) are not checked here", None))
    if inputs is not None:
        findings += model_findings(cfg, inputs, soc_version)
    findings.sort(key=lambda x: (x.level != "error", x.line or 0))
    return explanations, findings
