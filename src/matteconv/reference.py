"""The reference checkpoints: trained ones (default) and the deterministic random builder (for tests).

Trained references (`references/modnet_ref{3,4}.safetensors`, made by `matteconv train` on the built-in synthetic
set with scripts/train-references.sh) behave like trained matting networks: mattes saturate to 0 and 1 away from
the outline, so fp16 rounding, chroma subsampling and the temporal feedback can be judged on them. They are
references for numerics and demos, not a production matting model.

The random builder (`reference_model(in_channels, seed=N)`): random init from a seed, random BatchNorm affine
parameters (so BN folding is really exercised), positive depthwise kernels, BatchNorm statistics calibrated in
float64 on the built-in photos, and the final logits scaled so most pixels land in the sigmoid's sensitive range.
Why positive depthwise kernels and small residual gammas: random signed 3x3 kernels are high-pass filters, and
after BatchNorm calibration a random MobileNetV2 is chaotic (1 LSB of input noise moved the matte by up to 1.0).
With both, the same noise moves the matte by 0.25-0.54 max, and fp32 stays <= 3.4e-4 from float64; fp16 is still
amplified ~600x, which is why device-precision numbers are measured on the trained references only.
Data-dependent values are rounded to the float16 grid, so float64 noise across CPUs cannot change the weights.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import preprocess, samples
from .errors import MatteconvError
from .model.checkpoint import official_state_dict, weights_sha256
from .model.mobilenetv2 import InvertedResidual
from .model.modnet import MODNet

CALIBRATION_SIZE = (256, 256)
# What a checkpoint may be named: save_reference and train's writer write safetensors for that suffix (exactly: the
# loader reads safetensors by it), torch.save's zip for the others.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
LOGIT_STD = 3.0
RESIDUAL_GAMMA = 0.1


def _fp16_grid(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).to(t.dtype)


def calibration_batch(in_channels: int, size: tuple[int, int] = CALIBRATION_SIZE) -> torch.Tensor:
    """The built-in photos (and, for 4 channels, a soft previous matte) at `size`, float64, Nx(C)xHxW."""
    frames = [preprocess.prepare(img, "device", size, dtype=np.float64).tensor
              for img in samples.photos().values()]
    x = torch.from_numpy(np.concatenate(frames))
    if in_channels == 4:
        h, w = size
        prev = samples.soft_ellipse(h, w, h * 0.55, w / 2, h * 0.5, w * 0.3)
        x = torch.cat([x, torch.from_numpy(prev)[None, None].expand(len(x), 1, h, w)], dim=1)
    return x


REFERENCES = Path(__file__).resolve().parent / "references"


def trained_path(in_channels: int = 3) -> Path:
    """The shipped trained reference for 3 (photos) or 4 (temporal) input channels."""
    if in_channels not in (3, 4):
        raise MatteconvError(f"in_channels must be 3 or 4, got {in_channels}")
    return REFERENCES / f"modnet_ref{in_channels}.safetensors"


def reference_model(in_channels: int = 3, seed: int | None = None) -> MODNet:
    """The trained reference (seed None) or the random reference built from `seed`; float32, eval mode."""
    if seed is None:
        from .model.checkpoint import load_checkpoint

        return load_checkpoint(trained_path(in_channels)).model
    return random_reference(in_channels, seed)


def random_reference(in_channels: int = 3, seed: int = 0, hr_channels: int = 32) -> MODNet:
    """Build the random reference MODNet for (in_channels, seed) and the official constructor's hr_channels
    (32; 16 is the lighter variant); float32, eval mode."""
    torch.manual_seed(seed)
    model = MODNet(in_channels, hr_channels)
    gen = torch.Generator().manual_seed(seed + 1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration pass
        for conv in model.modules():
            if isinstance(conv, nn.Conv2d) and conv.groups > 1:
                conv.weight.abs_()
        for block in model.modules():
            if isinstance(block, InvertedResidual) and block.use_res_connect:
                block.conv[-1].weight.mul_(RESIDUAL_GAMMA)
        model = model.double().train()
        x = calibration_batch(in_channels)
        model(x)
        model.eval()
        for bn in bns:
            bn.running_mean.copy_(_fp16_grid(bn.running_mean))
            bn.running_var.copy_(_fp16_grid(bn.running_var.clamp_min(1e-3)))
            bn.momentum = 0.1
        last = model.f_branch.conv_f[1].layers[0]
        logits = torch.logit(model(x).clamp(1e-12, 1 - 1e-12))
        mean, std = float(logits.mean()), float(logits.std())
        last.weight.copy_(_fp16_grid(last.weight * (LOGIT_STD / std)))
        last.bias.copy_(_fp16_grid((last.bias - mean) * (LOGIT_STD / std)))
    return model.float().eval()


def quick_reference(in_channels: int = 3, hr_channels: int = 32, seed: int = 0) -> MODNet:
    """A cheap random MODNet of any architecture for tests and speed benchmarks: default init from `seed`,
    BatchNorm statistics from one float32 pass over the built-in photos at 64x64 (non-degenerate activations
    in about a second, where random_reference's float64 calibration takes ~30 s on 2 cores); float32, eval."""
    torch.manual_seed(seed)
    model = MODNet(in_channels, hr_channels)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = None  # cumulative average over the one batch
    with torch.no_grad():
        model.train()(calibration_batch(in_channels, (64, 64)).float())
    return model.eval()


def check_checkpoint_name(path: str | Path) -> None:
    """One line unless `path` ends in a checkpoint suffix (a PyTorch file named .onnx would mislead every tool)."""
    suffix = Path(path).suffix
    if suffix not in CHECKPOINT_SUFFIXES:
        raise MatteconvError(f"{path}: the output is a checkpoint; name it {', '.join(CHECKPOINT_SUFFIXES[:-1])} or "
                             f"{CHECKPOINT_SUFFIXES[-1]} (got {suffix or 'no suffix'})")


def save_reference(model: MODNet, path) -> str:
    """Save in the released checkpoints' layout (so the loader's real path is exercised); return weights hash."""
    from .fileio import atomic_path

    path = Path(path)
    check_checkpoint_name(path)
    sd = official_state_dict(model)
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp))
        else:
            torch.save(sd, str(tmp))
    return weights_sha256(sd)
