"""AIPP configs: render one that reproduces matteconv's preprocessing, parse and validate any config.

An AIPP config (`--insert_op_conf`) is protobuf text of GraphEngine's `domi.InsertNewOps` message: a list of
`aipp_op { key : value ... }` blocks. ATC checks it only when it compiles, on a machine with the toolkit; a wrong
row order or a mean of 127 instead of 127.5 compiles fine and is only seen as a bad matte on the device. So we
write the config from the same constants as `matteconv.preprocess` and check hand-written ones here.

Sources for the rules below (cited where used):
- [proto]  GraphEngine `insert_op.proto` (`AippOpParams`, field names and types), e.g. Huawei-Ascend/tensorflow
           inc/register/proto/insert_op.proto.
- [ge]     GraphEngine `ge_aipp_op.cc` `AippOp::ValidateParams` / `SetCscDefaultValue` (non-negative sizes, no
           repeated list fields, default YUV->RGB matrix written in B,G,R row order, default biases).
- [tbe]    The AIPP operator's compile-time checks, `aipp_comm.py::check_aipp_static_config` (Ascend opp,
           e.g. gekowa/ascend-opp op_impl/built-in/ai_core/tbe/impl/aipp_comm.py): formats per SoC, even sizes
           and crop for YUV420SP_U8, crop inside the source, crop size == model size, src size 0/2..4096,
           mean 0..255, min 0..255, var_reci -65504..65504, biases 0..255, padding <= 32, resize only on
           Hi3796CV300, YUV400_U8 with csc_switch refused and fed to 1-channel models only.
- [acl]    AscendCL `aclmdlSetAIPPCscParams`: matrix elements in [-32677, 32676] (stricter than int16, so we
           enforce it); CSC formulas YUV->RGB `M x [Y-ib0, U-ib1, V-ib2] >> 8`, RGB->YUV `M x [R,G,B] >> 8 + ob`.
- [atc]    CANN ATC guide, "Configuration File Template" (order swap -> crop -> CSC -> normalisation -> padding),
           "CSC Configuration" (BT.601 tables), "Normalization Configuration":
           out = (in - mean_chn_i - min_chn_i) * var_reci_chn_i.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import MatteconvError
from ..preprocess import MEAN, STD

# --- schema -----------------------------------------------------------------------------------------------

# [proto] AippOpParams.InputFormat
INPUT_FORMATS = (
    "YUV420SP_U8", "XRGB8888_U8", "RGB888_U8", "YUV400_U8", "NC1HWC0DI_FP16", "NC1HWC0DI_S8", "ARGB8888_U8",
    "YUYV_U8", "YUV422SP_U8", "AYUV444_U8", "RAW10", "RAW12", "RAW16", "RAW24", "RGB16", "RGB20", "RGB24",
    "RGB8_IR", "RGB16_IR", "RGB24_IR",
)
# [tbe] formats Ascend 310/610/710 accept
ASCEND310_FORMATS = ("YUV420SP_U8", "XRGB8888_U8", "NC1HWC0DI_FP16", "NC1HWC0DI_S8", "RGB888_U8", "YUV400_U8")
YUV_FORMATS = ("YUV420SP_U8", "YUYV_U8", "YUV422SP_U8", "AYUV444_U8", "YUV400_U8")  # [tbe] take input_bias
AIPP_MODES = ("static", "dynamic")

MATRIX_KEYS = tuple(f"matrix_r{r}c{c}" for r in range(3) for c in range(3))
_B, _I, _F, _E, _S = "bool", "int", "float", "enum", "str"

# name -> (kind, min, max); None = no range beyond the type. [proto] field list; ranges from [tbe]/[acl].
FIELDS: dict[str, tuple[str, float | None, float | None]] = {
    "aipp_mode": (_E, None, None),
    "related_input_rank": (_I, 0, None),
    "related_input_name": (_S, None, None),
    "input_edge_idx": (_I, 0, None),
    "max_src_image_size": (_I, 0, None),
    "support_rotation": (_B, None, None),
    "input_format": (_E, None, None),
    "csc_switch": (_B, None, None),
    "cpadding_value": (_F, None, None),
    "rbuv_swap_switch": (_B, None, None),
    "ax_swap_switch": (_B, None, None),
    "single_line_mode": (_B, None, None),
    "src_image_size_w": (_I, 0, 4096),
    "src_image_size_h": (_I, 0, 4096),
    "crop": (_B, None, None),
    "load_start_pos_w": (_I, 0, 4095),
    "load_start_pos_h": (_I, 0, 4095),
    "crop_size_w": (_I, 0, 4096),
    "crop_size_h": (_I, 0, 4096),
    "resize": (_B, None, None),
    "resize_output_w": (_I, 0, 4096),
    "resize_output_h": (_I, 0, 4096),
    "padding": (_B, None, None),
    "left_padding_size": (_I, 0, 32),
    "right_padding_size": (_I, 0, 32),
    "top_padding_size": (_I, 0, 32),
    "bottom_padding_size": (_I, 0, 32),
    **{f"mean_chn_{i}": (_I, 0, 255) for i in range(4)},
    **{f"min_chn_{i}": (_F, 0, 255) for i in range(4)},
    **{f"var_reci_chn_{i}": (_F, -65504, 65504) for i in range(4)},
    **{k: (_I, -32677, 32676) for k in MATRIX_KEYS},
    **{f"output_bias_{i}": (_I, 0, 255) for i in range(3)},
    **{f"input_bias_{i}": (_I, 0, 255) for i in range(3)},
    "raw_rgbir_to_f16_n": (_I, 0, 31),
}

# BT.601 YUV -> RGB, rows in R, G, B order ([atc] "CSC Configuration", BT-601NARROW / BT-601WIDE(JPEG)).
CSC_YUV2RGB = {
    "video": ((298, 0, 409), (298, -100, -208), (298, 516, 0)),
    "full": ((256, 0, 359), (256, -88, -183), (256, 454, 0)),
}
CSC_INPUT_BIAS = {"video": (16, 128, 128), "full": (0, 128, 128)}

CLI_FORMATS = {  # CLI name -> (AIPP input_format, rbuv_swap_switch, csc)
    "nv12": ("YUV420SP_U8", False, True),
    "nv21": ("YUV420SP_U8", True, True),
    "rgb888": ("RGB888_U8", False, False),
    "bgr888": ("RGB888_U8", True, False),
    "yuv400": ("YUV400_U8", False, False),
}


# --- parsed form --------------------------------------------------------------------------------------------

@dataclass
class AippOp:
    """One `aipp_op` block: values by field name, plus the line each came from (for error messages)."""

    values: dict[str, object] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    line: int = 0  # line of `aipp_op`

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    @property
    def input_format(self) -> str:
        return str(self.values.get("input_format", "UNDEFINED"))

    @property
    def rank(self) -> int:
        return int(self.values.get("related_input_rank", 0))

    @property
    def channels(self) -> int:
        """Channels the op feeds the model ([tbe]: YUV400 -> 1, XRGB/ARGB/AYUV -> 4, else 3)."""
        fmt = self.input_format
        if fmt == "YUV400_U8" or fmt.startswith("RAW"):
            return 1
        if fmt in ("XRGB8888_U8", "ARGB8888_U8", "AYUV444_U8"):
            return 4
        return 3

    def output_hw(self, model_hw: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """H, W that come out of the op: crop size when cropping, else the source size (0 = the model's)."""
        if self.get("crop", False):
            h, w = int(self.get("crop_size_h", 0)), int(self.get("crop_size_w", 0))
        else:
            h, w = int(self.get("src_image_size_h", 0)), int(self.get("src_image_size_w", 0))
        if model_hw is not None:
            h, w = h or model_hw[0], w or model_hw[1]
        return (h, w) if h and w else None

    def src_hw(self, model_hw: tuple[int, int] | None = None) -> tuple[int, int] | None:
        h, w = int(self.get("src_image_size_h", 0)), int(self.get("src_image_size_w", 0))
        if model_hw is not None:
            h, w = h or model_hw[0], w or model_hw[1]
        return (h, w) if h and w else None

    def where(self, path: str, key: str | None = None) -> str:
        return f"{path}:{self.lines.get(key, self.line) if key else self.line}"


@dataclass
class AippConfig:
    """A parsed, validated config file."""

    ops: list[AippOp]
    path: str = "<text>"
    text: str = ""

    def op_for_input(self, rank: int = 0) -> AippOp | None:
        for op in self.ops:
            if op.rank == rank:
                return op
        return None


# --- parser -------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s+|#[^\n]*|[{}:;,]|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[^\s{}:;,#"\']+')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BOOL = {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False,
         "True": True, "False": False}


