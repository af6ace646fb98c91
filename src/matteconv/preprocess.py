"""The one definition of input preparation and post-processing, shared by export checks, golden, verify,
AIPP and matte. MODNet was trained on RGB normalised as (x - 127.5) / 127.5.

Three resize policies:
- ``official``: the MODNet demo rule: short side to 512 when the image is outside that range, both sides floored
  to a multiple of 32, area resize (on the normalised float image), matte resized back with area.
- ``device``: what the device demo does with a camera frame: optional mirror, centre square crop (or the
  model's aspect), resize to the model size. The result is uint8, because that is what the NPU's AIPP receives.
- ``letterbox``: for a fixed-size model whose aspect is not the frame's: optional mirror, scale the whole frame
  to fit inside the model size (aspect kept), centre it and fill the rest with PAD_VALUE grey; the matte of the
  fitted region is scaled back over the whole frame. The model sees RGB (128, 128, 128) in the bands, i.e.
  +0.0039 after (x - 127.5) / 127.5: the training mean, so the bands feed the network (almost) zeros, which a
  flat uint8 value cannot make exact (127.5 is not an integer). Through an NV21/NV12 AIPP the bands are encoded
  like any pixel (Y 126, U = V = 128, which decodes to 127 or 128 per channel).

Which is the default for a fixed-size model (`auto_policy`): ``device`` (the seed's centre crop) while the crop
keeps at least 1 - LETTERBOX_MARGIN = 90% of the frame's height or width, else ``letterbox``. Why 10%: a crop
that drops more cuts the heads and feet (or shoulders) of a person who fills the frame, which is what matting
is for, e.g. a 319x567 portrait into a 288x512 landscape model keeps 32% of its height. Below 10% the crop
drops at most 5% at each edge, which a framed shot has as headroom, and it uses every model pixel, where
letterbox would spend up to 10% of the model's (fixed) compute on grey.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

MEAN = 127.5
STD = 127.5
REF_SIZE = 512
POLICIES = ("official", "device", "letterbox")
PAD_VALUE = 128  # letterbox bands, RGB (module docstring)
LETTERBOX_MARGIN = 0.10  # auto_policy: letterbox when a centre crop would drop more than this fraction


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any decoded image -> HxWx3 uint8 RGB. Gray is repeated, an alpha channel dropped, 16-bit scaled to 8."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 + 32767) // 65535
    elif img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.size and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(np.rint(img), 0, 255)
    img = img.astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def official_size(h: int, w: int, ref: int = REF_SIZE) -> tuple[int, int]:
    """The MODNet demo's model input size for an h x w image (multiples of 32)."""
    if max(h, w) < ref or min(h, w) > ref:
        if w >= h:
            rh, rw = ref, int(w / h * ref)
        else:
            rw, rh = ref, int(h / w * ref)
    else:
        rh, rw = h, w
    return max(32, rh - rh % 32), max(32, rw - rw % 32)


def parse_size(text: str | int | tuple[int, int]) -> tuple[int, int]:
    """'512' -> (512, 512); '384x512' -> (384, 512) as H x W; checked to be positive multiples of 32."""
    if isinstance(text, tuple):
        h, w = text
    elif isinstance(text, int):
        h = w = text
    else:
        parts = str(text).lower().replace("*", "x").split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"size {text!r} is not N or HxW") from None
        if len(nums) == 1:
            h = w = nums[0]
        elif len(nums) == 2:
            h, w = nums
        else:
            raise ValueError(f"size {text!r} is not N or HxW")
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError(f"size {h}x{w}: height and width must be positive multiples of 32 (MODNet downsamples 32x)")
    return h, w


@dataclass(frozen=True)
class Prepared:
    """A model-ready tensor plus what post-processing needs to map the matte back to the original image."""

    tensor: np.ndarray  # 1x3xHxW, normalised
    frame: np.ndarray  # HxWx3 in 0..255 at model size (uint8 for the device policy)
    policy: str
    orig_hw: tuple[int, int]
    crop: tuple[int, int, int, int]  # x, y, w, h of the region of the original that was used
    mirror: bool
    place: tuple[int, int, int, int] | None = None  # x, y, w, h of that region inside the model frame (letterbox)


