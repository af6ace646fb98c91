"""A numpy model of what the AIPP unit does to a raw frame, so an AIPP config can be checked against
`matteconv.preprocess` before anything reaches a device.

Order of operations ([atc] "Configuration File Template"): channel swap -> crop -> CSC -> normalisation ->
padding. Every value is the one GraphEngine uses (`AippOp.get`: explicit, else GE's default, e.g. the default
YUV420SP matrix in B,G,R row order when csc_switch is on without a matrix; schema.ge_defaults).
CSC ([acl] aclmdlSetAIPPCscParams, [atc] "CSC Configuration"):
    YUV input:  out_i = clamp((sum_j M_ij * (in_j - input_bias_j)) >> 8, 0, 255)
    RGB input:  out_i = clamp(((sum_j M_ij * in_j) >> 8) + output_bias_i, 0, 255)
The chip picks the form from the input format: the AIPP operator programs input_bias only for YUV formats and
output_bias for the others (ascend-opp aipp_comm.py get_spr2_spr9). `>>` is an arithmetic shift (floor), as the
documents write it; the exact rounding of the silicon is not published, which is why the verify stage compares
with a tolerance. Normalisation ([atc] "Normalization Configuration"):
    out_i = (in_i - mean_chn_i - min_chn_i) * var_reci_chn_i
with min_chn and var_reci_chn held as fp16 in the AIPP registers (aipp_comm.py get_fp16) and an fp16 output;
`fp16=True` reproduces those roundings, the default keeps float32 so the arithmetic can be compared exactly.
Padding writes `padding_value` into the border of the normalised output (the padding step comes last).
YUV420SP chroma is replicated over each 2x2 block (nearest), as OpenCV's NV21/NV12 decoders also do.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import MatteconvError
from .parse import AippConfig, AippOp
from .schema import MATRIX_KEYS, YUV_FORMATS

EMULATED = ("YUV420SP_U8", "RGB888_U8", "YUV400_U8")


def _op(cfg: AippConfig | AippOp, rank: int) -> AippOp:
    if isinstance(cfg, AippOp):
        return cfg
    op = cfg.op_for_input(rank)
    if op is None:
        raise MatteconvError(f"{cfg.path}: no aipp_op for model input {rank}")
    return op


def _src_hw(op: AippOp, raw: np.ndarray, size: tuple[int, int] | None) -> tuple[int, int]:
    hw = op.src_hw(size)
    if hw is not None:
        return hw
    fmt = op.input_format
    if fmt == "YUV420SP_U8" and raw.ndim == 2:
        return raw.shape[0] * 2 // 3, raw.shape[1]
    if fmt != "YUV420SP_U8" and raw.ndim >= 2:
        return raw.shape[0], raw.shape[1]
    raise MatteconvError("src_image_size is 0 in the AIPP config: pass the model size to the emulator")


def decode_raw(op: AippOp, raw: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Raw device input -> HxWxC int32 in stored channel order, after the swap (the first AIPP step)."""
    fmt = op.input_format
    if fmt not in EMULATED:
        raise MatteconvError(f"the emulator handles {', '.join(EMULATED)}, not {fmt}")
    raw = np.asarray(raw)
    if raw.dtype != np.uint8:
        raise MatteconvError(f"AIPP input must be uint8, got {raw.dtype}")
    h, w = _src_hw(op, raw, size)
    swap = bool(op.get("rbuv_swap_switch"))
    if fmt == "YUV420SP_U8":
        if h % 2 or w % 2:
            raise MatteconvError(f"YUV420SP source {w}x{h} must have even sides")
        flat = raw.reshape(-1)
        if flat.size != h * w * 3 // 2:
            raise MatteconvError(f"YUV420SP {w}x{h} needs {h * w * 3 // 2} bytes, got {flat.size}")
        y = flat[: h * w].reshape(h, w).astype(np.int32)
        uv = flat[h * w:].reshape(h // 2, w // 2, 2).astype(np.int32)
        if swap:  # NV21 -> U,V order
            uv = uv[..., ::-1]
        uv = uv.repeat(2, axis=0).repeat(2, axis=1)
        return np.concatenate([y[..., None], uv], axis=2)
    if fmt == "RGB888_U8":
        img = raw.reshape(h, w, 3).astype(np.int32)
        return img[..., ::-1] if swap else img
    return raw.reshape(h, w, 1).astype(np.int32)  # YUV400_U8: rbuv swap does not apply (aipp_comm.py)


def csc(op: AippOp, img: np.ndarray) -> np.ndarray:
    """Integer colour-space conversion of HxWx3 int32 (no-op when csc_switch is off)."""
    if not op.get("csc_switch"):
        return img
    if img.shape[2] != 3:
        raise MatteconvError(f"csc_switch needs 3 channels, {op.input_format} has {img.shape[2]}")
    m = np.array([int(op.get(k)) for k in MATRIX_KEYS], dtype=np.int64).reshape(3, 3)
    x = img.astype(np.int64)
    if op.input_format in YUV_FORMATS:
        ib = np.array([int(op.get(f"input_bias_{i}")) for i in range(3)], dtype=np.int64)
        out = np.einsum("hwj,ij->hwi", x - ib, m) >> 8
    else:
        ob = np.array([int(op.get(f"output_bias_{i}")) for i in range(3)], dtype=np.int64)
        out = (np.einsum("hwj,ij->hwi", x, m) >> 8) + ob
    return np.clip(out, 0, 255).astype(np.int32)


def emulate(cfg: AippConfig | AippOp, raw: np.ndarray, fp16: bool = False, rank: int = 0,
            size: tuple[int, int] | None = None) -> np.ndarray:
    """Apply a static aipp_op to a raw device input -> float32 1xCxHxW model input.

    raw: YUV420SP_U8 a W*H*3/2 byte buffer (any shape), RGB888_U8 HxWx3, YUV400_U8 HxW; uint8.
    size: the model's (H, W), needed only when the config leaves src_image_size at 0.
    """
    op = _op(cfg, rank)
    if op.mode != "static":
        raise MatteconvError("only static AIPP can be emulated")
    if op.get("resize"):
        raise MatteconvError("AIPP resize is not emulated (Hi3796CV300 only)")
    img = decode_raw(op, raw, size)
    if op.get("crop"):
        x, y = int(op.get("load_start_pos_w")), int(op.get("load_start_pos_h"))
        ch = int(op.get("crop_size_h")) or (size or img.shape[:2])[0]
        cw = int(op.get("crop_size_w")) or (size or img.shape[:2])[1]
        if y + ch > img.shape[0] or x + cw > img.shape[1]:
            raise MatteconvError(f"crop {x},{y},{cw},{ch} is outside the {img.shape[1]}x{img.shape[0]} source")
        img = img[y: y + ch, x: x + cw]
    img = csc(op, img)
    c = img.shape[2]
    mean = np.array([int(op.get(f"mean_chn_{i}")) for i in range(c)], dtype=np.float64)
    mn = np.array([float(op.get(f"min_chn_{i}")) for i in range(c)], dtype=np.float64)
    var = np.array([float(op.get(f"var_reci_chn_{i}")) for i in range(c)], dtype=np.float64)
    if fp16:
        mn = mn.astype(np.float16).astype(np.float64)
        var = var.astype(np.float16).astype(np.float64)
    out = (img.astype(np.float64) - mean - mn) * var
    if op.get("padding"):
        t, b, left, r = op.padding_hw()
        out = np.pad(out, ((t, b), (left, r), (0, 0)), constant_values=float(op.get("padding_value")))
    if fp16:
        out = out.astype(np.float16)
    return np.ascontiguousarray(out.astype(np.float32).transpose(2, 0, 1)[None])


# --- encoders: what a camera hands the device ---------------------------------------------------------------

# BT.601 RGB -> YCbCr (ITU-R BT.601 / JFIF), as float matrices on 0..255 values.
_RGB2YUV = {
    "video": (np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0,
              np.array([16.0, 128.0, 128.0])),
    "full": (np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]),
             np.array([0.0, 128.0, 128.0])),
}


