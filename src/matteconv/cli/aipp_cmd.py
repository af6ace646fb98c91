"""`matteconv aipp`: write a static AIPP config that reproduces matteconv's preprocessing on the chip."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..aipp.render import CLI_FORMATS, AippSpec, parse_crop, parse_wxh, write_config
from ..fileio import sha256_file
from ..preprocess import MEAN, STD, parse_size
from . import app, console, friendly


@app.command("aipp")
@friendly
def aipp(
    output: Path = typer.Option(..., "-o", "--output", help="Config file to write (atomically)."),
    input_format: str = typer.Option("nv21", "--input-format", help=f"Device input: {'|'.join(CLI_FORMATS)}."),
    size: str = typer.Option("384", "--size", help="Model input size: N or HxW (multiples of 32)."),
    src_size: str = typer.Option(None, "--src-size", help="Camera frame size WxH (default: the model size)."),
    crop: str = typer.Option(None, "--crop", help="Crop window X,Y,W,H in the source (W,H = model size)."),
    color_range: str = typer.Option("video", "--color-range", help="YUV range: video (16..235) or full (JPEG)."),
    mean: float = typer.Option(MEAN, "--mean", help="Mean subtracted from every RGB channel."),
    std: float = typer.Option(STD, "--std", help="Divisor after the mean."),
    aipp_input: int = typer.Option(0, "--aipp-input", min=0, help="Model input index AIPP feeds (related_input_rank)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of text."),
):
    """Write an AIPP config (aipp_op { ... }) for ATC/OMG --insert_op_conf."""
    spec = AippSpec(input_format=input_format.lower(), size=parse_size(size),
                    src_size=parse_wxh(src_size) if src_size else None,
                    crop=parse_crop(crop) if crop else None, color_range=color_range.lower(),
                    mean=mean, std=std, related_input_rank=aipp_input)
    text = write_config(spec, output)
    if as_json:
        h, w = spec.size
        sh, sw = spec.src_size or spec.size
        print(json.dumps({"output": str(output), "sha256": sha256_file(output), "input_format": spec.input_format,
                          "model_size": [h, w], "src_size_wh": [sw, sh], "crop": spec.crop,
                          "color_range": spec.color_range, "mean": mean, "std": std,
                          "related_input_rank": aipp_input, "lines": text.count("\n")}))
    else:
        console.print(f"wrote {output} ({spec.input_format} frame -> model input {spec.size[0]}x{spec.size[1]} HxW)", highlight=False)