def _tokens(text: str, path: str) -> list[tuple[str, int]]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # an unterminated quote
            raise MatteconvError(f"{path}:{line}: unterminated string")
        tok = m.group(0)
        if not tok.isspace() and not tok.startswith("#"):
            out.append((tok, line))
        line += tok.count("\n")
        pos = m.end()
    return out


def _convert(key: str, raw: str, path: str, line: int):
    kind, lo, hi = FIELDS[key]
    where = f"{path}:{line}"
    if kind == _B:
        if raw not in _BOOL:
            raise MatteconvError(f"{where}: {key} must be true/false/1/0, got {raw!r}")
        return _BOOL[raw]
    if kind == _E:
        allowed = AIPP_MODES if key == "aipp_mode" else INPUT_FORMATS
        if raw not in allowed:
            raise MatteconvError(f"{where}: {key} {raw!r} is not one of {', '.join(allowed)}")
        return raw
    if kind == _S:
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            return raw[1:-1]
        raise MatteconvError(f"{where}: {key} must be a quoted string, got {raw!r}")
    try:
        if kind == _I:
            if not re.fullmatch(r"[-+]?\d+", raw):
                raise ValueError
            value = int(raw)
        else:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
    except ValueError:
        what = "an integer" if kind == _I else "a finite number"
        raise MatteconvError(f"{where}: {key} must be {what}, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "" if lo is None else f"{lo:g}"
        hi_s = "" if hi is None else f"{hi:g}"
        raise MatteconvError(f"{where}: {key} {raw} is outside the documented range [{lo_s}, {hi_s}]")
    return value


def parse_config(text: str, path: str = "<text>", validate: bool = True) -> AippConfig:
    """Protobuf text of `aipp_op { ... }` blocks -> AippConfig. Raises MatteconvError naming file:line."""
    toks = _tokens(text, path)
    ops: list[AippOp] = []
    i = 0

    def expect(what: str, i: int) -> int:
        if i >= len(toks):
            last = toks[-1][1] if toks else 1
            raise MatteconvError(f"{path}:{last}: expected {what!r} but the file ended")
        if toks[i][0] != what:
            raise MatteconvError(f"{path}:{toks[i][1]}: expected {what!r}, got {toks[i][0]!r}")
        return i + 1

    while i < len(toks):
        tok, line = toks[i]
        if tok != "aipp_op":
            if tok == "multi_shape_op":
                raise MatteconvError(f"{path}:{line}: multi_shape_op is not supported here (static AIPP only)")
            raise MatteconvError(f"{path}:{line}: expected 'aipp_op {{', got {tok!r}")
        op = AippOp(line=line)
        i += 1
        if i < len(toks) and toks[i][0] == ":":
            i += 1
        i = expect("{", i)
        while True:
            if i >= len(toks):
                raise MatteconvError(f"{path}:{line}: aipp_op block opened here is never closed with '}}'")
            tok, kline = toks[i]
            if tok == "}":
                i += 1
                break
            if tok in (";", ","):
                i += 1
                continue
            if not _IDENT.match(tok):
                raise MatteconvError(f"{path}:{kline}: expected a field name, got {tok!r}")
            if tok == "aipp_op":
                raise MatteconvError(f"{path}:{kline}: aipp_op inside the aipp_op block opened at line {line}: "
                                     "is a '}' missing?")
            if tok not in FIELDS:
                raise MatteconvError(f"{path}:{kline}: unknown AIPP field {tok!r}")
            i = expect(":", i + 1)
            if i >= len(toks) or toks[i][0] in "{}:;,":
                got = "the end of the file" if i >= len(toks) else repr(toks[i][0])
                raise MatteconvError(f"{path}:{kline}: {tok} has no value (got {got})")
            value = _convert(tok, toks[i][0], path, toks[i][1])
            if tok in op.values:  # [ge] "can not be configed repeatedly"; scalar proto fields too
                raise MatteconvError(f"{path}:{kline}: {tok} is set twice in this aipp_op "
                                     f"(first at line {op.lines[tok]})")
            op.values[tok] = value
            op.lines[tok] = kline
            i += 1
        ops.append(op)
    if not ops:
        raise MatteconvError(f"{path}: no aipp_op block found")
    cfg = AippConfig(ops=ops, path=path, text=text)
    if validate:
        validate_config(cfg)
    return cfg


def load_config(path: str | Path, validate: bool = True) -> AippConfig:
    """Read and parse an AIPP config file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise MatteconvError(f"{p}: cannot read AIPP config ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise MatteconvError(f"{p}:{line}: not UTF-8 text") from None
    return parse_config(text, str(p), validate)


# --- validator ----------------------------------------------------------------------------------------------

def _err(op: AippOp, path: str, key: str | None, msg: str) -> MatteconvError:
    return MatteconvError(f"{op.where(path, key)}: {msg}")


def validate_op(op: AippOp, path: str = "<text>") -> None:
    """Cross-field rules of one block ([ge], [tbe]); single-field ranges were checked while parsing."""
    g = op.get
    mode = g("aipp_mode")
    if mode is None:
        raise _err(op, path, None, "aipp_op has no aipp_mode (GraphEngine requires static or dynamic)")
    if mode == "dynamic":
        if not g("max_src_image_size"):
            raise _err(op, path, "aipp_mode", "dynamic AIPP needs max_src_image_size > 0")
        return
    fmt = g("input_format")
    if fmt is None:
        raise _err(op, path, None, "static aipp_op has no input_format (the only required field)")
    sw, sh = int(g("src_image_size_w", 0)), int(g("src_image_size_h", 0))
    if sw == 1:
        raise _err(op, path, "src_image_size_w", "src_image_size_w must be 0 (= model width) or 2..4096")
    if fmt == "YUV420SP_U8" and (sw % 2 or sh % 2):
        raise _err(op, path, "src_image_size_w" if sw % 2 else "src_image_size_h",
                   f"src_image_size {sw}x{sh} (WxH) must be even for YUV420SP_U8")
    if fmt in ("YUV422SP_U8", "YUYV_U8") and sw % 2:
        raise _err(op, path, "src_image_size_w", f"src_image_size_w {sw} must be even for {fmt}")
    if fmt == "YUV400_U8" and g("csc_switch", False):
        raise _err(op, path, "csc_switch", "YUV400_U8 cannot use csc_switch (the AIPP operator refuses it); "
                   "YUV400 feeds 1-channel models only")
    if g("resize", False):
        raise _err(op, path, "resize", "AIPP resize is only available on Hi3796CV300, not on Ascend 310")
    if g("crop", False):
        if not (sw and sh):
            raise _err(op, path, "crop", "crop needs src_image_size_w and src_image_size_h > 0")
        x, y = int(g("load_start_pos_w", 0)), int(g("load_start_pos_h", 0))
        cw, ch = int(g("crop_size_w", 0)), int(g("crop_size_h", 0))
        if x + cw > sw:
            raise _err(op, path, "crop_size_w", f"crop load_start_pos_w {x} + crop_size_w {cw} exceeds "
                       f"src_image_size_w {sw}")
        if y + ch > sh:
            raise _err(op, path, "crop_size_h", f"crop load_start_pos_h {y} + crop_size_h {ch} exceeds "
                       f"src_image_size_h {sh}")
        if fmt == "YUV420SP_U8" and (x % 2 or y % 2 or cw % 2 or ch % 2):
            raise _err(op, path, "load_start_pos_w", f"crop offset {x},{y} and size {cw}x{ch} must be even "
                       "for YUV420SP_U8")
    else:
        for k in ("load_start_pos_w", "load_start_pos_h", "crop_size_w", "crop_size_h"):
            if g(k):
                raise _err(op, path, k, f"{k} is set but crop is not true: it would be ignored")
    if g("csc_switch", False) and fmt in YUV_FORMATS:
        missing = [k for k in MATRIX_KEYS if k not in op.values]
        if missing:
            raise _err(op, path, "csc_switch", f"csc_switch is on but {', '.join(missing)} not set: "
                       "GraphEngine's default YUV->RGB matrix is in B,G,R order; write all nine elements")


def validate_config(cfg: AippConfig) -> None:
    seen: dict[int, int] = {}
    for op in cfg.ops:
        validate_op(op, cfg.path)
        if op.rank in seen:
            raise _err(op, cfg.path, "related_input_rank",
                       f"two aipp_op blocks for model input {op.rank} (the other at line {seen[op.rank]})")
        seen[op.rank] = op.line


def check_model_inputs(cfg: AippConfig, inputs: list[tuple[str, tuple[int, ...]]], soc_version: str = "") -> None:
    """AIPP config vs the model's inputs (name, NCHW shape): rank exists, channels, output H x W ([tbe])."""
    for op in cfg.ops:
        if op.rank >= len(inputs):
            names = ", ".join(n for n, _ in inputs) or "none"
            raise _err(op, cfg.path, "related_input_rank", f"related_input_rank {op.rank} but the model has "
                       f"{len(inputs)} input(s) ({names})")
        name, shape = inputs[op.rank]
        if len(shape) != 4:
            raise _err(op, cfg.path, "related_input_rank", f"model input {name!r} has shape {list(shape)}, "
                       "AIPP needs a 4-D NCHW input")
        _, c, h, w = (int(d) for d in shape)
        if op.get("aipp_mode") == "dynamic":
            continue
        fmt = op.input_format
        if soc_version.lower().startswith(("ascend310", "ascend610", "ascend710")) and fmt not in ASCEND310_FORMATS:
            raise _err(op, cfg.path, "input_format", f"{soc_version} AIPP does not take {fmt} "
                       f"(only {', '.join(ASCEND310_FORMATS)})")
        want_c = op.channels
        if c > 0 and c != want_c and not (want_c == 4 and c == 3):
            raise _err(op, cfg.path, "input_format", f"{fmt} feeds {want_c} channel(s) but model input "
                       f"{name!r} has {c} (shape {list(shape)})")
        if h > 0 and w > 0:
            sh, sw = op.src_hw((h, w))
            if fmt == "YUV420SP_U8" and (sh % 2 or sw % 2 or not 2 <= sw <= 4096):  # rule aipp.yuv420sp-size
                raise _err(op, cfg.path, "src_image_size_w", f"YUV420SP_U8 source {sw}x{sh} (WxH; a size of 0 "
                           f"means model input {name!r}'s) must be even, with W in [2, 4096]")
            out = op.output_hw((h, w))
            key = "crop_size_w" if op.get("crop", False) else "src_image_size_w"
            if out != (h, w):
                what = "crop size" if op.get("crop", False) else "src_image_size"
                raise _err(op, cfg.path, key, f"AIPP {what} {out[1]}x{out[0]} (WxH) does not match model input "
                           f"{name!r} {w}x{h}: AIPP cannot resize on Ascend 310")


# --- renderer -----------------------------------------------------------------------------------------------

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
    validate_op(op, "<rendered>")
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
    parse_config(text, "<rendered>")  # what we write must read back
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
    "rgb888_384.cfg": AippSpec("rgb888", (384, 384)),
}
