"""The temporal model against a per-frame one on held-out clips of real people (issue 33's table).

Each model runs every clip in order; a 4-channel model gets its own previous alpha back as channel 3 (zeros on
the first frame), exactly as a deployment does. Measured per clip, then averaged over clips:

- matte error: SAD (/1000) and MSE per frame against the label (verify/metrics.py);
- flicker: mean |alpha_t - alpha_{t-1}| over the pixels whose label did not change between the two frames (the
  label is static there, so any change is the model's);
- recovery: the run repeated with the previous alpha replaced at one frame k (the first with the person present
  after a third of the clip) by zeros ("blank") or by the model's last alpha shifted by a quarter of the width
  ("corrupt"); frames from k until the frame's MSE is back within RECOVERY_BOUND of the undisturbed run's (the
  clip's remaining length + 1 if never);
- empty frames: mean alpha on frames without the person (label all zero);
- backlight: SAD / MSE on held-out clips rendered with a strong light behind the person.
A 3-channel model ignores the previous alpha, so its recovery is 0 frames by construction.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import preprocess
from ..verify.metrics import mse, sad
from .clips import Clip, Frame

RECOVERY_BOUND = 1e-3  # MSE above the undisturbed run's that still counts as recovered
CORRUPT_SHIFT = 0.25   # of the frame width


def _run(model: torch.nn.Module, frames: list[Frame], disturb: tuple[int, str] | None = None,
         clean: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Alphas (HxW float32) of the model on the frames, feeding back its own previous alpha. With `disturb`
    (k, "blank" | "corrupt") the previous alpha at frame k is replaced; frames before k are the undisturbed run's
    (`clean`, when given, instead of being computed again)."""
    out: list[np.ndarray] = []
    h, w = frames[0].alpha.shape
    with torch.no_grad():
        if model.in_channels == 3:
            for i in range(0, len(frames), 8):
                x = torch.from_numpy(np.concatenate([preprocess.normalize(f.image) for f in frames[i:i + 8]]))
                out.extend(model(x).numpy()[:, 0])
            return out
        prev = np.zeros((h, w), np.float32)
        start = 0
        if disturb is not None and clean is not None and disturb[0] > 0:
            start = disturb[0]
            out.extend(clean[:start])
            prev = clean[start - 1]
        for t, f in enumerate(frames[start:], start):
            if disturb is not None and t == disturb[0]:
                prev = np.zeros_like(prev) if disturb[1] == "blank" else np.roll(prev, int(CORRUPT_SHIFT * w), 1)
            x = np.concatenate([preprocess.normalize(f.image), prev[None, None]], axis=1)
            prev = model(torch.from_numpy(x)).numpy()[0, 0]
            out.append(prev)
    return out


def flicker(alphas: list[np.ndarray], frames: list[Frame]) -> float:
    """Mean |a_t - a_{t-1}| over pixels with a static label, averaged over frame pairs that have such pixels."""
    vals = []
    for t in range(1, len(frames)):
        static = frames[t].alpha == frames[t - 1].alpha
        if static.any():
            vals.append(float(np.abs(alphas[t].astype(np.float64) - alphas[t - 1])[static].mean()))
    return float(np.mean(vals))


def recovery_frame(frames: list[Frame]) -> int | None:
    """The disturbed frame: the first with the person present from a third of the clip on (None if none)."""
    for t in range(len(frames) // 3, len(frames)):
        if frames[t].present:
            return t
    return None


def frames_to_recover(clean: list[float], disturbed: list[float], k: int) -> int:
    for t in range(k, len(clean)):
        if disturbed[t] <= clean[t] + RECOVERY_BOUND:
            return t - k
    return len(clean) - k + 1


def measure_clip(model: torch.nn.Module, frames: list[Frame]) -> dict[str, float]:
    alphas = _run(model, frames)
    sads = [sad(a, f.alpha) for a, f in zip(alphas, frames)]
    mses = [mse(a, f.alpha) for a, f in zip(alphas, frames)]
    res = {"sad": float(np.mean(sads)), "mse": float(np.mean(mses)), "flicker": flicker(alphas, frames)}
    empty = [float(a.mean()) for a, f in zip(alphas, frames) if not f.present]
    res["empty_alpha"] = float(np.mean(empty)) if empty else float("nan")
    k = recovery_frame(frames)
    for kind in ("blank", "corrupt"):
        if k is None or model.in_channels == 3:
            res[f"recover_{kind}"] = 0.0 if k is not None else float("nan")
            continue
        dis = _run(model, frames, (k, kind), alphas)
        res[f"recover_{kind}"] = float(frames_to_recover(mses, [mse(a, f.alpha) for a, f in zip(dis, frames)], k))
    return res


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if v == v]
    return float(np.mean(kept)) if kept else float("nan")


def measure(models: dict[str, torch.nn.Module], clips: list[Clip], backlit: list[Clip],
            leaving: list[Clip] = ()) -> dict[str, dict]:
    """{model name: {metric: mean over clips (nan-aware)}} with backlight_sad / backlight_mse from `backlit` and
    empty_alpha (mean) / empty_alpha_max over the empty frames of `leaving` (clips the person leaves for good;
    without them, of `clips`). Frames are rendered once and shared by all models."""
    frames = [c.frames() for c in clips]
    back = [c.frames() for c in backlit]
    gone = [c.frames() for c in leaving]
    table: dict[str, dict] = {}
    for name, model in models.items():
        model = model.eval()
        rows = [measure_clip(model, f) for f in frames]
        row = {k: _nanmean([r[k] for r in rows]) for k in rows[0]}
        row["empty_alpha_max"] = float("nan")
        row["recover_blank_max"] = float(np.nanmax([r["recover_blank"] for r in rows]))
        row["recover_corrupt_max"] = float(np.nanmax([r["recover_corrupt"] for r in rows]))
        b_sad, b_mse = [], []
        for f in back:
            alphas = _run(model, f)
            b_sad.append(np.mean([sad(a, x.alpha) for a, x in zip(alphas, f)]))
            b_mse.append(np.mean([mse(a, x.alpha) for a, x in zip(alphas, f)]))
        row["backlight_sad"], row["backlight_mse"] = float(np.mean(b_sad)), float(np.mean(b_mse))
        if gone:  # the empty frames of the clips the person left (else those of `clips`, if any)
            empty = [a for f in gone for a, x in zip(_run(model, f), f) if not x.present]
            row["empty_alpha"] = float(np.mean([a.mean() for a in empty])) if empty else float("nan")
            row["empty_alpha_max"] = float(max(a.max() for a in empty)) if empty else float("nan")
        table[name] = row
    return table
