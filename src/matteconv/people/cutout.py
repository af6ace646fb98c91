"""People cut out of the package photos: RGBA sprites whose alpha a matting model gave.

The clips' labels do not depend on how good that alpha is: a clip composites the sprite with its own alpha, so
the composite's alpha is known exactly. The model only decides how person-like the sprites look (the official
MODNet gives clean cut-outs with hair; a weak model gives blobs). Anything with `name` and `alpha(rgb)` is a
cutter; `CheckpointCutter` runs a MODNet checkpoint at the official input policy (short side 512, sides floored
to multiples of 32, area resize; ZHKKKe/MODNet demo/image_matting/colab/inference.py).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from . import photos

CLEAN = 0.02  # alpha below CLEAN -> 0, above 1 - CLEAN -> 1: a model's faint haze would carry the old background
MARGIN = 4    # pixels kept around the alpha's bounding box


class Cutter(Protocol):
    name: str  # identifies the cut-outs (cache key, metadata)

    def alpha(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> HxW float32 alpha in [0, 1]."""


@dataclass(frozen=True)
class CheckpointCutter:
    """A MODNet checkpoint (3 channels, or 4 with an empty previous alpha) as a cutter. Picklable (a path), so
    DataLoader workers rebuild it; the model is loaded once per process."""

    checkpoint: str
    short_side: int = 512  # the official policy's; tests use a smaller one

    @property
    def name(self) -> str:
        return f"checkpoint:{_weights_sha(self.checkpoint)[:16]}@{self.short_side}"

    def alpha(self, rgb: np.ndarray) -> np.ndarray:
        import torch

        from .. import preprocess

        model = _model(self.checkpoint)
        prep = preprocess.prepare(rgb, "official", preprocess.official_size(*rgb.shape[:2], self.short_side))
        x = torch.from_numpy(prep.tensor)
        if model.in_channels == 4:
            x = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
        with torch.no_grad():
            a = model(x).numpy()
        return preprocess.restore(a, prep)


@functools.lru_cache(maxsize=4)
def _model(checkpoint: str):
    from ..model.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint).model.eval()


@functools.lru_cache(maxsize=16)
def _weights_sha(checkpoint: str) -> str:
    from ..model.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint).weights_sha256


@dataclass(frozen=True)
class Sprite:
    """A person cut out of a photo: colour and alpha cropped to the alpha's bounding box (+ MARGIN)."""

    name: str
    rgb: np.ndarray    # hxwx3 float64, 0..255 (the photo's own pixels)
    alpha: np.ndarray  # hxw float64 in [0, 1]


def clean(alpha: np.ndarray, eps: float = CLEAN) -> np.ndarray:
    """Snap near-0 and near-1 values (a model's haze and near-certain pixels) to exactly 0 and 1."""
    a = np.asarray(alpha, np.float64).clip(0, 1)
    a = np.where(a < eps, 0.0, a)
    return np.where(a > 1 - eps, 1.0, a)


def sprite_from(name: str, rgb: np.ndarray, alpha: np.ndarray) -> Sprite:
    a = clean(alpha)
    ys, xs = np.nonzero(a > 0)
    if len(ys) == 0:
        raise ValueError(f"photo {name!r}: the cutter found no person (alpha all below {CLEAN})")
    h, w = a.shape
    y0, y1 = max(0, ys.min() - MARGIN), min(h, ys.max() + 1 + MARGIN)
    x0, x1 = max(0, xs.min() - MARGIN), min(w, xs.max() + 1 + MARGIN)
    return Sprite(name, np.asarray(rgb[y0:y1, x0:x1], np.float64), a[y0:y1, x0:x1])


_SPRITES: dict[tuple[str, str], Sprite] = {}


def sprite(cutter: Cutter, name: str) -> Sprite:
    """The person in photo `name` (photos.PEOPLE) cut out by `cutter`; computed once per process and cutter."""
    key = (cutter.name, name)
    if key not in _SPRITES:
        rgb = photos.load(name)
        _SPRITES[key] = sprite_from(name, rgb, cutter.alpha(rgb))
    return _SPRITES[key]


def default_checkpoint() -> Path | None:
    """The official model's checkpoint as `make install` leaves it (official.py), or None if it is not there."""
    from .. import official
    from ..errors import MatteconvError

    try:
        return official.official_checkpoint()
    except MatteconvError:
        return None
