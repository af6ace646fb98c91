"""Hard camera frames, made deterministically from photos inside scikit-image: what a camera sends besides
well-lit portraits (golden/hard).

A camera sends a blank wall before someone walks in, a dark room, a lens cap, a blown-out window behind a
person; the seed article names backlight and blank frames as where matting fails. Flat frames are also where
fp32 arithmetic is most fragile: a grey wall makes channels whose mean is far from zero against a tiny spread
inside IBNorm (docs/design.md section 9), which is how onnxruntime's InstanceNormalization was found 3.5e-3 off.

The people in these frames are the synthetic figures the reference checkpoints were trained on (train/synth.py:
a figure textured from scikit-image photos over another photo), so the references are confident on them; the
frames differ only in exposure, contrast, noise and content. Every frame is a pure function of the code (fixed
seeds, no clock, no downloads): `matteconv golden hard` rewrites golden/hard bit for bit.

Shapes: RGB uint8, H x W x 3 at the size asked (default 288x512, a 16:9 camera frame at a deployable size).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

SIZE = (288, 512)
SEED = 1717
CLIP_BACKGROUNDS = ("brick", "coffee", "rocket", "grass")
# The temporal clip: (phase, frames). The figure walks in from the left, stays (waving), walks out to the
# right, and the frame stays empty: the seed's blank-frame case for the previous-alpha feedback.
CLIP_PHASES = (("empty", 1), ("enter", 2), ("stay", 1), ("leave", 2), ("empty", 3))


def _scene_parts(size: tuple[int, int]):
    """The figure (centred), its foreground colour and the background photo, float64 RGB (train/synth.py)."""
    from .train import synth

    rng = synth.rng_for(SEED, 0)
    h, w = size
    fig = replace(synth.random_figure(rng), cx=0.5)
    _, skin_a, hair_a = synth.render(fig, h, w)
    fg = synth.foreground_colour(rng, fig, skin_a, hair_a)
    bg = synth.colour_jitter(rng, synth.photo_crop(rng, h, w, names=CLIP_BACKGROUNDS))
    return fig, fg, bg


def _composite(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return a * fg + (1 - a) * bg


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _sensor_noise(shape, sigma: float, stream: int) -> np.ndarray:
    return np.random.default_rng([SEED, stream]).normal(0.0, sigma, shape)


def stills(size: tuple[int, int] = SIZE) -> dict[str, np.ndarray]:
    """The hard stills for the 3-channel model, by name (in this order):

    grey128        a flat grey wall, every pixel 128 (the frame that found onnxruntime's InstanceNorm error)
    grey128_noise  the same wall with sensor noise (Gaussian, sigma 2 levels)
    near_flat      grey 128 with one pixel at 129
    black          lens cap: every pixel 0
    dark_room      a person in a dark room: the scene scaled to 6% brightness plus noise (sigma 1.5)
    backlit        a person (underexposed, 45%) in front of a window clipped to 255
    overexposed    a person, exposure x2.5 and clipped to 255
    low_contrast   a person in fog: the scene's contrast cut to 12% around grey 128
    no_person      the background photo alone
    """
    from .train import synth

    h, w = size
    fig, fg, bg = _scene_parts(size)
    alpha, _, _ = synth.render(fig, h, w)
    img = _composite(alpha, fg, bg)
    near = np.full((h, w, 3), 128, np.uint8)
    near[h // 3, w // 3] = 129
    # backlit: a bright window (clipped) fills the upper two thirds behind the person; the person is underexposed
    window = np.where(np.arange(h)[:, None, None] < 2 * h // 3, 255.0, bg * 0.8)
    backlit = _composite(alpha, fg * 0.45, window)
    return {
        "grey128": np.full((h, w, 3), 128, np.uint8),
        "grey128_noise": _u8(128 + _sensor_noise((h, w, 3), 2.0, 1)),
        "near_flat": near,
        "black": np.zeros((h, w, 3), np.uint8),
        "dark_room": _u8(img * 0.06 + _sensor_noise((h, w, 3), 1.5, 2)),
        "backlit": _u8(backlit),
        "overexposed": _u8(img * 2.5),
        "low_contrast": _u8(128 + (img - 128) * 0.12),
        "no_person": _u8(bg),
    }


def clip_positions(phases=CLIP_PHASES) -> list[tuple[str, float | None]]:
    """(phase, figure centre as a fraction of the width, None when out of frame) per frame of `clip`."""
    out: list[tuple[str, float | None]] = []
    for phase, n in phases:
        for k in range(n):
            if phase == "empty":
                out.append((phase, None))
            elif phase == "enter":
                out.append((phase, -0.1 + 0.6 * (k + 1) / n))  # from off-frame left to the centre
            elif phase == "stay":
                out.append((phase, 0.5))
            else:
                out.append((phase, 0.5 + 1.0 * (k + 1) / n))  # to off-frame right (the last one fully out)
    return out


def clip(size: tuple[int, int] = SIZE, phases=CLIP_PHASES) -> list[tuple[str, np.ndarray]]:
    """The temporal clip: (name, frame) with names `NN_phase`; a fixed background photo, the figure of `stills`
    walking in, staying (waving), walking out, then empty frames. The frame where it leaves has no figure pixel
    left; the empty frames equal the background exactly (image = background where alpha is 0)."""
    from .train import synth

    h, w = size
    fig, fg, bg = _scene_parts(size)
    frames = []
    for t, (phase, cx) in enumerate(clip_positions(phases)):
        if cx is None:
            alpha = np.zeros((h, w))
        else:
            alpha, _, _ = synth.render(fig.moved(dx=cx - 0.5, arm_delta=15 * np.sin(t / 2)), h, w)
        frames.append((f"{t:02d}_{phase}", _u8(_composite(alpha, _moved_fg(fg, cx, w), bg))))
    return frames


def _moved_fg(fg: np.ndarray, cx: float | None, w: int) -> np.ndarray:
    """The figure's foreground colour carried along with it (a horizontal shift, edges repeated)."""
    if cx is None:
        return fg
    dx = int(round((cx - 0.5) * w))
    idx = np.clip(np.arange(w) - dx, 0, w - 1)
    return fg[:, idx]
