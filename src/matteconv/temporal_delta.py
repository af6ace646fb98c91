"""The temporal model shipped small: a float16 delta against the official weights, rebuilt at install time.

The official checkpoint is never in the repository (it comes through `make install`, issue 32), and the temporal
model grown from it differs only where training moved it: with `--freeze lr_branch` (docs/temporal.md) only the
HR and fusion branches, 0.30 M of 6.5 M parameters. The delta file holds, for every tensor of the 4-channel model
that differs from the widened official model (train/widen.py), `temporal - widened` in float16, one copy per
tensor (safetensors), with the official weights' hash and the rebuilt model's hash in its metadata.

Rebuilding adds the float16 delta (converted exactly to float32) to the widened official float32 weights: the
same bytes on every machine, so the rebuilt model's weights hash is checked. It differs from the trained float32
model by float16 rounding of the delta only (relative 2^-11 of each change, not of each weight).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import MatteconvError
from .fileio import atomic_path
from .model.checkpoint import load_checkpoint, weights_sha256
from .model.modnet import MODNet
from .train.widen import widen_to_temporal

FORMAT = "matteconv temporal delta v1"
# The shipped fine-tune (docs/temporal.md recipe: 180 steps, --only-previous-alpha) and where the install puts the
# rebuilt model: beside the official checkpoint in the user's cache (official.py), never in the repository.
SHIPPED = Path(__file__).resolve().parent / "references" / "temporal_official_delta.safetensors"
TEMPORAL_NAME = "modnet_temporal.safetensors"


def _unique(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One entry per tensor (the backbone appears twice in MODNet's state_dict), floating tensors only."""
    return {k: v for k, v in sd.items() if not k.startswith("lr_branch.backbone.") and v.is_floating_point()}


def make_delta(temporal: MODNet, official: MODNet) -> dict[str, torch.Tensor]:
    """{name: float16 (temporal - widened official)} for the tensors that differ."""
    base = _unique(widen_to_temporal(official).state_dict())
    out = {}
    for k, v in _unique(temporal.state_dict()).items():
        d = v.detach().float() - base[k].float()
        if bool(d.any()):
            out[k] = d.to(torch.float16).contiguous()
    return out


def apply_delta(official: MODNet, delta: dict[str, torch.Tensor]) -> MODNet:
    """The widened official model plus the delta (float32 arithmetic), in eval mode."""
    model = widen_to_temporal(official)
    sd = model.state_dict()
    for k, d in delta.items():
        if k not in sd or sd[k].shape != d.shape:
            raise MatteconvError(f"delta tensor {k} {tuple(d.shape)} does not fit the 4-channel model")
        sd[k] = sd[k] + d.float()
        alias = "lr_branch." + k if k.startswith("backbone.") else None
        if alias in sd:
            sd[alias] = sd[k]
    model.load_state_dict(sd)
    return model.eval()


def write_delta(temporal_ckpt: str | Path, official_ckpt: str | Path, out: str | Path) -> dict:
    """Write OUT (.safetensors): the delta and, in its metadata, the official weights' hash and the rebuilt
    model's hash. Returns the metadata plus `tensors` and `bytes`."""
    from safetensors.torch import save_file

    official = load_checkpoint(official_ckpt)
    temporal = load_checkpoint(temporal_ckpt)
    if official.in_channels != 3 or temporal.in_channels != 4:
        raise MatteconvError(f"{temporal_ckpt}: a delta goes from a 3-channel official model to a 4-channel one "
                             f"(got {official.in_channels} -> {temporal.in_channels})")
    delta = make_delta(temporal.model, official.model)
    rebuilt = apply_delta(official.model, delta)
    meta = {"format": FORMAT, "base_weights_sha256": official.weights_sha256,
            "rebuilt_weights_sha256": weights_sha256(rebuilt.state_dict()),
            "source_weights_sha256": temporal.weights_sha256}
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file(delta, str(tmp), metadata=meta)
    return {**meta, "tensors": len(delta), "bytes": out.stat().st_size}


def rebuild(official_ckpt: str | Path, delta_path: str | Path) -> MODNet:
    """The shipped temporal model from the official checkpoint and the committed delta; one line if the
    official weights are not the ones the delta was made against, or the result is not the recorded model."""
    from safetensors import safe_open

    delta_path = Path(delta_path)
    try:
        with safe_open(str(delta_path), "pt") as f:
            meta = f.metadata() or {}
            delta = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - safetensors raises several types on damaged files
        raise MatteconvError(f"{delta_path}: not a readable delta ({str(e).splitlines()[0] if str(e) else e})") \
            from None
    if meta.get("format") != FORMAT:
        raise MatteconvError(f"{delta_path}: not a {FORMAT} file")
    official = load_checkpoint(official_ckpt)
    if official.weights_sha256 != meta["base_weights_sha256"]:
        raise MatteconvError(f"{official_ckpt}: not the official weights {delta_path.name} was made against "
                             f"(weights {official.weights_sha256[:12]}, expected {meta['base_weights_sha256'][:12]}); "
                             "run `make install`")
    model = apply_delta(official.model, delta)
    if weights_sha256(model.state_dict()) != meta["rebuilt_weights_sha256"]:
        raise MatteconvError(f"{delta_path}: the rebuilt model's weights are not the recorded ones")
    return model
