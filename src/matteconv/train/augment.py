"""The seed's temporal augmentations for training (definitions in matteconv/seed_augment.py, shared with the
clips of real people): previous alpha blanked with probability 0.3 or affine-jittered, lighting as a point or
line light added to the image."""
from __future__ import annotations

import numpy as np

from ..seed_augment import P_AFFINE, P_BLANK, light_field, previous_alpha

__all__ = ["P_AFFINE", "P_BLANK", "light", "previous_alpha"]


def light(rng: np.random.Generator, image: np.ndarray, p: float) -> np.ndarray:
    """Lighting augmentation on a finished image (user data, where F and B are not known separately)."""
    if rng.random() >= p:
        return image
    return np.clip(np.rint(image + light_field(rng, *image.shape[:2])), 0, 255).astype(np.uint8)
