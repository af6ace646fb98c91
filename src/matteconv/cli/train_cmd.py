"""`matteconv train`: MODNet training on built-in synthetic data or a user's data (library: matteconv.train)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import app, backbone_copy_option, console, friendly
from ..preprocess import parse_size


@app.command()
@friendly
@backbone_copy_option
def train(
    output: Path = typer.Option(..., "-o", "--output", help="Checkpoint to write (.pt, .pth, .ckpt or .safetensors); "
                                "OUT.state.pt beside it holds what --resume needs."),
    in_channels: int = typer.Option(3, "--in-channels", help="3, or 4 for the temporal model (previous alpha)."),
    hr_channels: int = typer.Option(None, "--hr-channels", help="Width of MODNet's HR and fusion branches (official "
                                    "constructor argument; default 32, or the --init checkpoint's). 16 is faster."),
    init: Path = typer.Option(None, "--init", help="Start from this checkpoint; a 3-channel one is widened with "
                              "zero weights when --in-channels 4 (the seed's temporal recipe)."),
    steps: int = typer.Option(1000, "--steps"),
    batch_size: int = typer.Option(4, "--batch-size", help="Global batch (split over torchrun processes)."),
    size: str = typer.Option("256", "--size", help="Training crop N or HxW, multiples of 32."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd (official: momentum 0.9) or adam."),
    lr: float = typer.Option(0.01, "--lr", help="Learning rate (official: 0.01 with SGD)."),
    lr_step: float = typer.Option(0.25, "--lr-step", help="StepLR period as a fraction of the run (official 0.25)."),
    lr_gamma: float = typer.Option(0.1, "--lr-gamma", help="StepLR factor (official 0.1)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same machine: the same run."),
    images: Path = typer.Option(None, "--images", help="Your data: a folder of images (composites) ..."),
    alphas: Path = typer.Option(None, "--alphas", help="... and a folder of alphas with the same names."),
    clips: Path = typer.Option(None, "--clips", help="Your clips, VideoMatte240K layout (fgr/<clip>/, pha/<clip>/)."),
    backgrounds: Path = typer.Option(None, "--backgrounds", help="Backgrounds for --clips (default: built-in photos)."),
    people: Path = typer.Option(None, "--people", help="Clips of real people from package photos, cut out by this "
                                "checkpoint's matte (e.g. the official model), over real backgrounds."),
    freeze_norm: bool = typer.Option(False, "--freeze-norm", help="Keep BatchNorm statistics (fine-tuning a "
                                     "trained or imported model)."),
    freeze: list[str] = typer.Option([], "--freeze", help="Keep this branch's weights as loaded: lr_branch "
                                     "(with the backbone), hr_branch or f_branch; repeatable."),
    only_previous_alpha: bool = typer.Option(False, "--only-previous-alpha", help="With --init and --in-channels "
                                             "4: train only the weights that read the previous alpha."),
    p_blank: float = typer.Option(0.3, "--p-blank", help="Temporal: probability of a blank previous alpha."),
    p_affine: float = typer.Option(0.5, "--p-affine", help="Temporal: probability of an affine-jittered one."),
    p_light: float = typer.Option(0.5, "--p-light", help="Probability of the point/line light augmentation."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
    save_every: int = typer.Option(0, "--save-every", help="Also save every N steps (0: only at the end)."),
    half: bool = typer.Option(False, "--half", help="Store the weights as float16 (half the size; loads exactly)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in OUT.state.pt."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Train MODNet with its three objectives (semantic, detail, fusion); official optimiser and schedule by default."""
    import torch

    from ..train import TrainConfig, train as run

    cfg = TrainConfig(in_channels=in_channels, hr_channels=hr_channels, size=parse_size(size), batch_size=batch_size, steps=steps,
                      optimizer=optimizer, lr=lr, lr_step=lr_step, lr_gamma=lr_gamma, seed=seed,
                      init=str(init) if init else None, images=str(images) if images else None,
                      alphas=str(alphas) if alphas else None, clips=str(clips) if clips else None,
                      backgrounds=str(backgrounds) if backgrounds else None,
                      people=str(people) if people else None, freeze_norm=freeze_norm, freeze=tuple(freeze),
                      only_previous_alpha=only_previous_alpha, p_blank=p_blank, p_affine=p_affine,
                      p_light=p_light, device=device)
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TextColumn("{task.fields[rate]} img/s"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("train", total=steps, loss="-", rate="-")

        def on_step(step: int, total: int, loss: float, rate: float) -> None:
            bar.update(task, completed=step, loss=f"{loss:.4f}", rate=f"{rate:.2f}")

        summary = run(cfg, output, resume=resume, save_every=save_every,
                      save_dtype=torch.float16 if half else torch.float32, threads=threads, on_step=on_step)
    info = {k: v for k, v in asdict(summary).items() if k != "losses"}
    if as_json:
        console.print_json(json.dumps(info))
        return
    t = Table(title="train", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in info.items():
        t.add_row(k.replace("_", " "), f"{v:.4g}" if isinstance(v, float) else str(v))
    console.print(t)
