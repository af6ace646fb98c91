"""Training data: the built-in synthetic set, a user's image/alpha folders, or a user's clips (VideoMatte240K
layout). Every source answers `item(index)` as a pure function of (seed, index), so a run is repeatable, resumes
exactly, and each process of a distributed run draws its own share of the same global batch.

User data is checked before training starts: every file opens as an image, every image has an alpha with the
same name and size; the first problem is one error line naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import preprocess
from ..errors import MatteconvError
from ..fileio import require_folder
from . import augment, synth

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Item:
    image: np.ndarray          # HxWx3 uint8 RGB
    alpha: np.ndarray          # HxW float32 in [0, 1]
    prev: np.ndarray | None    # HxW float32 previous alpha (after augmentation), None = zeros


def _image_files(folder: Path) -> list[Path]:
    require_folder(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MatteconvError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _image_size(path: Path) -> tuple[int, int]:
    """(h, w) from the file header, without decoding the pixels; one line if it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as e:
        raise MatteconvError(f"{path}: not a readable image ({type(e).__name__})") from None
    return h, w


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MatteconvError(f"{path}: not a readable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return preprocess.to_rgb(img)


def _read_alpha(path: Path) -> np.ndarray:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise MatteconvError(f"{path}: not a readable alpha image")
    if a.ndim == 3:
        a = a[..., 3] if a.shape[2] == 4 else a[..., 0]
    scale = 65535.0 if a.dtype == np.uint16 else 255.0
    return (a.astype(np.float32) / scale).clip(0, 1)


def _pairs(images: Path, alphas: Path) -> list[tuple[Path, Path]]:
    """Match images to alphas by name (stem); check sizes agree."""
    by_stem = {p.stem: p for p in _image_files(alphas)}
    pairs = []
    for img in _image_files(images):
        alpha = by_stem.get(img.stem)
        if alpha is None:
            raise MatteconvError(f"{img}: no alpha named {img.stem}.* in {alphas}")
        hi, ha = _image_size(img), _image_size(alpha)
        if hi != ha:
            raise MatteconvError(f"{alpha}: alpha is {ha[1]}x{ha[0]} but its image {img.name} is {hi[1]}x{hi[0]}")
        pairs.append((img, alpha))
    return pairs


def _random_crop(rng: np.random.Generator, arrays: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """The same random crop (scale 0.6-1 of the short side, matching the aspect), flip and resize for all."""
    h, w = arrays[0].shape[:2]
    out_h, out_w = size
    scale = rng.uniform(0.6, 1.0) * min(h / out_h, w / out_w)
    ch, cw = max(1, int(out_h * scale)), max(1, int(out_w * scale))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    flip = rng.random() < 0.5
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        c = cv2.resize(a[y:y + ch, x:x + cw], (out_w, out_h), interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(c[:, ::-1]) if flip else c)
    return out


class SyntheticSource:
    """The built-in set (see synth.py); with `temporal`, each item carries the figure's previous-frame alpha."""

    def __init__(self, seed: int, size: tuple[int, int], temporal: bool, p_blank: float, p_affine: float,
                 p_light: float):
        self.seed, self.size, self.temporal = seed, size, temporal
        self.p_blank, self.p_affine, self.p_light = p_blank, p_affine, p_light

    def item(self, index: int) -> Item:
        if not self.temporal:
            s = synth.sample(self.seed, index, self.size, self.p_light)
            return Item(s.image, s.alpha, None)
        s, prev = synth.pair(self.seed, index, self.size, self.p_light)
        rng = synth.rng_for(self.seed, index, stream=5)
        return Item(s.image, s.alpha, augment.previous_alpha(rng, prev, self.p_blank, self.p_affine))


class FolderSource:
    """A folder of images (composites) and a folder of alphas with the same names."""

    def __init__(self, images: Path, alphas: Path, seed: int, size: tuple[int, int], p_light: float):
        self.pairs = _pairs(Path(images), Path(alphas))
        self.seed, self.size, self.p_light = seed, size, p_light

    def item(self, index: int) -> Item:
        rng = synth.rng_for(self.seed, index, stream=6)
        img_path, alpha_path = self.pairs[rng.integers(len(self.pairs))]
        image, alpha = _random_crop(rng, [_read_rgb(img_path), _read_alpha(alpha_path)], self.size)
        image = augment.light(rng, synth.colour_jitter(rng, image.astype(np.float64)).round().astype(np.uint8),
                              self.p_light)
        return Item(image, alpha, None)


class ClipSource:
    """VideoMatte240K's layout: ROOT/fgr/<clip>/<frame> foregrounds and ROOT/pha/<clip>/<frame> alphas, composited
    over built-in photos (or a folder of backgrounds); the previous frame's alpha of the same clip is channel 3."""

    def __init__(self, root: Path, seed: int, size: tuple[int, int], p_blank: float, p_affine: float,
                 p_light: float, backgrounds: Path | None = None):
        root = Path(root)
        fgr, pha = root / "fgr", root / "pha"
        for d in (fgr, pha):
            if not d.is_dir():
                raise MatteconvError(f"{root}: expected VideoMatte240K's layout with {d.name}/<clip>/<frames>")
        clips = sorted(p for p in fgr.iterdir() if p.is_dir())
        if not clips:
            raise MatteconvError(f"{fgr}: no clip folders")
        self.clips = [_pairs(c, pha / c.name) for c in clips]
        self.backgrounds = [p for p in _image_files(Path(backgrounds)) if _image_size(p)] if backgrounds else None
        self.seed, self.size = seed, size
        self.p_blank, self.p_affine, self.p_light = p_blank, p_affine, p_light

    def _background(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        if self.backgrounds:
            img = _read_rgb(self.backgrounds[rng.integers(len(self.backgrounds))])
            return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
        return synth.photo_crop(rng, h, w)

    def item(self, index: int) -> Item:
        rng = synth.rng_for(self.seed, index, stream=7)
        frames = self.clips[rng.integers(len(self.clips))]
        t = int(rng.integers(len(frames)))
        fg = _read_rgb(frames[t][0])
        alpha = _read_alpha(frames[t][1])
        prev = _read_alpha(frames[t - 1][1]) if t > 0 else None
        fg, alpha, prev = _random_crop(rng, [fg, alpha, prev], self.size)
        bg = synth.colour_jitter(rng, self._background(rng, *self.size))
        s = synth.compose(rng, alpha, synth.colour_jitter(rng, fg.astype(np.float64)), bg, self.p_light)
        return Item(s.image, s.alpha, augment.previous_alpha(rng, prev, self.p_blank, self.p_affine))


class PeopleSource:
    """Clips of real people (matteconv.people.clips): package photos' people, cut out by `cutout`'s matte, over
    the training split's backgrounds; frame t with frame t-1's label as the previous alpha (the seed's recipe)."""

    def __init__(self, seed: int, size: tuple[int, int], cutout: str, p_blank: float, p_affine: float,
                 p_light: float):
        from ..model.checkpoint import load_checkpoint
        from ..people import cutout as cut, photos

        load_checkpoint(cutout)  # one line now for a bad file, not in the data worker
        for table, what in ((photos.PEOPLE, "people"), (photos.BACKGROUNDS, "backgrounds")):
            if not photos.available(table, photos.TRAIN):
                raise MatteconvError(f"--people: no training {what} installed (matteconv/people/photos.py)")
        self.cutter = cut.CheckpointCutter(str(cutout))
        self.seed, self.size = seed, size
        self.p_blank, self.p_affine, self.p_light = p_blank, p_affine, p_light

    def item(self, index: int) -> Item:
        from ..people.clips import training_item

        it = training_item(self.seed, index, self.cutter, self.size, self.p_blank, self.p_affine, self.p_light)
        return Item(it.image, it.alpha, it.prev)


def to_batch(items: list[Item], in_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input Nx{3,4}xHxW normalised as everywhere in matteconv, alpha Nx1xHxW)."""
    x = np.stack([preprocess.normalize(it.image)[0] for it in items])
    if in_channels == 4:
        prev = np.stack([(it.prev if it.prev is not None else np.zeros_like(it.alpha))[None] for it in items])
        x = np.concatenate([x, prev.astype(np.float32)], axis=1)
    alpha = np.stack([it.alpha[None] for it in items])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(alpha)
