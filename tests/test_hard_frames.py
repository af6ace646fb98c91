"""golden/hard is reproducible: `matteconv golden hard` makes the committed inputs bit for bit, and the frames
are what their names say (flat, black, clipped, low contrast, an empty frame after the figure leaves)."""
from __future__ import annotations

import numpy as np
from conftest import ROOT

from matteconv import hard_frames
from matteconv.verify.golden import load_golden

HARD = ROOT / "golden" / "hard"


def _within_one_lsb(committed: np.ndarray, made: np.ndarray, name: str) -> None:
    """The committed PNG was made on another CPU: resizes and blends run in float on SIMD kernels that may round
    a value sitting at .5 the other way, so regeneration may differ by 1 uint8 LSB, never more."""
    assert committed.shape == made.shape, name
    assert int(np.abs(committed.astype(np.int16) - made.astype(np.int16)).max()) <= 1, name


def test_committed_stills_are_the_generators_output():
    gset = load_golden(HARD / "stills")
    made = hard_frames.stills(gset.size)
    assert [it.name for it in gset.items] == list(made)
    for it in gset.items:
        _within_one_lsb(it.image(), made[it.name], it.name)
    s = made
    assert (s["grey128"] == 128).all() and (s["black"] == 0).all()
    assert (s["near_flat"] != 128).sum() == 3 and s["near_flat"].max() == 129  # one pixel, three channels
    assert 1.5 < s["grey128_noise"].std() < 2.5
    assert s["dark_room"].mean() < 12 and s["low_contrast"].std() < 12
    assert (s["backlit"] == 255).all(axis=2).mean() > 0.3 and (s["overexposed"] == 255).any(axis=2).mean() > 0.3
    assert gset.in_channels == 3 and gset.size == (288, 512)


def test_committed_clip_enters_stays_leaves_and_stays_empty():
    gset = load_golden(HARD / "clip")
    made = dict(hard_frames.clip(gset.size))
    assert [it.name for it in gset.items] == list(made) and gset.in_channels == 4
    for it in gset.items:
        _within_one_lsb(it.image(), made[it.name], it.name)
    frames = list(made.values())
    phases = [name.split("_", 1)[1] for name in made]
    assert phases == ["empty", "enter", "enter", "stay", "leave", "leave", "empty", "empty", "empty"]
    empty = [f for f, p in zip(frames, phases) if p == "empty"]
    # Bitwise is right here: the same function (hard_frames._composite) in this process on the same background, and
    # where alpha is 0 it computes 0 * fg + 1 * bg, which IEEE arithmetic gives exactly as bg on any CPU; the figure's
    # frames differ from it by whole pixels of figure, not by rounding
    assert all(np.array_equal(e, empty[0]) for e in empty)  # the background alone, before and after
    assert np.array_equal(frames[5], empty[0])  # the last "leave" frame: the figure is fully out
    assert all(not np.array_equal(f, empty[0]) for f in frames[1:5])
