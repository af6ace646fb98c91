"""Built-in synthetic matting data with exactly known alpha: person-like figures composited over photos.

Why synthetic: nothing may be downloaded, and a reference network only has to behave like a trained matting
model (saturated mattes away from the outline, soft hair and motion blur), not to be a production model. Every
sample is a pure function of (seed, index): a run is repeatable, resumable and shardable across processes.

A figure is drawn with anti-aliased shapes on a 2x canvas and area-downsampled, so its outline has fractional
alpha; hair strands are 1-pixel curves (fractional coverage and opacity); motion blur smears the alpha. The
foreground colour F and background B are photo crops; the seed's lighting augmentation (a point or a line light)
is added to F and B alike before compositing, so image = alpha*F + (1-alpha)*B holds exactly before rounding.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..seed_augment import light_field  # noqa: F401 - used here and by the temporal augmentations

SUPERSAMPLE = 2
# Photos that ship inside scikit-image itself (no pooch download).
TEXTURES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel",
            "brick", "grass", "gravel", "moon", "coins", "clock", "cell", "camera", "page", "text")
SKIN = np.array([[224, 172, 138], [198, 134, 96], [141, 85, 54], [255, 205, 170], [170, 110, 75]], np.float64)
HAIR = np.array([[25, 20, 18], [60, 40, 25], [110, 75, 40], [200, 170, 110], [90, 90, 90]], np.float64)


@functools.lru_cache(maxsize=None)
def texture(name: str) -> np.ndarray:
    """A built-in photo as RGB uint8."""
    from skimage import data

    img = getattr(data, name)()
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def rng_for(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Independent generator per sample: results do not depend on batch size, order or process count."""
    return np.random.default_rng([seed, index, stream])


