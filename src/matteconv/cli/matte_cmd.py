"""`matteconv matte`: run a model (checkpoint, ONNX or Caffe) on an image, a folder of images or a video."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ..matte import BACKGROUND_HELP, DEFAULT_BACKGROUND
from . import app, backbone_copy_option, console, err_console, friendly


class FpsColumn(ProgressColumn):
    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        fps = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{fps:.1f} fps", style="cyan")


@app.command()
@friendly
@backbone_copy_option
def matte(
    input: Path = typer.Argument(..., help="An image, a folder of images (processed in name order, as a sequence) "
                                           "or a video file (OpenCV: mp4, avi, mov, mkv, ...)."),
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint (.pt/.pth/.ckpt/.safetensors), .onnx or "
                                                           "Caffe .prototxt."),
    output: Path = typer.Option(..., "--output", "-o", help="Image in: an image file. Folder in: a new folder of "
                                                           "NAME.png. Video in: .mp4 (mp4v) or .avi (MJPG) with the "
                                                           "input's frame count, size and rate, or a new folder of "
                                                           "PNG frames."),
    background: str = typer.Option(DEFAULT_BACKGROUND, "--background", "-b", help=BACKGROUND_HELP),
    size: str = typer.Option(None, "--size", help="Model input size N or HxW (multiples of 32) for any-size "
                                                  "models; a fixed-size model always uses its own (a differing "
                                                  "--size is reported and ignored)."),
    policy: str = typer.Option(None, "--policy", help="Resize policy: 'device' (centre crop to the model's aspect, "
                                                      "resize), 'letterbox' (fit the whole frame, grey 128 bands; "
                                                      "the matte covers the whole frame) or 'official' (the MODNet "
                                                      "demo's resize; default for any-size models). Fixed-size "
                                                      "models: device, or letterbox when a crop would drop more "
                                                      "than 10% of the frame."),
    mirror: bool = typer.Option(False, "--mirror", help="Mirror frames before the model (as a selfie camera); the "
                                                        "matte is mirrored back."),
    alpha_out: Path = typer.Option(None, "--alpha-out", help="Also write the matte (8-bit gray), same kind as "
                                                             "OUTPUT: image, folder or video."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="Write input | result side by side (twice "
                                                                    "the width)."),
    no_temporal: bool = typer.Option(False, "--no-temporal", help="4-channel models: feed zeros as previous "
                                                                  "alpha on every frame (no feedback)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary (no progress bar)."),
):
    """Composite people over a new background; temporal models get the previous alpha fed back.

    Inputs with an alpha channel have it ignored (the matte comes from the model); 16-bit images are scaled to
    8-bit. Output appears only when complete (written to a temporary file or folder, then renamed)."""
    from ..matte import matte as run_matte

    kw = {"background": background, "size": size, "policy": policy, "mirror": mirror, "alpha_out": alpha_out,
          "side_by_side_out": side_by_side, "temporal": not no_temporal}
    if as_json:
        summary = run_matte(input, model, output, **kw)
        print(json.dumps(summary.to_dict(), indent=1))
        return
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), FpsColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(f"matting {input.name}", total=None)
        summary = run_matte(input, model, output, **kw,
                            on_start=lambda total: bar.update(task, total=total),
                            on_frame=lambda: bar.advance(task))
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False)
    size_txt = "x".join(map(str, summary.model_size)) if summary.model_size else "per frame"
    console.print(f"{summary.frames} frame(s) via {summary.backend} ({summary.in_channels}-channel, {summary.policy} "
                  f"policy, model input {size_txt}) -> {output}" + (f", matte -> {alpha_out}" if alpha_out else ""),
                  highlight=False)
    if summary.temporal is not None:
        fb = "on" if summary.temporal else "off (--no-temporal)"
        console.print(f"temporal feedback {fb}: {summary.resets} reset(s), {summary.scene_cuts} scene cut(s)",
                      highlight=False)
    if summary.flicker is not None:
        console.print(f"flicker: {summary.flicker:.4g} mean |d alpha| over static pixels "
                      f"({summary.static_fraction:.0%} of pixels static)", highlight=False)
    console.print(f"throughput: model {summary.model_fps:.1f} fps, end-to-end {summary.e2e_fps:.1f} fps "
                  f"({summary.total_seconds:.2f} s)", highlight=False)
