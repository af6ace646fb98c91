"""Clips of real people: a person cut out of a package photo, moved over a real background along a random
trajectory (position, scale, rotation), entering and leaving the frame, under the seed's lighting.

A clip is a `ClipSpec` (a pure function of seed, index and split: which photos, keyframes, colour, light,
noise) rendered with a cutter's sprite. Frame t composites the sprite warped to its pose:

    alpha_t = warp(a),  F_t = warp(a * F) / alpha_t,  image_t = rint(alpha_t * (F_t + L) + (1 - alpha_t) * (B + L) + n_t)

with L the clip's light field (the seed's point or line light, on F and B alike; or a backlight on B only) and n_t
the frame's sensor noise. So the label alpha_t is the composite's alpha exactly: the image differs from the
exact composite by the noise and the rounding to uint8 only. Whole photos are held out (photos.py): a spec of
split `held_out` uses only held-out people and backgrounds.

The person's bottom edge stays at or below the frame's bottom (a portrait photo cuts the person there), so
people walk in from the sides, stand, sway, bob and leave; a keyframe outside the frame makes a blank stretch.
Independent of training: train/ imports this module, never the other way round.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from .. import seed_augment
from . import photos
from .cutout import Cutter, Sprite, sprite

LIGHTS = ("none", "front", "back")


@dataclass(frozen=True)
class Key:
    """A keyframe of the person's pose."""

    t: float        # frame index (fractional)
    cx: float       # bottom-centre x as a fraction of the frame width (used when side == 0)
    side: int       # -1 / +1: fully outside the frame on the left / right; 0: at cx
    height: float   # sprite height / frame height
    sink: float     # bottom edge below the frame's bottom, fraction of the frame height
    angle: float    # degrees about the bottom centre (counter-clockwise)


@dataclass(frozen=True)
class ClipSpec:
    seed: int
    index: int
    split: str
    person: str
    background: str
    frames: int
    keys: tuple[Key, ...]
    flip: bool
    bg_box: tuple[float, float, float]   # background crop: (size fraction, y fraction, x fraction)
    fg_gain: tuple[float, float, float]  # per-channel gain on the person
    bg_gain: tuple[float, float, float]
    light: str                           # LIGHTS
    noise: float                         # sensor noise sigma, 0..255 levels


@dataclass
class Frame:
    image: np.ndarray  # HxWx3 uint8 RGB
    alpha: np.ndarray  # HxW float32: the label, the composite's alpha
    fg: np.ndarray     # HxWx3 float64 lit foreground colour (0 where alpha is 0)
    bg: np.ndarray     # HxWx3 float64 lit background
    present: bool      # any alpha above 0 in the frame