# The same rows as exact integers (row . rgb / den + offset): what the YUV420SP encoders compute, so that no
# float rounding decides a byte (ties go to even). |row| <= 1e6 and den <= 1e6 keep 2x2 sums inside int32.
_RGB2YUV_INT = {
    "video": (((65481, 128553, 24966), (-37797, -74203, 112000), (112000, -93786, -18214)), 255000, (16, 128, 128)),
    "full": (((299000, 587000, 114000), (-168736, -331264, 500000), (500000, -418688, -81312)), 1000000,
             (0, 128, 128)),
}


def _round_div(t: np.ndarray, den: int) -> np.ndarray:
    """rint(num / den) with ties to even, exactly, from t = num + den // 2 (int32 array, den > 0)."""
    q = t // den
    q -= ((t - q * den) == 0) & (q & 1).astype(bool)
    return q


def _yuv420sp(rgb: np.ndarray, color_range: str, vu: bool) -> np.ndarray:
    """The YUV420SP encoder, step for step the generated app's (deploy/app/pipeline.py yuv420sp): Y per pixel,
    chroma from each 2x2 block's sum (its mean, as camera ISPs subsample), exact int32 arithmetic."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MatteconvError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise MatteconvError(f"YUV420SP needs even width and height, got {w}x{h}")
    if color_range not in _RGB2YUV_INT:
        raise MatteconvError(f"color range {color_range!r} is not video or full")
    m, den, off = _RGB2YUV_INT[color_range]
    v = np.arange(256, dtype=np.int32)
    lut = np.stack([v * m[0][k] for k in range(3)], axis=-1)
    lut[:, 0] += off[0] * den + den // 2  # offset and half the denominator (for _round_div) in red's column
    terms = cv2.LUT(np.ascontiguousarray(rgb), np.ascontiguousarray(lut[None]))  # HxWx3 int32 shares of Y * den
    acc = terms[..., 0] + terms[..., 1]
    acc += terms[..., 2]
    out = np.empty(h * w * 3 // 2, np.uint8)
    out[:h * w] = np.clip(_round_div(acc, den), 0, 255).reshape(-1)
    s = rgb[0::2, 0::2].astype(np.int32)
    s += rgb[0::2, 1::2]
    s += rgb[1::2, 0::2]
    s += rgb[1::2, 1::2]
    uv = out[h * w:].reshape(h // 2, w // 2, 2)
    for row, dst in ((1, 1 if vu else 0), (2, 0 if vu else 1)):
        acc = s[..., 0] * m[row][0] + s[..., 1] * m[row][1] + s[..., 2] * m[row][2] + (4 * off[row] * den + 2 * den)
        uv[..., dst] = np.clip(_round_div(acc, 4 * den), 0, 255)
    return out


def rgb_to_nv21(rgb: np.ndarray, color_range: str = "video") -> np.ndarray:
    """HxWx3 uint8 RGB -> NV21 bytes (Y plane, then V,U interleaved at half size), BT.601."""
    return _yuv420sp(rgb, color_range, vu=True)


def rgb_to_nv12(rgb: np.ndarray, color_range: str = "video") -> np.ndarray:
    """HxWx3 uint8 RGB -> NV12 bytes (Y plane, then U,V interleaved at half size), BT.601."""
    return _yuv420sp(rgb, color_range, vu=False)


def encode_for(op: AippOp, rgb: np.ndarray) -> np.ndarray:
    """An RGB frame in the raw layout the op expects (NV12/NV21 by its swap, range by its input_bias_0)."""
    fmt = op.input_format
    rgb = np.asarray(rgb)
    if fmt == "YUV420SP_U8":
        rng = "video" if int(op.get("input_bias_0")) >= 16 or not op.get("csc_switch") else "full"
        return _yuv420sp(rgb, rng, vu=bool(op.get("rbuv_swap_switch")))
    if fmt == "RGB888_U8":
        return np.ascontiguousarray(rgb[..., ::-1] if op.get("rbuv_swap_switch") else rgb)
    if fmt == "YUV400_U8":
        m, off = _RGB2YUV["video" if int(op.get("input_bias_0")) >= 16 else "full"]
        return np.clip(np.rint(rgb.astype(np.float64) @ m[0] + off[0]), 0, 255).astype(np.uint8)
    raise MatteconvError(f"cannot encode a frame as {fmt}")


def aipp_model_input(rgb: np.ndarray, cfg: AippConfig | AippOp, fp16: bool = False, rank: int = 0) -> np.ndarray:
    """RGB uint8 frame at the config's source size -> what the model sees after AIPP (float32 1xCxHxW)."""
    op = _op(cfg, rank)
    rgb = np.asarray(rgb)
    want = op.src_hw()
    if want is not None and tuple(rgb.shape[:2]) != want:
        raise MatteconvError(f"frame is {rgb.shape[1]}x{rgb.shape[0]} but the AIPP source is {want[1]}x{want[0]}")
    return emulate(op, encode_for(op, rgb), fp16=fp16, size=tuple(rgb.shape[:2]))


