"""Golden sets: real inputs, float64 PyTorch alphas and a manifest saying how they were made.

A golden set is one checkpoint plus an ordered list of inputs. For a 4-channel (temporal) checkpoint the inputs
are a clip: frame t is fed the golden alpha of frame t-1 (zeros for the first), and every stage is fed the same
previous alphas, so each frame measures the conversion, not accumulated drift.
Golden alphas come from the model in float64, the one reference that is not itself an fp32 guess.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from .. import __version__, preprocess
from ..errors import MatteconvError
from ..fileio import atomic_path, check_output_folder, remove_path, replace_folder, same_file, write_image
from ..model.checkpoint import weights_sha256
from ..reference import reference_model

MANIFEST = "manifest.json"
FORMAT = 1
FP32 = {"max_abs": 1e-3, "mean_abs": 5e-5}
# The .om runs at fp16 (atc's default precision_mode force_fp16): judged at fp16 tolerance, not fp32.
FP16 = {"max_abs": 2e-2, "mean_abs": 1e-3}
# The fp16 stages ("predicted .om": each artifact under the device model of matteconv.fp16) vs float64 golden.
# The goal for a trained network; an untrained one amplifies fp16 rounding ~600x and cannot meet it (README).
FP16_PREDICTED = {"max_abs": 5e-2, "mean_abs": 1e-3}
# The INT8 stage ("predicted INT8 .om", matteconv.int8) vs float64 golden: a goal for a deployable INT8 matte, twice
# the fp16 goal in max and mean (README "INT8": the trained references need `quantize --tolerance` to meet it).
INT8_PREDICTED = {"max_abs": 0.1, "mean_abs": 2e-3}
# AIPP is judged where its arithmetic acts: the model input it makes from a raw frame vs OpenCV's decode of the
# same frame + our normalisation, in LSB (1/127.5). Alpha errors are reported beside it, not judged: a random
# reference model moves its matte by up to ~1.0 for 1 LSB of input noise (measured), a trained one far less.
AIPP = {"input_max_lsb": 2.0, "input_mean_lsb": 0.5, "input_fraction_lsb": 0.05}
DEFAULT_TOLERANCES = {"torch": FP32, "onnx": FP32, "caffe": FP32, "aipp": AIPP, "om": FP16, "fp16": FP16_PREDICTED,
                      "int8": INT8_PREDICTED}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class GoldenItem:
    name: str
    input: Path
    alpha: Path
    label: Path | None = None  # the exact alpha of a composite (golden/real), when the set has one

    def image(self) -> np.ndarray:
        return read_image(self.input)

    def golden_alpha(self) -> np.ndarray:
        return read_alpha(self.alpha)

    def label_alpha(self) -> np.ndarray | None:
        return None if self.label is None else read_alpha(self.label)


@dataclass
class GoldenSet:
    root: Path
    manifest: dict
    items: list[GoldenItem]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.manifest["size"])

    @property
    def in_channels(self) -> int:
        return int(self.manifest["checkpoint"]["in_channels"])

    @property
    def temporal(self) -> bool:
        return self.in_channels == 4

    def tolerance(self, stage: str) -> dict[str, float]:
        return self.manifest.get("tolerances", {}).get(stage, DEFAULT_TOLERANCES.get(stage, FP32))

    def frames(self) -> list[np.ndarray]:
        """Model-size uint8 RGB frames under the manifest's policy (what every stage starts from)."""
        return [preprocess.prepare(it.image(), self.manifest["policy"], self.size).frame for it in self.items]

    def prev_alphas(self) -> list[np.ndarray | None]:
        """What each frame is fed as previous alpha: None for 3-channel sets."""
        if not self.temporal:
            return [None] * len(self.items)
        h, w = self.size
        alphas = [it.golden_alpha() for it in self.items]
        return [np.zeros((h, w), np.float32)] + alphas[:-1]


