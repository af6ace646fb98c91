"""Write an AIPP config that makes the chip compute matteconv's preprocessing ((RGB - 127.5) / 127.5 in R,G,B
order) from a camera frame; the checked-in presets in <repo>/aipp/ come from here.

The rendered file writes every field it relies on (never a GE default: GE's default YUV->RGB matrix is in
B,G,R row order, schema.py) and must read back through parse.py and pass check.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import __version__
from ..errors import MatteconvError
from ..preprocess import MEAN, STD
from .check import validate_config, validate_op
from .parse import AippOp, parse_config
from .schema import CSC_INPUT_BIAS, CSC_YUV2RGB, MATRIX_KEYS

CLI_FORMATS = {  # CLI name -> (AIPP input_format, rbuv_swap_switch, csc)
    "nv12": ("YUV420SP_U8", False, True),
    "nv21": ("YUV420SP_U8", True, True),
    "rgb888": ("RGB888_U8", False, False),
    "bgr888": ("RGB888_U8", True, False),
    "yuv400": ("YUV400_U8", False, False),
}


@dataclass(frozen=True)
class AippSpec:
    """What `matteconv aipp` renders: a static AIPP that reproduces (RGB - mean) / std in R, G, B order."""

    input_format: str = "nv21"  # nv21 | nv12 | rgb888 | bgr888 | yuv400
    size: tuple[int, int] = (384, 384)  # model input H, W
    src_size: tuple[int, int] | None = None  # camera frame H, W (None = model size)
    crop: tuple[int, int, int, int] | None = None  # x, y, w, h inside the source
    color_range: str = "video"  # video (BT.601 16..235) | full (JPEG 0..255)
    mean: float = MEAN
    std: float = STD
    related_input_rank: int = 0


def _fmt_float(v: float) -> str:
    return repr(float(v))


def spec_to_op(spec: AippSpec) -> AippOp:
    """The fields (in file order) that make AIPP compute our preprocessing; refuses what it cannot do exactly."""
    if spec.input_format not in CLI_FORMATS:
        raise MatteconvError(f"input format {spec.input_format!r} is not one of {', '.join(CLI_FORMATS)}")
    if spec.input_format == "yuv400":
        raise MatteconvError("yuv400 cannot feed MODNet's 3-channel RGB input: the AIPP operator refuses csc_switch "
                             "with YUV400_U8 and then only feeds 1-channel models (use nv21/nv12)")
    if spec.color_range not in CSC_YUV2RGB:
        raise MatteconvError(f"color range {spec.color_range!r} is not video or full")
    h, w = spec.size
    sh, sw = spec.src_size or spec.size
    if not (2 <= sw <= 4096 and 1 <= sh <= 4096):
        raise MatteconvError(f"source size {sw}x{sh} (WxH) is outside AIPP's 2..4096 x 1..4096")
    if not (math.isfinite(spec.std) and spec.std > 0 and math.isfinite(spec.mean)):
        raise MatteconvError(f"std {spec.std} must be a positive number and mean {spec.mean} finite")
    mean_int = math.floor(spec.mean)
    mean_frac = spec.mean - mean_int
    if not 0 <= mean_int <= 255:
        raise MatteconvError(f"mean {spec.mean} is outside 0..255 (AIPP mean_chn + min_chn)")
    var = 1.0 / spec.std
    if abs(var) > 65504:
        raise MatteconvError(f"std {spec.std} gives var_reci {var} beyond fp16 range")
    fmt, swap, csc = CLI_FORMATS[spec.input_format]
    v: dict[str, object] = {"aipp_mode": "static", "related_input_rank": spec.related_input_rank,
                            "input_format": fmt, "src_image_size_w": sw, "src_image_size_h": sh}
    if spec.crop is not None:
        x, y, cw, ch = spec.crop
        if (cw, ch) != (w, h):
            raise MatteconvError(f"crop {cw}x{ch} (WxH) must equal the model size {w}x{h}: AIPP cannot resize "
                                 "on Ascend 310")
        v.update(crop=True, load_start_pos_w=x, load_start_pos_h=y, crop_size_w=cw, crop_size_h=ch)
    else:
        if (sh, sw) != (h, w):
            raise MatteconvError(f"source {sw}x{sh} differs from the model size {w}x{h}: give --crop X,Y,{w},{h} "
                                 "(AIPP cannot resize on Ascend 310)")
        v["crop"] = False
    v["rbuv_swap_switch"] = swap
    v["csc_switch"] = csc
    if csc:
        m = CSC_YUV2RGB[spec.color_range]
        for r in range(3):
            for c in range(3):
                v[f"matrix_r{r}c{c}"] = m[r][c]
        for i in range(3):
            v[f"output_bias_{i}"] = 0
        for i, b in enumerate(CSC_INPUT_BIAS[spec.color_range]):
            v[f"input_bias_{i}"] = b
    for i in range(3):
        v[f"mean_chn_{i}"] = mean_int
    for i in range(3):
        v[f"min_chn_{i}"] = mean_frac
    for i in range(3):
        v[f"var_reci_chn_{i}"] = var
    op = AippOp(values=v)
    validate_op(op, "the AIPP config these options describe")  # a refusal names the rule, not a file
    return op


def render_config(spec: AippSpec) -> str:
    """AippSpec -> the text of a static AIPP config with comments saying what each block does."""
    op = spec_to_op(spec)
    v = op.values
    fmt, swap, csc = CLI_FORMATS[spec.input_format]
    h, w = spec.size
    sh, sw = spec.src_size or spec.size

    def line(k: str) -> str:
        val = v[k]
        if isinstance(val, bool):
            s = "true" if val else "false"
        elif isinstance(val, float):
            s = _fmt_float(val)
        else:
            s = str(val)
        return f"    {k} : {s}"

    src_desc = {"nv21": "NV21 (Y plane, then interleaved V,U at half resolution)",
                "nv12": "NV12 (Y plane, then interleaved U,V at half resolution)",
                "rgb888": "RGB888 (HxWx3, R,G,B bytes)", "bgr888": "BGR888 (HxWx3, B,G,R bytes)"}[spec.input_format]
    out = [
        f"# AIPP config written by matteconv {__version__} (matteconv aipp). Static AIPP for ATC/OMG --insert_op_conf.",
        f"# Device input: {src_desc}, {sw}x{sh} (WxH), fed as NHWC uint8.",
        f"# Model input: 1x3x{h}x{w} float, (RGB - {spec.mean:g}) / {spec.std:g} in R,G,B order, as matteconv.preprocess.",
        "# The chip applies: channel swap -> crop -> colour-space conversion -> normalisation (CANN ATC guide).",
        "aipp_op {",
        "    # which model input this block feeds, and what arrives there",
        line("aipp_mode"), line("related_input_rank"), line("input_format"),
        line("src_image_size_w"), line("src_image_size_h"),
        "",
    ]
    if v["crop"]:
        out += [f"    # crop a {w}x{h} window at x={v['load_start_pos_w']}, y={v['load_start_pos_h']} "
                "(must equal the model size: no resize on Ascend 310)",
                line("crop"), line("load_start_pos_w"), line("load_start_pos_h"), line("crop_size_w"),
                line("crop_size_h"), ""]
    else:
        out += ["    # no crop: the source is already the model size", line("crop"), ""]
    if fmt == "YUV420SP_U8":
        out.append("    # NV21 stores V before U: swap them so the chip sees Y,U,V" if swap else
                   "    # NV12 stores U before V: no swap")
    else:
        out.append("    # B,G,R bytes: swap R and B so the model sees R,G,B" if swap else
                   "    # R,G,B bytes: no swap")
    out += [line("rbuv_swap_switch"), ""]
    if csc:
        rng = "video range (Y 16..235)" if spec.color_range == "video" else "full range (JPEG, Y 0..255)"
        out += [f"    # YUV -> RGB, BT.601 {rng}: out = clamp((M x [Y-ib0, U-ib1, V-ib2]) >> 8, 0, 255).",
                "    # Rows are R, G, B (written out: GraphEngine's default matrix is in B, G, R order).",
                line("csc_switch")]
        out += [line(k) for k in MATRIX_KEYS]
        out += [line(f"output_bias_{i}") for i in range(3)]
        out += [line(f"input_bias_{i}") for i in range(3)]
    else:
        out += ["    # already RGB: no colour-space conversion", line("csc_switch")]
    out += ["",
            f"    # normalise: out = (in - mean_chn - min_chn) * var_reci_chn = (in - {spec.mean:g}) / {spec.std:g};",
            "    # mean_chn is an integer, so the fractional part of the mean goes in min_chn",
            ]
    out += [line(f"mean_chn_{i}") for i in range(3)]
    out += [line(f"min_chn_{i}") for i in range(3)]
    out += [line(f"var_reci_chn_{i}") for i in range(3)]
    out += ["}", ""]
    text = "\n".join(out)
    validate_config(parse_config(text, "<rendered>"))  # what we write must read back, and be accepted
    return text


def write_config(spec: AippSpec, target: str | Path) -> str:
    """Render and write atomically; returns the text."""
    from ..fileio import atomic_path

    text = render_config(spec)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """'X,Y,W,H' -> ints."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise MatteconvError(f"crop {text!r} is not X,Y,W,H (four integers)") from None
    if min(x, y) < 0 or min(w, h) <= 0:
        raise MatteconvError(f"crop {text!r}: offsets must be >= 0 and sizes > 0")
    return x, y, w, h


def parse_wxh(text: str) -> tuple[int, int]:
    """'WxH' -> (H, W)."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise MatteconvError(f"size {text!r} is not WxH") from None
    if w <= 0 or h <= 0:
        raise MatteconvError(f"size {text!r} must be positive")
    return h, w


# The checked-in presets in <repo>/aipp/ (a test regenerates them and fails on drift).
PRESETS: dict[str, AippSpec] = {
    "nv21_320.cfg": AippSpec("nv21", (320, 320)),
    "nv21_384.cfg": AippSpec("nv21", (384, 384)),
    "nv21_512.cfg": AippSpec("nv21", (512, 512)),
    "nv21_288x512.cfg": AippSpec("nv21", (288, 512)),  # golden/hard's size (a 16:9 camera at 512 wide)
    "rgb888_384.cfg": AippSpec("rgb888", (384, 384)),
}