def emulate_image(op: AippOp, rgb: np.ndarray, model_hw: tuple[int, int] | None = None,
                  fp16: bool = False, model_channels: int | None = None) -> dict:
    """An RGB photo through a static aipp_op, as the app would send it: resized to the AIPP source size (bilinear,
    cv2.INTER_AREA when shrinking), encoded in the op's raw format, then emulated.

    Returns {"input": float32 1xCxHxW, "src_hw", "resized": bool, "stats": per-channel min/max/mean,
    "vs_preprocess": {"max", "mean"} of |AIPP - matteconv.preprocess.normalize| over the crop, in model units
    (None when the op pads or feeds other than 3 channels). For YUV420SP the max is large at sharp colour
    edges (chroma is shared by 2x2 pixels); the mean is the useful number there.} `model_channels` fewer than the
    op's: the model reads the first ones, so "input" keeps only those (C = model_channels).}"""
    import cv2

    from ..preprocess import normalize, to_rgb

    rgb = to_rgb(rgb)
    src = op.src_hw(model_hw) or tuple(rgb.shape[:2])
    resized = tuple(rgb.shape[:2]) != tuple(src)
    if resized:
        shrink = src[0] * src[1] < rgb.shape[0] * rgb.shape[1]
        rgb = cv2.resize(rgb, (src[1], src[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    x = emulate(op, encode_for(op, rgb), fp16=fp16, size=model_hw or tuple(src))
    if model_channels is not None and 0 < model_channels < x.shape[1]:
        x = np.ascontiguousarray(x[:, :model_channels])
    stats = [{"min": float(c.min()), "max": float(c.max()), "mean": float(c.mean())} for c in x[0]]
    vs = None
    if x.shape[1] == 3 and not op.get("padding"):
        if op.get("crop"):
            cx, cy = int(op.get("load_start_pos_w")), int(op.get("load_start_pos_h"))
            rgb = rgb[cy: cy + x.shape[2], cx: cx + x.shape[3]]
        d = np.abs(x.astype(np.float64) - normalize(rgb, np.float64))
        vs = {"max": float(d.max()), "mean": float(d.mean())}
    return {"input": x, "src_hw": tuple(src), "resized": resized, "stats": stats, "vs_preprocess": vs}
