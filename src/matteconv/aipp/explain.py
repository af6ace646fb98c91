"""What one static aipp_op does, in plain terms: the frame the app must send, the source and output size, raw
bytes per frame, every CSC output channel and every normalised model channel as an affine map of the source
channels, and the GE defaults in force. No judgement here: the rules that read an explanation (the `lint` scope
of aipp/rules.AIPP_RULES) say what is wrong with it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..findings import Finding
from .parse import AippOp
from .schema import FIELDS, MATRIX_KEYS, YUV_FORMATS


def ignored_fields(op: AippOp) -> set[str]:
    """Fields the file sets that GE does not use: their switch is off, or they belong to the other mode."""
    out = set()
    for name in op.values:
        f = FIELDS[name]
        if f.mode in ("static", "dynamic") and op.mode in ("static", "dynamic") and f.mode != op.mode:
            out.add(name)
        elif f.switch and not op.get(f.switch):
            out.add(name)
    return out


def default_matrix(op: AippOp) -> list[str]:
    """The matrix elements GE fills with its default (csc_switch on, a 3-channel format, elements not written)."""
    if not op.get("csc_switch") or len(source_names(op)) != 3:
        return []
    return [k for k in MATRIX_KEYS if not op.is_set(k)]


def default_matrix_name(op: AippOp) -> str:
    """What GE's default matrix is for this format ([ge] SetCscDefaultValue)."""
    return "BT.601 video-range YUV->RGB with rows in B,G,R order" if op.input_format == "YUV420SP_U8" \
        else "BT.601 RGB->YUV"


RAW_BYTES_PER_PIXEL = {  # bytes per pixel of the raw frame the app sends ([atc] input_format descriptions)
    "YUV420SP_U8": 1.5, "RGB888_U8": 3, "XRGB8888_U8": 4, "ARGB8888_U8": 4, "YUV400_U8": 1, "YUYV_U8": 2,
    "YUV422SP_U8": 2, "AYUV444_U8": 4, "RAW10": 2, "RAW12": 2, "RAW16": 2, "RGB16": 2, "RGB8_IR": 1,
    "RGB16_IR": 2,
}


def source_names(op: AippOp) -> list[str]:
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
        d["findings"] = [f.to_dict() for f in self.findings]
        return d


KNOWN_STDS = (255.0, 127.5, 128.0, 58.395, 57.12, 57.375, 256.0, 64.0)  # [0,1], [-1,1] and ImageNet scalings
FP16_REL = 2.0 ** -12  # half an fp16 ulp, relative: the AIPP register's own rounding of var_reci


def truncated_reciprocal(var: float) -> tuple[float, float] | None:
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


def explain(op: AippOp, model_hw: tuple[int, int] | None = None,
            model_channels: int | None = None) -> tuple[Explanation, list[str]]:
    """Describe one static op: (the explanation, the colour of every channel AIPP outputs).

    `model_hw`: the model input's (H, W) when known (a size of 0 means the model's). `model_channels`: its
    channels when known; a model with fewer channels than the op produces reads the first ones (the ATC guide's
    GRAY configs for 1-channel models), and the explanation keeps only those (the second value keeps them all,
    for the rules about the dropped ones). `findings` is left empty: check.explain_op fills it."""
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
    names = source_names(op)
    colours = list(names)
    if g("csc_switch") and len(names) == 3:
        m = [[int(g(f"matrix_r{r}c{c}")) for c in range(3)] for r in range(3)]
        missing = default_matrix(op)
        yuv_in = fmt in YUV_FORMATS
        if missing:
            ex.defaults.append(f"matrix ({', '.join(missing)}): GE default {default_matrix_name(op)}")
        for key in ("input_bias", "output_bias"):
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
        keep = model_channels
        ex.order, ex.channels, ex.ranges = ex.order[:keep], ex.channels[:keep], ex.ranges[:keep]
    return ex, colours


def unused_by_operator(op: AippOp) -> list[str]:
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
