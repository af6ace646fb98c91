"""Built-in real data, shipped inside installed packages (no downloads): scikit-image's photos, and a
synthetic clip (a person-like figure moving over a photo) for the temporal model."""
from __future__ import annotations

import cv2
import numpy as np


def photos() -> dict[str, np.ndarray]:
    """A portrait, a non-square photo, a grayscale portrait, a smaller non-square one and a small crop."""
    from skimage import data

    astronaut = data.astronaut()
    return {
        "astronaut": astronaut,                      # 512x512 RGB portrait
        "coffee": data.coffee(),                     # 400x600 RGB, non-square
        "camera": data.camera(),                     # 512x512 grayscale portrait
        "chelsea": data.chelsea(),                   # 300x451 RGB, non-square, smaller than the model
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