def read_alpha(path: Path) -> np.ndarray:
    """The `alpha` array of a golden .npz, never unpickling; a damaged file is one line naming it (numpy's own
    message for a non-zip file advises allow_pickle=True, which would run code from the file: not repeated)."""
    import zipfile

    path = Path(path)
    try:
        head = path.read_bytes()[:4]
    except OSError as e:
        raise MatteconvError(f"{path}: cannot read ({e.strerror or e})") from None
    if head != b"PK\x03\x04":
        what = "empty" if not head else f"starts with {head.hex()}, not a zip archive of arrays"
        raise MatteconvError(f"{path}: not a valid .npz ({what}); remake the golden set with `matteconv golden make`")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "alpha" not in z.files:
                raise MatteconvError(f"{path}: not a valid golden .npz (arrays {', '.join(z.files) or 'none'}, no "
                                     "'alpha')")
            a = z["alpha"]
    except MatteconvError:
        raise
    except ValueError as e:
        why = "it holds Python objects, not numbers" if "allow_pickle" in str(e) else str(e)
        raise MatteconvError(f"{path}: not a valid .npz ({why})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise MatteconvError(f"{path}: not a valid .npz ({type(e).__name__}: {e})") from None
    if a.dtype.kind != "f":
        raise MatteconvError(f"{path}: alpha is {a.dtype}, expected floating point")
    return a


def read_image(path: Path) -> np.ndarray:
    """Read an image as RGB uint8 with a clear error."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if img is None:
        raise MatteconvError(f"{path}: not a readable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return preprocess.to_rgb(img)


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MatteconvError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def model_input(frame: np.ndarray, prev_alpha: np.ndarray | None, dtype=np.float32) -> np.ndarray:
    """uint8 frame (+ previous alpha) -> 1xCxHxW normalised tensor."""
    x = preprocess.normalize(frame, dtype)
    if prev_alpha is None:
        return x
    return np.concatenate([x, np.asarray(prev_alpha, dtype)[None, None]], axis=1)


def load_golden(root: str | Path) -> GoldenSet:
    root = Path(root)
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise MatteconvError(f"{root}: not a golden set (no {MANIFEST}); make one with `matteconv golden make`")
    try:
        manifest = json.loads(mpath.read_text())
        items = [GoldenItem(i["name"], root / i["input"], root / i["alpha"],
                            root / i["label"] if i.get("label") else None) for i in manifest["items"]]
        manifest["size"], manifest["checkpoint"]["in_channels"], manifest["policy"]  # noqa: B018 (required keys)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise MatteconvError(f"{mpath}: malformed manifest ({type(e).__name__}: {e})") from None
    for it in items:
        for p in (it.input, it.alpha, *([it.label] if it.label is not None else [])):
            if not p.is_file():
                raise MatteconvError(f"{mpath}: listed file {p} is missing")
    for it in items:  # a damaged alpha is found before any stage runs (they are small: one float32 map each)
        it.golden_alpha()
    return GoldenSet(root, manifest, items)


def check_golden_target(out: Path) -> None:
    """A golden set replaces its folder as a whole: refuse a folder that holds anything else."""
    check_output_folder(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise MatteconvError(f"{out}: exists and is not a golden set; give a new folder (or an old golden set "
                             "to replace)")


def make_golden(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], out: str | Path,
                size: tuple[int, int], policy: str = "device", checkpoint_info: dict | None = None,
                progress: Callable[[str], None] | None = None, grid_bits: int | None = None) -> GoldenSet:
    """Write inputs (PNG), float64-model alphas (float32 .npz + 16-bit PNG preview) and manifest.json, all at once:
    the set is made in a temporary folder beside `out` and replaces it only when complete. `grid_bits`: store the
    alphas rounded to multiples of 2**-grid_bits (ALPHA_GRID_BITS: files ~5x smaller for clean mattes)."""
    out = Path(out)
    check_golden_target(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_golden(model, images, tmp, size, policy, checkpoint_info, progress, grid_bits)
        replace_folder(tmp, out)
    finally:
        remove_path(tmp)
    return load_golden(out)


# A float32 alpha's low mantissa bits are float64 noise that does not compress: rounded to multiples of 2**-20
# (at most 4.8e-7 away, under 1/2000 of the fp32 stages' 1e-3 and 1/100 of their 5e-5 mean) a clean matte's .npz
# is ~5x smaller (golden/real: the official model's mattes, 820 -> ~170 KB at 512x512, measured).
ALPHA_GRID_BITS = 20


def _write_golden(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], out: Path, size: tuple[int, int],
                  policy: str, checkpoint_info: dict | None, progress: Callable[[str], None] | None,
                  grid_bits: int | None = None) -> None:
    (out / "inputs").mkdir()
    (out / "alphas").mkdir()
    import copy

    weights = weights_sha256(model.state_dict())
    model64 = copy.deepcopy(model).double().eval()
    in_channels = model.in_channels
    prev = np.zeros(size, np.float64) if in_channels == 4 else None
    items = []
    for name, img in images:
        if progress:
            progress(name)
        rgb = preprocess.to_rgb(img)
        frame = preprocess.prepare(rgb, policy, size).frame
        x = torch.from_numpy(model_input(frame, prev, np.float64))
        with torch.no_grad():
            alpha = model64(x).numpy()[0, 0]
        if prev is not None:
            prev = alpha
        inp, apath, ppath = out / "inputs" / f"{name}.png", out / "alphas" / f"{name}.npz", out / "alphas" / f"{name}.png"
        write_image(inp, rgb)
        stored = alpha if grid_bits is None else np.round(alpha * 2.0 ** grid_bits) / 2.0 ** grid_bits
        with atomic_path(apath) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, alpha=stored.astype(np.float32))
        write_image(ppath, np.rint(alpha * 65535).astype(np.uint16))
        items.append({"name": name, "input": f"inputs/{name}.png", "alpha": f"alphas/{name}.npz",
                      "preview": f"alphas/{name}.png"})
    manifest = {
        "format": FORMAT,
        "matteconv_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "size": list(size),
        "policy": policy,
        "preprocessing": {"color": "RGB", "mean": preprocess.MEAN, "std": preprocess.STD},
        "reference_dtype": "float64",
        "temporal_feedback": "golden alpha of the previous frame (zeros first)" if in_channels == 4 else None,
        "checkpoint": {"in_channels": in_channels, "hr_channels": int(getattr(model, "hr_channels", 32)),
                       "weights_sha256": weights,
                       **(checkpoint_info or {})},
        "tolerances": DEFAULT_TOLERANCES,
        **({"alpha_grid": f"2^-{grid_bits}"} if grid_bits is not None else {}),
        "items": items,
    }
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")


def golden_model(gset: GoldenSet, ckpt_path: str | Path | None = None) -> tuple[torch.nn.Module, str]:
    """The checkpoint a golden set was made from (given, or the reference it names), checked by weights hash."""
    from ..model.checkpoint import load_checkpoint

    info = gset.manifest["checkpoint"]
    if ckpt_path is not None:
        model = load_checkpoint(ckpt_path).model
        where = str(ckpt_path)
    elif "official" in info:  # the official MODNet, imported by `make install` (matteconv.official)
        from ..official import official_checkpoint

        path = official_checkpoint()
        model = load_checkpoint(path).model
        where = f"the official MODNet ({path})"
    elif "reference" in info:
        ref = info["reference"]
        seed = ref.get("seed")
        model = reference_model(int(ref["in_channels"]), None if seed is None else int(seed))
        kind = "trained" if seed is None else f"random, seed={seed}"
        where = f"reference checkpoint (in_channels={ref['in_channels']}, {kind})"
    else:
        raise MatteconvError(f"{gset.root}: this golden set was made from a user checkpoint: pass it with --ckpt")
    got = weights_sha256(model.state_dict())
    if got != info["weights_sha256"]:
        raise MatteconvError(
            f"{gset.root}: checkpoint weights sha256 mismatch: {where} has {got[:12]}, the golden set was made "
            f"from {info['weights_sha256'][:12]} (torch {gset.manifest.get('torch_version', '?')}, now "
            f"{torch.__version__.split('+')[0]}); regenerate with `matteconv golden make`, this is not a parity failure")
    return model, where


def make_set(out: str | Path, ckpt: str | Path | None = None, images: str | Path | None = None,
             in_channels: int = 3, seed: int | None = None, size: tuple[int, int] | None = None, policy: str = "device",
             progress: Callable[[str], None] | None = None) -> GoldenSet:
    """The `golden make` recipe: a checkpoint (given or reference) over images (given or built-in)."""
    from .. import samples
    from ..model.checkpoint import load_checkpoint

    for given in (ckpt, images):  # the set replaces `out` as a whole: an input inside it would be lost
        if given is not None and (same_file(given, out) or Path(out).resolve() in Path(given).resolve().parents):
            raise MatteconvError(f"{out}: the golden set would be written over its input {given}; choose another "
                                 "output folder")
    check_golden_target(Path(out))
    if ckpt is not None:
        loaded = load_checkpoint(ckpt)
        model, info = loaded.model, {"file": Path(ckpt).name, "file_sha256": loaded.sha256}
    else:
        ref = {"in_channels": in_channels, **({} if seed is None else {"seed": seed})}
        model, info = reference_model(in_channels, seed), {"reference": ref}
    temporal = model.in_channels == 4
    if images is not None:
        pics = [(p.stem, read_image(p)) for p in list_images(Path(images))]
    elif temporal:
        pics = [(f"frame_{i:03d}", f) for i, f in enumerate(samples.clip())]
    else:
        pics = list(samples.photos().items())
    size = size or ((320, 320) if temporal else (512, 512))
    return make_golden(model, pics, out, size, policy, info, progress)


HARD_STILLS, HARD_CLIP = "stills", "clip"
# fp16 prediction tolerance of golden/hard, set like golden/photos' from measurement with margin (README, "Hard
# frames": stills worst 0.395 / 3.0e-3 on dark_room, clip 0.338 / 1.4e-3): the synthetic-only references are
# unsure over half of a frame without a person, and unsure areas stay fp16-sensitive. A property of the
# references, not of the conversion.
# ... and judged apart on the pixels where the float64 golden alpha is confident (< 0.05 or > 0.95,
# metrics.confident_errors), where device precision should be judged: worst measured max 0.13 (fp16-caffe on the
# clip's 04_leave; stills: 0.10 on dark_room), worst mean 4.0e-4 (dark_room), so the mean is held to the fp16 goal
# FP16_PREDICTED (1e-3) and the max to 0.15 (1.15x the worst; over the goal's 5e-2: confident pixels next to the
# unsure band still move, docs/hard-frames.md). Measured 2026-11-30.
HARD_FP16_CONFIDENT = {"confident_max_abs": 0.15, "confident_mean_abs": FP16_PREDICTED["mean_abs"]}
HARD_FP16 = {"max_abs": 0.5, "mean_abs": 3.5e-3, **HARD_FP16_CONFIDENT}
# AIPP on golden/hard: the mean bound follows from the two decoders' rounding, not from photos. AIPP's CSC is
# documented as `(M x (in - bias)) >> 8` (a floor; aipp/emulate.py, [atc] "CSC Configuration"), OpenCV's NV21
# decoder rounds to nearest; both are BT.601 video range in fixed point (Q8 / Q20) and agree before rounding to
# well under 0.5 LSB on these frames, so a correct config is 0 or 1 LSB from OpenCV on every pixel: the mean is at
# most 1 LSB. It is about 0.5 where the fractions are spread (photos, clips: golden/photos keeps 0.5) and nears
# 1 on large areas of one value whose fraction is >= 0.5: clipped white, Y 235 -> 298 * 219 / 256 = 254.93 -> 254
# where OpenCV gives 255 (backlit 0.74, overexposed 0.64 LSB, measured 2026-11-30). Not chroma subsampling: both
# decode the same NV21 bytes. A config error is still caught by max (2) and by the whole-LSB grid (0.05).
HARD_AIPP = {**AIPP, "input_mean_lsb": 1.0}


def make_hard(out: str | Path, size: tuple[int, int] | None = None,
              progress: Callable[[str], None] | None = None) -> list[GoldenSet]:
    """golden/hard: the hard stills (hard_frames.stills) under the trained 3-channel reference in `out/stills`,
    the enter-stay-leave-empty clip (hard_frames.clip) under the trained 4-channel reference in `out/clip`.
    Deterministic: rerunning rewrites the same inputs; the alphas are float64 model outputs (manifest: hash)."""
    from .. import hard_frames

    out = Path(out)
    size = size or hard_frames.SIZE
    check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    sets = []
    for sub, in_channels, pics in ((HARD_STILLS, 3, list(hard_frames.stills(size).items())),
                                   (HARD_CLIP, 4, hard_frames.clip(size))):
        model = reference_model(in_channels)
        gset = make_golden(model, pics, out / sub, size, "device", {"reference": {"in_channels": in_channels}},
                           progress)
        gset.manifest["tolerances"] = {**gset.manifest["tolerances"], "fp16": HARD_FP16, "aipp": HARD_AIPP}
        with atomic_path(gset.root / MANIFEST) as tmp:
            tmp.write_text(json.dumps(gset.manifest, indent=2) + "\n")
        sets.append(gset)
    return sets
