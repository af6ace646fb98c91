"""The one safe checkpoint loader used by every command.

Accepts what MODNet users actually have: bare state_dicts with or without DataParallel's `module.` prefix,
`{"state_dict": ...}`-style wrappers, the official layout with every backbone tensor twice
(`backbone.*` and `lr_branch.backbone.*`) or once, `num_batches_tracked` present or absent, `.safetensors`.
Never unpickles code (`weights_only=True`). Every failure is a MatteconvError naming the file and the cause.
"""
from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import MatteconvError
from ..fileio import sha256_file
from .modnet import MODNet

FIRST_CONV = "backbone.model.features.0.0.weight"
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params", "weights")
SHARED_PREFIX = ("backbone.", "lr_branch.backbone.")


@dataclass
class Checkpoint:
    """A loaded MODNet in eval mode plus what provenance needs."""

    model: MODNet
    path: Path
    sha256: str  # of the file, as `sha256sum` prints it
    in_channels: int
    weights_sha256: str = ""  # of the tensors, whatever the file format (what golden sets record)


def _read_raw(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise MatteconvError(f"{path}: not a readable safetensors file (truncated or corrupt): {e}") from None
    with open(path, "rb") as f:
        magic = f.read(4)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower() or "unsupported global" in str(e).lower():
            what = str(e).split("GLOBAL", 1)[-1].split("was not")[0].strip() if "GLOBAL" in str(e) else "objects"
            raise MatteconvError(
                f"{path}: refused: unpickling needs code ({what}); only plain tensors are loaded. "
                "Re-save it with torch.save(model.state_dict(), ...) in a trusted environment") from None
        raise MatteconvError(f"{path}: not a PyTorch checkpoint ({e})") from None
    except Exception as e:  # torch.load raises many types on damaged files (KeyError, RuntimeError, EOFError...)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if magic == b"PK\x03\x04":
            raise MatteconvError(f"{path}: truncated or corrupt checkpoint archive ({msg})") from None
        raise MatteconvError(f"{path}: not a PyTorch checkpoint ({msg})") from None


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside the usual wrappers."""
    for _ in range(3):
        if isinstance(raw, dict) and not any(isinstance(v, torch.Tensor) for v in raw.values()):
            inner = next((raw[k] for k in WRAPPER_KEYS if isinstance(raw.get(k), dict)), None)
            if inner is None:
                break
            raw = inner
    if not isinstance(raw, dict) or not raw or not all(isinstance(k, str) for k in raw):
        raise MatteconvError(f"{path}: not a checkpoint: expected a state_dict of tensors, got {type(raw).__name__}")
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise MatteconvError(f"{path}: not a checkpoint: no tensors inside")
    return tensors


def canonical_key(k: str) -> str:
    """`module.lr_branch.backbone.x` -> `backbone.x`: one name per tensor."""
    while k.startswith("module."):
        k = k[len("module."):]
    if k.startswith(SHARED_PREFIX[1]):
        k = SHARED_PREFIX[0] + k[len(SHARED_PREFIX[1]):]
    return k


def normalize_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip `module.`, drop `num_batches_tracked`, keep one copy of the shared backbone under `backbone.`."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not k.endswith("num_batches_tracked"):
            out.setdefault(canonical_key(k), v)
    return out


def infer_in_channels(sd: dict[str, torch.Tensor], path: Path) -> int:
    w = sd.get(FIRST_CONV)
    if w is None:
        raise MatteconvError(f"{path}: not a MODNet checkpoint: no {FIRST_CONV} (first backbone conv)")
    if w.ndim != 4 or w.shape[1] not in (3, 4):
        raise MatteconvError(f"{path}: {FIRST_CONV} has shape {tuple(w.shape)}; MODNet takes 3 or 4 input channels")
    return int(w.shape[1])


def _check_against(model: MODNet, sd: dict[str, torch.Tensor], path: Path) -> None:
    expected = normalize_keys(model.state_dict())
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise MatteconvError(f"{path}: not a MODNet checkpoint: {'; '.join(parts)}")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise MatteconvError(f"{path}: shape mismatch at {k}: got {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
    for k, v in sd.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            bad = int((~torch.isfinite(v)).sum())
            raise MatteconvError(f"{path}: {bad} NaN/Inf value(s) in {k}")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely and return its normalised MODNet state_dict (no model built)."""
    path = Path(path)
    if not path.exists():
        raise MatteconvError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise MatteconvError(f"{path}: is a folder, expected a checkpoint file")
    return normalize_keys(_unwrap(_read_raw(path), path))


def load_checkpoint(path: str | Path, split_inputs: bool = False) -> Checkpoint:
    """Load a MODNet checkpoint into a fresh model (eval mode, float32)."""
    path = Path(path)
    sd = load_state_dict(path)
    in_channels = infer_in_channels(sd, path)
    model = MODNet(in_channels=in_channels, split_inputs=split_inputs)
    _check_against(model, sd, path)
    full = {k: v if k.endswith("num_batches_tracked") else sd[canonical_key(k)].to(v.dtype)
            for k, v in model.state_dict().items()}
    model.load_state_dict(full, strict=True)
    return Checkpoint(model.eval(), path, sha256_file(path), in_channels, weights_sha256(sd))


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hash of the weights themselves (names, dtypes, shapes, bytes), independent of the file format.
    torch.save embeds a random serialization id, so file hashes cannot identify weights."""
    h = hashlib.sha256()
    for k, v in sorted(normalize_keys(state_dict).items()):
        t = v.detach().contiguous().cpu()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def official_state_dict(model: MODNet) -> dict[str, torch.Tensor]:
    """The released checkpoints' layout: DataParallel `module.` prefix, backbone twice, num_batches_tracked."""
    return {f"module.{k}": v.detach().clone() for k, v in model.state_dict().items()}