def photo_crop(rng: np.random.Generator, h: int, w: int, names=TEXTURES) -> np.ndarray:
    """A random crop of a random built-in photo, resized to (h, w), randomly flipped; float64 RGB."""
    img = texture(names[rng.integers(len(names))])
    ih, iw = img.shape[:2]
    frac = rng.uniform(0.4, 1.0)
    ch, cw = max(8, int(ih * frac)), max(8, int(iw * frac))
    y, x = rng.integers(0, ih - ch + 1), rng.integers(0, iw - cw + 1)
    crop = cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def colour_jitter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Brightness, contrast, saturation and per-channel gain."""
    mean = img.mean(axis=(0, 1), keepdims=True)
    grey = img.mean(axis=2, keepdims=True)
    out = grey + (img - grey) * rng.uniform(0.6, 1.4)           # saturation
    out = mean.mean() + (out - mean.mean()) * rng.uniform(0.7, 1.3)  # contrast
    out = out * rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, size=3)  # brightness, white balance
    return np.clip(out, 0, 255)


@dataclass(frozen=True)
class Figure:
    """A person-like figure: head, neck, shoulders and torso, two arms, hair; sizes relative to the frame height."""

    cx: float          # horizontal centre, fraction of width
    head_y: float      # head centre, fraction of height
    head_r: float      # head radius, fraction of height
    shoulder: float    # half shoulder width in head radii
    arm_angles: tuple  # (left, right) in degrees from straight down
    tilt: float        # head tilt, degrees
    strands: int
    hair_seed: int
    skin: tuple
    hair: tuple

    def moved(self, dx: float = 0.0, dy: float = 0.0, arm_delta: float = 0.0) -> "Figure":
        left, right = self.arm_angles
        return replace(self, cx=self.cx + dx, head_y=self.head_y + dy,
                       arm_angles=(left + arm_delta, right - arm_delta))


def random_figure(rng: np.random.Generator) -> Figure:
    return Figure(
        cx=rng.uniform(0.3, 0.7), head_y=rng.uniform(0.25, 0.45), head_r=rng.uniform(0.09, 0.16),
        shoulder=rng.uniform(2.6, 3.6), arm_angles=(rng.uniform(5, 70), rng.uniform(5, 70)),
        tilt=rng.uniform(-15, 15), strands=int(rng.integers(0, 120)), hair_seed=int(rng.integers(1 << 30)),
        skin=tuple(SKIN[rng.integers(len(SKIN))] * rng.uniform(0.85, 1.1)),
        hair=tuple(HAIR[rng.integers(len(HAIR))]))


def _capsule(canvas: np.ndarray, p0, p1, thickness: float) -> None:
    cv2.line(canvas, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 255, max(1, int(thickness)), cv2.LINE_AA)


def render(fig: Figure, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, skin mask, hair alpha) of the figure at (h, w), each float64 in [0, 1].
    Solid parts are anti-aliased on a 2x canvas then area-downsampled; hair strands are drawn at 1x width 1."""
    s = SUPERSAMPLE
    H, W = h * s, w * s
    r = fig.head_r * H
    cx, hy = fig.cx * W, fig.head_y * H
    body = np.zeros((H, W), np.uint8)
    skin = np.zeros((H, W), np.uint8)
    cv2.ellipse(skin, (int(cx), int(hy)), (int(r * 0.82), int(r)), fig.tilt, 0, 360, 255, -1, cv2.LINE_AA)
    neck_top, neck_bot = hy + r * 0.7, hy + r * 1.45
    cv2.rectangle(skin, (int(cx - r * 0.38), int(neck_top)), (int(cx + r * 0.38), int(neck_bot)), 255, -1)
    sh = fig.shoulder * r
    torso = np.array([[cx - r * 0.5, neck_bot - r * 0.15], [cx + r * 0.5, neck_bot - r * 0.15],
                      [cx + sh, neck_bot + r * 0.55], [cx + sh * 0.95, H * 1.2], [cx - sh * 0.95, H * 1.2],
                      [cx - sh, neck_bot + r * 0.55]], np.int32)
    cv2.fillPoly(body, [torso], 255, cv2.LINE_AA)
    for side, angle in ((-1, fig.arm_angles[0]), (1, fig.arm_angles[1])):
        p0 = np.array([cx + side * (sh - r * 0.3), neck_bot + r * 0.6])
        a = np.deg2rad(angle)
        p1 = p0 + 3.2 * r * np.array([side * np.sin(a), np.cos(a)])
        _capsule(body, p0, p1, r * 0.75)
        _capsule(skin, p1 - (p1 - p0) * 0.15, p1 + (p1 - p0) * 0.1, r * 0.6)  # hand
    solid = np.maximum(body, skin)
    down = lambda m: cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0  # noqa: E731
    alpha, skin_a = down(solid), down(skin)

    hair = np.zeros((h, w), np.float64)
    hr = np.random.default_rng(fig.hair_seed)
    for _ in range(fig.strands):  # strands leave the top half of the head outwards
        t = hr.uniform(np.pi * 1.05, np.pi * 1.95)
        x0, y0 = cx / s + np.cos(t) * r / s * 0.8, hy / s + np.sin(t) * r / s
        length = hr.uniform(0.3, 1.1) * r / s
        bend = hr.uniform(-0.6, 0.6)
        pts = [(x0 + np.cos(t + bend * k / 4) * length * k / 4, y0 + np.sin(t + bend * k / 4) * length * k / 4)
               for k in range(5)]
        layer = np.zeros((h, w), np.uint8)
        cv2.polylines(layer, [np.array(pts, np.int32)], False, 255, 1, cv2.LINE_AA)
        hair = np.maximum(hair, layer / 255.0 * hr.uniform(0.3, 0.9))
    alpha = np.maximum(alpha, hair)
    return alpha, skin_a, hair