def centre_crop_box(h: int, w: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """Largest centred box with the aspect ratio out_h:out_w (x, y, w, h)."""
    scale = min(h / out_h, w / out_w)
    cw, ch = int(round(out_w * scale)), int(round(out_h * scale))
    cw, ch = min(cw, w), min(ch, h)
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def letterbox_box(h: int, w: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """Where a whole h x w frame goes inside out_h x out_w, aspect kept, centred: (x, y, w, h)."""
    scale = min(out_h / h, out_w / w)
    nw, nh = min(out_w, max(1, int(round(w * scale)))), min(out_h, max(1, int(round(h * scale))))
    return (out_w - nw) // 2, (out_h - nh) // 2, nw, nh


def auto_policy(frame_hw: tuple[int, int], model_hw: tuple[int, int], margin: float = LETTERBOX_MARGIN) -> str:
    """The default policy of a fixed-size model for frames of this size: `device` unless a centre crop would keep
    less than 1 - margin of the frame's height or width, then `letterbox` (module docstring)."""
    (h, w), (mh, mw) = frame_hw, model_hw
    kept = min((w / h) / (mw / mh), (mw / mh) / (w / h))
    return "letterbox" if kept < 1.0 - margin else "device"


def letterbox_frame(rgb: np.ndarray, size: tuple[int, int], mirror: bool = False) -> tuple[np.ndarray, tuple]:
    """Mirror, scale the whole frame to fit the model size and centre it on PAD_VALUE grey: uint8 at model size,
    and the (x, y, w, h) it occupies. Area resize when shrinking, linear when enlarging (as `device_frame`)."""
    h, w = rgb.shape[:2]
    if mirror:
        rgb = rgb[:, ::-1]
    x, y, nw, nh = letterbox_box(h, w, *size)
    interp = cv2.INTER_AREA if (h >= nh and w >= nw) else cv2.INTER_LINEAR
    frame = np.full((size[0], size[1], 3), PAD_VALUE, np.uint8)
    frame[y : y + nh, x : x + nw] = cv2.resize(np.ascontiguousarray(rgb), (nw, nh), interpolation=interp)
    return frame, (x, y, nw, nh)


def device_frame(rgb: np.ndarray, size: tuple[int, int], mirror: bool = False) -> tuple[np.ndarray, tuple]:
    """Mirror, centre-crop to the model's aspect and area-resize: uint8 at model size, as the device demo feeds."""
    h, w = rgb.shape[:2]
    if mirror:
        rgb = rgb[:, ::-1]
    x, y, cw, ch = centre_crop_box(h, w, *size)
    crop = rgb[y : y + ch, x : x + cw]
    interp = cv2.INTER_AREA if (ch >= size[0] and cw >= size[1]) else cv2.INTER_LINEAR
    frame = cv2.resize(np.ascontiguousarray(crop), (size[1], size[0]), interpolation=interp)
    return frame, (x, y, cw, ch)


def normalize(frame: np.ndarray, dtype=np.float32) -> np.ndarray:
    """HxWx3 RGB in 0..255 -> 1x3xHxW, (x - 127.5) / 127.5."""
    x = (np.asarray(frame, dtype=np.float64) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None].astype(dtype))


def prepare(image: np.ndarray, policy: str = "device", size: tuple[int, int] | None = None,
            mirror: bool = False, dtype=np.float32) -> Prepared:
    """Image -> model input under a resize policy. `size` is required for `device`, optional for `official`."""
    if policy not in POLICIES:
        raise ValueError(f"unknown resize policy {policy!r} (choose from {', '.join(POLICIES)})")
    rgb = to_rgb(image)
    h, w = rgb.shape[:2]
    if policy == "device":
        if size is None:
            raise ValueError("the device policy needs a model size")
        frame, crop = device_frame(rgb, size, mirror)
        return Prepared(normalize(frame, dtype), frame, policy, (h, w), crop, mirror)
    if policy == "letterbox":
        if size is None:
            raise ValueError("the letterbox policy needs a model size")
        frame, place = letterbox_frame(rgb, size, mirror)
        return Prepared(normalize(frame, dtype), frame, policy, (h, w), (0, 0, w, h), mirror, place)
    if mirror:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
    size = size or official_size(h, w)
    t = torch.from_numpy(rgb.astype(np.float64)).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=size, mode="area")
    frame = t[0].permute(1, 2, 0).numpy()
    return Prepared(normalize(frame, dtype), frame, policy, (h, w), (0, 0, w, h), mirror)


def restore(alpha: np.ndarray, prep: Prepared) -> np.ndarray:
    """Matte at model size -> matte at the original image size (outside a device crop: 0; letterbox: the
    fitted region, scaled back over the whole frame)."""
    a = np.asarray(alpha, dtype=np.float64).reshape(alpha.shape[-2:])
    if prep.place is not None:
        px, py, pw, ph = prep.place
        a = a[py : py + ph, px : px + pw]
    x, y, cw, ch = prep.crop
    if prep.policy == "official":
        t = F.interpolate(torch.from_numpy(a)[None, None], size=(ch, cw), mode="area")
        region = t[0, 0].numpy()
    else:
        region = cv2.resize(a, (cw, ch), interpolation=cv2.INTER_LINEAR)
    out = np.zeros(prep.orig_hw, dtype=np.float64)
    out[y : y + ch, x : x + cw] = region
    if prep.mirror:
        out = out[:, ::-1]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
