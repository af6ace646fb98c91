#!/usr/bin/env python3
"""Training throughput next to eager inference (issue 8): one training step (forward with MODNet's three heads, the
three losses, backward, and Adam as `matteconv train --optimizer adam` makes it; the trimap comes with the batch, as
in `matteconv train`) against one eager inference, same batch (4) and size (256x256), 2 threads, timed alternately
in one run. Goal: step / inference <= 3.5 (a plain loop with one L1 loss measured 3.4x). The ratio is given in wall
time and in CPU time (this process, all threads): on a shared machine the CPU ratio is the steadier one. Also the
images/s of `matteconv train` (synthetic batches built ahead in a DataLoader worker process beside the step):
steady, after the first 5 steps, and over the whole 16-step run, which includes starting the worker. Both are
timed with glibc keeping freed memory in the heap, as `matteconv train` runs (matteconv/heap.py)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SPREAD_WARN, time_alternately  # noqa: E402

from matteconv.heap import keep_freed_memory  # noqa: E402
from matteconv.model.modnet import MODNet  # noqa: E402
from matteconv.train import TrainConfig, train  # noqa: E402
from matteconv.train.data import SyntheticSource, to_batch  # noqa: E402
from matteconv.train.losses import modnet_losses, trimap  # noqa: E402
from matteconv.train.trainer import TrainingMODNet, make_optimizer  # noqa: E402

WARM_STEPS = 5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    size, batch = (256, 256), 4
    source = SyntheticSource(0, size, False, 0.3, 0.5, 0.5)
    x, gt = to_batch([source.item(i) for i in range(batch)], 3)
    tri = trimap(gt)  # as `matteconv train` gets it: built with the batch in the DataLoader worker
    torch.manual_seed(0)
    infer_model, train_model = MODNet(3).eval(), MODNet(3).train()
    net = TrainingMODNet(train_model)
    opt, _ = make_optimizer(TrainConfig(optimizer="adam", lr=1e-4), train_model.parameters())  # as `matteconv train`

    def inference():
        with torch.no_grad():
            infer_model(x)

    def step():
        loss = modnet_losses(*net(x), x[:, :3], gt, tri).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    cpu: dict = {}
    spread: dict = {}
    with keep_freed_memory():  # as `matteconv train` runs its steps; inference shares the same heap
        ms = time_alternately({"inference": inference, "train step": step}, args.repeats, cpu=cpu, spread=spread)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(TrainConfig(steps=16, size=size, batch_size=batch, optimizer="adam", lr=1e-4),
                        Path(tmp) / "bench.safetensors", threads=2,
                        on_step=lambda *_: stamps.append(time.perf_counter()))
    # steady state: steps 6..16, after the worker process has started and the first batches are queued
    steady = (len(stamps) - WARM_STEPS) * batch / (stamps[-1] - stamps[WARM_STEPS - 1])
    res = {"size": "256x256", "batch": batch, "inference_ms": ms["inference"], "train_step_ms": ms["train step"],
           "step_vs_inference": ms["train step"] / ms["inference"], "inference_cpu_ms": cpu["inference"],
           "train_step_cpu_ms": cpu["train step"], "step_vs_inference_cpu": cpu["train step"] / cpu["inference"],
           "train_images_per_s": summary.images_per_s, "train_images_per_s_steady": steady,
           "timing_spread": max(spread.values())}
    t = Table(title="training throughput (2 threads, batch 4, 256x256, timed alternately)")
    for c in ("eager inference ms", "train step ms", "step / inference (goal <= 3.5)", "same in CPU time",
              "matteconv train img/s (steady / incl. worker start)"):
        t.add_column(c, justify="right")
    t.add_row(f"{res['inference_ms']:.0f}", f"{res['train_step_ms']:.0f}", f"{res['step_vs_inference']:.2f}",
              f"{res['step_vs_inference_cpu']:.2f}", f"{steady:.2f} / {res['train_images_per_s']:.2f}")
    console = Console(width=140)
    console.print(t)
    if res["timing_spread"] > SPREAD_WARN:
        console.print(f"[yellow]timings spread {res['timing_spread']:.0%} (slowest tenth against fastest): other load "
                      "shared this machine during the run; rerun on a quiet machine before judging the goal[/]")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
