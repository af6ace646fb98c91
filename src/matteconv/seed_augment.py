"""The seed's temporal augmentations (seed article, section 效果改进), used by the synthetic training set
(train/) and by the clips of real people (people/): lighting as a point or line light added to the image
(backlight), and the previous-frame alpha either blanked with probability 0.3 (people entering and leaving the
frame) or randomly affine-jittered (so the network learns to discard a wrong previous result).

No dependency on training: numpy and OpenCV only, so sample generators can use it without importing train.
"""
from __future__ import annotations

import cv2
import numpy as np

P_BLANK = 0.3    # the seed: `random.random() < 0.7` keeps the previous alpha
P_AFFINE = 0.5


def light_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The seed's lighting augmentation: a point or a line light source, as an additive HxWx3 field."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    colour = rng.uniform(0.8, 1.0, size=3)
    strength = rng.uniform(60, 200)
    if rng.random() < 0.5:  # point light
        cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
        sigma = rng.uniform(0.15, 0.5) * max(h, w)
        field = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    else:  # line light: a bright band across the frame
        theta = rng.uniform(0, np.pi)
        c = rng.uniform(0.1, 0.9) * (h * abs(np.sin(theta)) + w * abs(np.cos(theta)))
        d = xx * np.cos(theta) + yy * np.sin(theta) - c
        sigma = rng.uniform(0.05, 0.25) * max(h, w)
        field = np.exp(-d ** 2 / (2 * sigma ** 2))
    return strength * field[..., None] * colour



def previous_alpha(rng: np.random.Generator, prev: np.ndarray | None, p_blank: float = P_BLANK,
                   p_affine: float = P_AFFINE) -> np.ndarray | None:
    """Blank (None means zeros) or jitter the previous frame's alpha (HxW float32 in [0, 1]): rotation up to
    15 degrees, scale 0.85-1.15, shift up to 15% of each side, zeros brought in at the borders."""
    if prev is None or rng.random() < p_blank:
        return None
    if rng.random() < p_affine:
        h, w = prev.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-15, 15), rng.uniform(0.85, 1.15))
        m[:, 2] += rng.uniform(-0.15, 0.15, size=2) * (w, h)
        prev = cv2.warpAffine(prev, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    return prev