def motion_blur(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """A linear motion-blur kernel of random length and angle applied to the alpha (fractional edges)."""
    n = int(rng.integers(3, 12)) | 1
    k = np.zeros((n, n), np.float64)
    k[n // 2] = 1.0
    rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0)
    k = cv2.warpAffine(k, rot, (n, n))
    return cv2.filter2D(alpha, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


@dataclass
class Sample:
    image: np.ndarray  # HxWx3 uint8 RGB composite
    alpha: np.ndarray  # HxW float32 in [0, 1]
    fg: np.ndarray     # HxWx3 float64 foreground colour (lit)
    bg: np.ndarray     # HxWx3 float64 background (lit)


def foreground_colour(rng: np.random.Generator, fig: Figure, skin_a: np.ndarray, hair_a: np.ndarray) -> np.ndarray:
    """Clothes from a photo crop, skin tone on head/neck/hands (with the photo's texture), hair colour on strands."""
    h, w = skin_a.shape
    clothes = colour_jitter(rng, photo_crop(rng, h, w))
    grain = photo_crop(rng, h, w).mean(axis=2, keepdims=True) / 255.0
    skin = np.clip(np.array(fig.skin) * (0.85 + 0.3 * grain), 0, 255)
    fg = clothes * (1 - skin_a[..., None]) + skin * skin_a[..., None]
    hair_w = np.clip(hair_a * 3, 0, 1)[..., None]
    return fg * (1 - hair_w) + np.array(fig.hair) * hair_w


def compose(rng: np.random.Generator, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray,
            light_p: float = 0.5) -> Sample:
    """Add the same light to F and B, then composite; the image is the exact composite rounded to uint8."""
    if rng.random() < light_p:
        field = light_field(rng, *alpha.shape)
        fg, bg = np.clip(fg + field, 0, 255), np.clip(bg + field, 0, 255)
    a = alpha[..., None]
    image = np.clip(np.rint(a * fg + (1 - a) * bg), 0, 255).astype(np.uint8)
    return Sample(image, alpha.astype(np.float32), fg, bg)


def sample(seed: int, index: int, size: tuple[int, int], light_p: float = 0.5) -> Sample:
    """One synthetic matting sample (a pure function of its arguments)."""
    rng = rng_for(seed, index)
    h, w = size
    fig = random_figure(rng)
    alpha, skin_a, hair_a = render(fig, h, w)
    if rng.random() < 0.3:
        alpha = motion_blur(rng, alpha)
    fg = foreground_colour(rng, fig, skin_a, hair_a)
    bg = colour_jitter(rng, photo_crop(rng, h, w))
    if rng.random() < 0.3:  # shallow depth of field
        bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(1, 4))
    return compose(rng, alpha, fg, bg, light_p)


def pair(seed: int, index: int, size: tuple[int, int], light_p: float = 0.5) -> tuple[Sample, np.ndarray]:
    """A sample and the figure's alpha one frame earlier (it moved): what the temporal model gets as channel 3."""
    rng = rng_for(seed, index, stream=1)
    h, w = size
    fig = random_figure(rng)
    dx, dy, arm = rng.normal(0, 0.02), rng.normal(0, 0.01), rng.normal(0, 4)
    alpha, skin_a, hair_a = render(fig, h, w)
    prev, _, _ = render(fig.moved(-dx, -dy, -arm), h, w)
    fg = foreground_colour(rng, fig, skin_a, hair_a)
    bg = colour_jitter(rng, photo_crop(rng, h, w))
    return compose(rng, alpha, fg, bg, light_p), prev.astype(np.float32)


def clip(seed: int, frames: int, size: tuple[int, int], enter: bool = True,
         speed_px: float | None = None) -> list[Sample]:
    """A figure walking over a fixed background and waving: it enters from one side (or starts inside).
    `speed_px` fixes the walking speed in pixels per frame (default: random)."""
    rng = rng_for(seed, 0, stream=2)
    h, w = size
    fig = random_figure(rng)
    side = -1 if rng.random() < 0.5 else 1
    speed = side * (speed_px / w if speed_px is not None else rng.uniform(0.02, 0.05))
    start = -side * 0.8 if enter else 0.0
    bg = colour_jitter(rng, photo_crop(rng, h, w, names=("coffee", "rocket", "chelsea", "brick", "grass")))
    fig = replace(fig, cx=0.5 + start - (0 if enter else speed * frames / 2))
    out = []
    for t in range(frames):
        f = fig.moved(dx=speed * t, arm_delta=15 * np.sin(t / 3))
        alpha, skin_a, hair_a = render(f, h, w)
        fg = foreground_colour(rng_for(seed, 0, stream=3), f, skin_a, hair_a)  # same clothes every frame
        out.append(compose(rng_for(seed, t, stream=4), alpha, fg, bg, light_p=0.0))
    return out