def rng_for(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent generator per (seed, clip, stream): clips do not depend on order, batch or process."""
    return np.random.default_rng([seed, index, stream, 0x70E0])


def random_spec(seed: int, index: int, split: str, frames: int = 40, p_light: float = 0.5,
                light: str | None = None, people: tuple[str, ...] | None = None,
                backgrounds: tuple[str, ...] | None = None) -> ClipSpec:
    """The clip `index` of `split` for `seed`. `light` forces a lighting mode (e.g. "back" for the backlight
    case); by default the seed's light with probability `p_light`. Raises ValueError when no photo of the split
    is installed."""
    rng = rng_for(seed, index, 0)
    people = people or photos.available(photos.PEOPLE, split)
    backgrounds = backgrounds or photos.available(photos.BACKGROUNDS, split)
    if not people or not backgrounds:
        raise ValueError(f"no installed {split} {'people' if not people else 'backgrounds'} (photos.py)")
    person = people[rng.integers(len(people))]
    background = backgrounds[rng.integers(len(backgrounds))]
    n_keys = int(rng.integers(2, 6))
    times = np.sort(np.concatenate([[0.0, frames - 1.0], rng.uniform(0, frames - 1, n_keys - 2)]))
    base_h, base_sink = rng.uniform(0.6, 1.1), rng.uniform(0.0, 0.15)
    keys: list[Key] = []
    for t in times:
        if keys and rng.random() < 0.3:  # hold the last pose: standing still
            keys.append(Key(float(t), *(getattr(keys[-1], f) for f in ("cx", "side", "height", "sink", "angle"))))
            continue
        side = int(rng.choice([-1, 1])) if rng.random() < 0.15 else 0
        keys.append(Key(float(t), float(rng.uniform(0.2, 0.8)), side, float(base_h * rng.uniform(0.9, 1.1)),
                        float(np.clip(base_sink + rng.normal(0, 0.03), 0, 0.25)), float(rng.uniform(-8, 8))))
    if light is None:
        light = ("front" if rng.random() < 0.5 else "back") if rng.random() < p_light else "none"
    elif light not in LIGHTS:
        raise ValueError(f"unknown light {light!r} (choose from {', '.join(LIGHTS)})")
    return ClipSpec(seed, index, split, person, background, frames, tuple(keys), bool(rng.random() < 0.5),
                    (float(rng.uniform(0.5, 1.0)), float(rng.random()), float(rng.random())),
                    tuple(float(v) for v in rng.uniform(0.8, 1.2) * rng.uniform(0.92, 1.08, 3)),
                    tuple(float(v) for v in rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3)),
                    light, float(rng.uniform(0.0, 3.0)))


def pose(spec: ClipSpec, t: float) -> tuple[Key, Key, float]:
    """The keyframes around frame t and the eased weight of the second (smoothstep); constant outside them."""
    keys = spec.keys
    if t <= keys[0].t:
        return keys[0], keys[0], 0.0
    for a, b in zip(keys, keys[1:]):
        if t <= b.t:
            u = 0.0 if b.t == a.t else (t - a.t) / (b.t - a.t)
            return a, b, u * u * (3 - 2 * u)
    return keys[-1], keys[-1], 0.0


def _x(k: Key, sprite_w: float, sprite_h: float, w: int) -> float:
    """A key's bottom-centre x in pixels; off-frame keys sit half the rotated sprite's width plus 2 pixels outside
    (rotated by the key's angle about the bottom centre, the sprite reaches sw/2 cos + sh sin sideways)."""
    a = np.radians(abs(k.angle))
    reach = sprite_w / 2 * np.cos(a) + sprite_h * np.sin(a) + 2
    if k.side < 0:
        return -reach
    if k.side > 0:
        return w + reach
    return k.cx * w


def _placed(spec: ClipSpec, spr: Sprite, t: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied colour, alpha) of the sprite at frame t, warped into the HxW frame (float64)."""
    ka, kb, u = pose(spec, t)
    mix = lambda name: getattr(ka, name) + (getattr(kb, name) - getattr(ka, name)) * u  # noqa: E731
    scale = mix("height") * h / spr.alpha.shape[0]
    sh, sw = max(1, round(spr.alpha.shape[0] * scale)), max(1, round(spr.alpha.shape[1] * scale))
    a = spr.alpha[:, ::-1] if spec.flip else spr.alpha
    rgb = spr.rgb[:, ::-1] if spec.flip else spr.rgb
    premult = np.ascontiguousarray(rgb * a[..., None] * np.array(spec.fg_gain))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    a_s = cv2.resize(np.ascontiguousarray(a), (sw, sh), interpolation=interp)
    p_s = cv2.resize(premult, (sw, sh), interpolation=interp)
    xa, xb = _x(ka, sw, sh, w), _x(kb, sw, sh, w)
    cx = xa + (xb - xa) * u
    angle = mix("angle")
    # rotating about the bottom centre lifts a bottom corner by sw/2 sin|angle|: keep it below the frame too
    by = h + max(mix("sink") * h, sw / 2 * np.sin(np.radians(abs(angle))) + 1)
    m = cv2.getRotationMatrix2D((sw / 2, float(sh)), angle, 1.0)
    m[:, 2] += (cx - sw / 2, by - sh)
    alpha = cv2.warpAffine(a_s, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    colour = cv2.warpAffine(p_s, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(0, 0, 0))
    alpha = np.clip(alpha, 0.0, 1.0)
    alpha[alpha < 1e-6] = 0.0
    return np.where(alpha[..., None] > 0, colour, 0.0), alpha


def background(spec: ClipSpec, h: int, w: int) -> np.ndarray:
    """The clip's static background: a crop of its photo with the frame's aspect, resized, colour-graded."""
    img = photos.load(spec.background)
    ih, iw = img.shape[:2]
    frac, fy, fx = spec.bg_box
    ch = max(8, int(min(ih, iw * h / w) * frac))
    cw = max(8, int(ch * w / h))
    y, x = int(fy * (ih - ch)), int(fx * (iw - cw))
    crop = img[y:y + ch, x:x + cw].astype(np.float64)
    interp = cv2.INTER_AREA if ch >= h else cv2.INTER_LINEAR
    return np.clip(cv2.resize(crop, (w, h), interpolation=interp) * np.array(spec.bg_gain), 0, 255)


def light_field(spec: ClipSpec, h: int, w: int) -> np.ndarray:
    """The clip's light (HxWx3 additive field, fixed over the clip): the seed's point or line light for
    "front"; for "back", a strong point light behind the person (centre of the frame's upper half)."""
    rng = rng_for(spec.seed, spec.index, 1)
    if spec.light == "back":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        cy, cx = rng.uniform(0.2, 0.5) * h, rng.uniform(0.3, 0.7) * w
        sigma = rng.uniform(0.25, 0.45) * max(h, w)
        field = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
        return rng.uniform(150, 230) * field[..., None] * rng.uniform(0.85, 1.0, 3)
    return seed_augment.light_field(rng, h, w)


class Clip:
    """A spec rendered with a cutter's sprite at (h, w); frames on demand, each a pure function of (spec, t)."""

    def __init__(self, spec: ClipSpec, cutter: Cutter, size: tuple[int, int]):
        self.spec, self.size = spec, size
        self.sprite = sprite(cutter, spec.person)
        h, w = size
        self.bg = background(spec, h, w)
        self.field = light_field(spec, h, w) if spec.light != "none" else None

    def __len__(self) -> int:
        return self.spec.frames

    def alpha(self, t: int) -> np.ndarray:
        """The label of frame t (HxW float32), without rendering the image."""
        return _placed(self.spec, self.sprite, t, *self.size)[1].astype(np.float32)

    def frame(self, t: int) -> Frame:
        h, w = self.size
        premult, alpha = _placed(self.spec, self.sprite, t, h, w)
        a = alpha[..., None]
        fg = np.where(a > 0, np.clip(premult / np.maximum(a, 1e-12), 0, 255), 0.0)  # the gain may pass 255
        bg = self.bg
        if self.field is not None:
            bg = np.clip(bg + self.field, 0, 255)
            if self.spec.light == "front":  # the seed's: the same light on the person
                fg = np.where(a > 0, np.clip(fg + self.field, 0, 255), 0.0)
        exact = a * fg + (1 - a) * bg
        noise = rng_for(self.spec.seed, self.spec.index, 100 + t).normal(0, self.spec.noise, exact.shape)
        image = np.clip(np.rint(exact + noise), 0, 255).astype(np.uint8)
        return Frame(image, alpha.astype(np.float32), fg, bg, bool((alpha > 0).any()))

    def frames(self) -> list[Frame]:
        return [self.frame(t) for t in range(len(self))]


@dataclass
class Item:
    """One training sample in train.data's shape: frame t, its label, and the seed's previous alpha."""

    image: np.ndarray          # HxWx3 uint8
    alpha: np.ndarray          # HxW float32
    prev: np.ndarray | None    # HxW float32 (label of frame t-1, blanked or jittered), None = zeros


def training_item(seed: int, index: int, cutter: Cutter, size: tuple[int, int], p_blank: float = seed_augment.P_BLANK,
                  p_affine: float = seed_augment.P_AFFINE, p_light: float = 0.5, frames: int = 40) -> Item:
    """Sample `index` of the training stream: a random frame of training clip `index` with the label of the
    frame before as the previous alpha, through the seed's recipe (blank 30%, affine jitter)."""
    spec = random_spec(seed, index, photos.TRAIN, frames, p_light)
    rng = rng_for(seed, index, 2)
    t = int(rng.integers(1, frames))
    clip = Clip(spec, cutter, size)
    f = clip.frame(t)
    return Item(f.image, f.alpha, seed_augment.previous_alpha(rng, clip.alpha(t - 1), p_blank, p_affine))


def leaving(spec: ClipSpec, at: float = 0.6) -> ClipSpec:
    """The same clip with the person walking out of the frame by `at` of its length and not coming back: the
    frames after are empty (the seed's failure case: a ghost kept alive by the previous alpha)."""
    t_out = at * (spec.frames - 1)
    keep = [k for k in spec.keys if k.t < t_out * 0.7]
    side = -1 if keep[-1].cx < 0.5 else 1
    gone = [dataclasses.replace(keep[-1], t=t_out, side=side), dataclasses.replace(keep[-1], t=spec.frames - 1.0,
                                                                                   side=side)]
    return dataclasses.replace(spec, keys=tuple(keep + gone))


def held_out(seed: int, count: int, cutter: Cutter, size: tuple[int, int], frames: int = 40,
             light: str | None = "none", leave: bool = False) -> list[Clip]:
    """`count` evaluation clips from held-out people and backgrounds only (no light unless asked); with `leave`,
    the person leaves the frame for good (`leaving`)."""
    specs = [random_spec(seed, i, photos.HELD_OUT, frames, light=light) for i in range(count)]
    return [Clip(leaving(s) if leave else s, cutter, size) for s in specs]
