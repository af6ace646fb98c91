"""The seed's temporal augmentations (seed article, section 效果改进): the previous alpha is blanked with
probability 0.3 (people entering and leaving the frame) and otherwise randomly affine-jittered (so the network
learns to discard a wrong previous result); lighting as a point or line light added to the image."""
from __future__ import annotations

import cv2
import numpy as np

from .synth import light_field

P_BLANK = 0.3    # the seed: `random.random() < 0.7` keeps the previous alpha
P_AFFINE = 0.5


def previous_alpha(rng: np.random.Generator, prev: np.ndarray | None, p_blank: float = P_BLANK,
                   p_affine: float = P_AFFINE) -> np.ndarray | None:
    """Blank (None means zeros) or jitter the previous frame's alpha."""
    if prev is None or rng.random() < p_blank:
        return None
    if rng.random() < p_affine:
        h, w = prev.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-15, 15), rng.uniform(0.85, 1.15))
        m[:, 2] += rng.uniform(-0.15, 0.15, size=2) * (w, h)
        prev = cv2.warpAffine(prev, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    return prev


def light(rng: np.random.Generator, image: np.ndarray, p: float) -> np.ndarray:
    """Lighting augmentation on a finished image (user data, where F and B are not known separately)."""
    if rng.random() >= p:
        return image
    return np.clip(np.rint(image + light_field(rng, *image.shape[:2])), 0, 255).astype(np.uint8)
