"""Built-in real data, shipped inside installed packages (no downloads): scikit-image's photos, and a
synthetic clip (a person-like figure moving over a photo) for the temporal model."""
from __future__ import annotations

import cv2
import numpy as np


PHOTOS = ("astronaut", "coffee", "camera", "chelsea")  # scikit-image's photos we use


def photo(name: str) -> np.ndarray:
    """One of scikit-image's photos (`PHOTOS`): uint8, HxWx3 RGB or HxW gray, read with OpenCV from the PNG
    scikit-image ships (lossless: the same pixels as `skimage.data.<name>()`, tested). Not through skimage.data:
    that imports skimage.io, 0.3 s of every command that needs one photo (the Caffe export's probe, measured).
    Falls back to skimage.data where the file is not in the installed package."""
    import importlib.resources

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r} (choose from {', '.join(PHOTOS)})")
    img = cv2.imread(str(importlib.resources.files("skimage") / "data" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    if img is None:
        from skimage import data

        return getattr(data, name)()
    return np.ascontiguousarray(img[..., ::-1]) if img.ndim == 3 else img


def photos() -> dict[str, np.ndarray]:
    """A portrait, a non-square photo, a grayscale portrait, a smaller non-square one and a small crop."""
    astronaut = photo("astronaut")
    return {
        "astronaut": astronaut,                      # 512x512 RGB portrait
        "coffee": photo("coffee"),                   # 400x600 RGB, non-square
        "camera": photo("camera"),                   # 512x512 grayscale portrait
        "chelsea": photo("chelsea"),                 # 300x451 RGB, non-square, smaller than the model
        "astronaut_small": cv2.resize(astronaut[20:260, 130:330], (100, 120), interpolation=cv2.INTER_AREA),
    }


def soft_ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float, feather: float = 6.0) -> np.ndarray:
    """A soft elliptical mask in [0, 1] (used as sprite alpha and as a plausible previous matte)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - r) * min(ry, rx) / feather + 0.5, 0.0, 1.0)


def clip(frames: int = 10, size: int = 320, step: int = 10) -> list[np.ndarray]:
    """A person-like figure (the training set's kind, with hair and arms) walking and waving over a photo: motion
    plus static regions. `step` is the walking speed in pixels per frame."""
    from .train import synth

    seq = synth.clip(2026, frames, (size, size), enter=False, speed_px=step)
    return [s.image for s in seq]
