"""Real photos that ship inside installed packages: people to cut out, and scenes to put them in front of.

Nothing is downloaded. Each photo has a fixed split, so whole photos (never crops of one photo) are held out:
a clip for evaluation uses only held-out people over held-out backgrounds, and training never sees them. A photo
whose package is not installed is simply absent; the split of the others does not move.

Sources: scikit-image's `skimage/data/*.png|jpg` (BSD-3; the astronaut is NASA's public-domain portrait of
Eileen Collins, the cameraman is MIT's), matplotlib's `mpl-data/sample_data/grace_hopper.jpg` (the US Navy's
public-domain portrait of Grace Hopper), from the matplotlib package or Debian's python-matplotlib-data.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

TRAIN, HELD_OUT = "train", "held_out"
SPLITS = (TRAIN, HELD_OUT)

# name -> (split, where). Held out: the cameraman (the only person always installed besides the astronaut).
PEOPLE = {
    "astronaut": (TRAIN, ("skimage", "data/astronaut.png")),
    "grace_hopper": (TRAIN, ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")),
    "camera": (HELD_OUT, ("skimage", "data/camera.png")),
}
BACKGROUNDS = {
    "coffee": (TRAIN, ("skimage", "data/coffee.png")),
    "chelsea": (TRAIN, ("skimage", "data/chelsea.png")),
    "brick": (TRAIN, ("skimage", "data/brick.png")),
    "grass": (TRAIN, ("skimage", "data/grass.png")),
    "motorcycle": (TRAIN, ("skimage", "data/motorcycle_left.png")),
    "rocket": (HELD_OUT, ("skimage", "data/rocket.jpg")),
    "gravel": (HELD_OUT, ("skimage", "data/gravel.png")),
}
# Debian ships matplotlib's data outside the Python package.
SYSTEM_DATA = {"matplotlib": Path("/usr/share/matplotlib")}


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # finds the package without importing it (matplotlib: 0.5 s)
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    if package in SYSTEM_DATA:
        roots.append(SYSTEM_DATA[package])
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    return None


def path(name: str) -> Path | None:
    """Where the photo `name` (a key of PEOPLE or BACKGROUNDS) is installed, or None."""
    table = PEOPLE if name in PEOPLE else BACKGROUNDS
    if name not in table:
        raise ValueError(f"unknown photo {name!r} (people: {', '.join(PEOPLE)}; backgrounds: {', '.join(BACKGROUNDS)})")
    return _package_file(*table[name][1])


def available(table: dict, split: str) -> tuple[str, ...]:
    """Names in `table` (PEOPLE or BACKGROUNDS) of that split whose files are installed, in table order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    return tuple(n for n, (s, _) in table.items() if s == split and path(n) is not None)


@functools.lru_cache(maxsize=None)
def load(name: str) -> np.ndarray:
    """The photo as HxWx3 uint8 RGB (grey photos as three equal channels), read losslessly from its file."""
    p = path(name)
    if p is None:
        raise FileNotFoundError(f"photo {name!r}: its package is not installed")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"{p}: not a readable image")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    else:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    img.setflags(write=False)
    return img
