"""Built-in real data, shipped inside installed packages (no downloads): scikit-image's photos, and a
synthetic clip with motion made from them for the temporal model."""
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
    """The astronaut's upper body moving right over a static background: motion plus static regions."""
    from skimage import data

    bg = cv2.resize(data.coffee(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
    sh, sw = int(size * 0.8), int(size * 0.6)
    sprite = cv2.resize(data.astronaut()[0:480, 96:456], (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float64)
    mask = soft_ellipse(sh, sw, sh * 0.55, sw / 2, sh * 0.55, sw * 0.48)[..., None]
    out = []
    for t in range(frames):
        frame = bg.copy()
        x0, y0 = 8 + t * step, size - sh
        region = frame[y0 : y0 + sh, x0 : x0 + sw]
        w = min(sw, size - x0)
        region[:, :w] = mask[:, :w] * sprite[:, :w] + (1 - mask[:, :w]) * region[:, :w]
        out.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return out
