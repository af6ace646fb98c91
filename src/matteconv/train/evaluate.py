"""What a trained reference is worth, in numbers README publishes: matting quality on held-out synthetic
composites, flicker on a synthetic clip with temporal feedback, and sensitivity to fp16 and to the NV21 round
trip on the golden photos (the perturbations the device adds)."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .. import preprocess, samples
from ..verify.metrics import all_metrics
from . import synth

HELD_OUT_SEED = 1_000_003  # never a training seed of the references


def _alpha(model: torch.nn.Module, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    with torch.no_grad():
        m = model.to(dtype)
        out = m(torch.from_numpy(x).to(dtype)).float().numpy()[0, 0]
        model.float()
    return out


def _input(image: np.ndarray, prev: np.ndarray | None, in_channels: int) -> np.ndarray:
    x = preprocess.normalize(image)
    if in_channels == 4:
        p = np.zeros(image.shape[:2], np.float32) if prev is None else prev
        x = np.concatenate([x, p[None, None].astype(np.float32)], axis=1)
    return x


def quality(model: torch.nn.Module, n: int = 50, size: tuple[int, int] = (256, 256)) -> dict[str, float]:
    """Mean SAD, MSE, Grad, Conn (and max/mean |d|) over n held-out synthetic composites (no previous alpha)."""
    rows = []
    for i in range(n):
        s = synth.sample(HELD_OUT_SEED, i, size)
        pred = _alpha(model.eval(), _input(s.image, None, model.in_channels))
        rows.append(all_metrics(pred.astype(np.float64), s.alpha.astype(np.float64)))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def flicker(model: torch.nn.Module, frames: int = 30, size: tuple[int, int] = (256, 256),
            seed: int = HELD_OUT_SEED) -> float:
    """Mean |alpha_t - alpha_{t-1}| over static pixels (ground truth and image unchanged) of a synthetic clip
    in which the figure enters and moves; the 4-channel model gets its own previous alpha back."""
    clip = synth.clip(seed, frames, size)
    prev, alphas = None, []
    for s in clip:
        a = _alpha(model.eval(), _input(s.image, prev, model.in_channels))
        alphas.append(a)
        prev = a
    changes = []
    for t in range(1, frames):
        static = (clip[t].alpha == clip[t - 1].alpha) & np.all(clip[t].image == clip[t - 1].image, axis=2)
        if static.any():
            changes.append(np.abs(alphas[t] - alphas[t - 1])[static].mean())
    return float(np.mean(changes))


def sensitivity(model: torch.nn.Module) -> dict[str, float]:
    """Max and mean |alpha change| on the golden photos (512x512) under torch float16 and under the NV21 round
    trip, each against the same model in float64."""
    from ..aipp.emulate import rgb_to_nv21

    fp16_max, fp16_mean, nv_max, nv_mean = [], [], [], []
    for img in samples.photos().values():
        frame = preprocess.prepare(img, "device", (512, 512)).frame
        prev = samples.soft_ellipse(512, 512, 290, 256, 230, 150).astype(np.float32) if model.in_channels == 4 else None
        ref = _alpha(model.eval(), _input(frame, prev, model.in_channels), torch.float64)
        half = _alpha(model, _input(frame, prev, model.in_channels), torch.float16)
        back = cv2.cvtColor(rgb_to_nv21(frame).reshape(-1, frame.shape[1]), cv2.COLOR_YUV2RGB_NV21)
        trip = _alpha(model, _input(back, prev, model.in_channels), torch.float64)
        fp16_max.append(np.abs(half - ref).max())
        fp16_mean.append(np.abs(half - ref).mean())
        nv_max.append(np.abs(trip - ref).max())
        nv_mean.append(np.abs(trip - ref).mean())
    return {"fp16_max": float(max(fp16_max)), "fp16_mean": float(max(fp16_mean)),
            "nv21_max": float(max(nv_max)), "nv21_mean": float(max(nv_mean))}
