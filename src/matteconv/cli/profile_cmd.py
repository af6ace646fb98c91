"""`matteconv profile`: the predicted Ascend 310 time of an ONNX or Caffe model, per layer, with the speed
warnings (library: matteconv.ascend.profile)."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from . import app, console, err_console, friendly


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise ValueError(f"--size {text!r}: give HxW, e.g. 384x384") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise ValueError(f"--size {text!r}: give HxW, e.g. 384x384")
    return parts[0], parts[1]


@app.command("profile")
@friendly
def profile(
    model: Path = typer.Argument(..., help="ONNX model, or Caffe .prototxt (shapes from pycaffe)."),
    soc: str = typer.Option("Ascend310", "--soc", help="SoC to predict for (Ascend310)."),
    precision: str = typer.Option("fp16", "--precision", help="fp16 (atc's force_fp16) or int8 (every Cube "
                                                              "layer, unless --quant-record says which)."),
    quant_record: Path = typer.Option(None, "--quant-record", help="`matteconv quantize`'s record: its INT8 layers "
                                                                   "run in INT8, the layers it skipped in fp16."),
    output_type: str = typer.Option(None, "--output-type", help="fp32 or fp16: the .om's output type (default: "
                                                                "the model's, fp32 for matteconv exports)."),
    aipp: str = typer.Option("YUV420SP_U8", "--aipp", help="AIPP on the first input: a config (.cfg), an "
                                                          "input format (YUV420SP_U8, RGB888_U8...), or none."),
    size: str = typer.Option(None, "--size", help="Predict at this input HxW instead of the model's (every map "
                                                  "scaled with the input, as in a fully convolutional model)."),
    fps: float = typer.Option(None, "--fps", help="Also answer: the largest input (multiples of --multiple, the "
                                                  "model's aspect ratio) whose predicted time holds this rate."),
    multiple: int = typer.Option(32, "--multiple", min=1, help="With --fps: sizes are multiples of this."),
    top: int = typer.Option(25, "--top", min=0, help="Rows of the per-layer table (the slowest; 0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (every layer) instead of tables."),
):
    """Predict what MODEL costs as an .om on the Ascend 310: per layer the engine (Cube, Vector, AI CPU), the
    time and what bounds it (compute, memory, padding, layout, aicpu, overhead); the total with AIPP and the
    output TransData; warnings for what costs speed, with the fix."""
    from ..ascend.profile import get_soc, largest_size_for_fps, load_graph, precisions_for, profile_graph
    from ..ascend.profile.walk import resolve_aipp

    if output_type not in (None, "fp16", "fp32"):
        raise ValueError(f"--output-type {output_type!r}: choose fp16 or fp32")
    the_aipp = resolve_aipp(aipp)
    chip = get_soc(soc)
    precs = precisions_for(precision, quant_record)
    graph = load_graph(model)
    hw = _size(size)
    if hw is not None:
        graph = graph.scaled(*hw)
    prof = profile_graph(graph, chip, precs, output_type, the_aipp)
    answer = largest_size_for_fps(graph, chip, fps, precs, output_type, the_aipp, multiple) if fps else None
    if as_json:
        d = prof.to_dict()
        d["cube_use"] = round(prof.cube_use(chip), 4)
        if answer is not None:
            d["largest_for_fps"] = answer.to_dict()
        typer.echo(json.dumps(d, indent=1))
        return
    _render(prof, chip, top)
    if answer is not None:
        if answer.size is None:
            console.print(f"[bold red]no size[/] holds {fps:g} fps: even {answer.tried[0][0]}x{answer.tried[0][1]} "
                          f"is predicted at {answer.tried[0][2] * 1e3:.2f} ms")
        else:
            h, w = answer.size
            console.print(f"largest input that holds {fps:g} fps: [bold]{h}x{w}[/] (HxW, multiples of {multiple}), "
                          f"predicted {answer.total * 1e3:.2f} ms = {1 / answer.total:.1f} fps")


def _ms(t: float) -> str:
    return f"{t * 1e3:.3f}"


def _render(prof, chip, top: int) -> None:
    h, w = prof.input_hw
    rows = [x for x in prof.layers if x.time > 0]
    rows.sort(key=lambda x: -x.time)
    shown = rows if top == 0 else rows[:top]
    table = Table(title=f"{escape(prof.model)} on {prof.soc} at {h}x{w}, {prof.precision}"
                        f"{'' if top == 0 or len(rows) <= top else f' (slowest {top} of {len(rows)} kernels)'}")
    for col in ("layer", "type", "engine", "prec", "ms", "bound"):
        table.add_column(col, justify="right" if col == "ms" else "left")
    table.add_column("detail", overflow="fold")
    for x in [*shown, *prof.extras]:
        table.add_row(escape(x.name), x.type, x.engine, x.precision, _ms(x.time), x.bound, escape(x.detail))
    console.print(table)
    fused = sum(1 for x in prof.layers if x.bound == "fused")
    console.print(f"total [bold]{prof.total * 1e3:.3f} ms[/] = [bold]{prof.fps:.1f} fps[/] "
                  f"({prof.macs / 1e9:.2f} GMAC, {prof.cube_use(chip):.0%} of Cube peak; {len(rows)} kernels, "
                  f"{fused} layers fused; AIPP {prof.aipp or 'none'}, output {prof.output_type})")
    console.print("by engine: " + ", ".join(f"{k} {_ms(v)}" for k, v in prof.by("engine").items()) + " ms")
    console.print("by bound: " + ", ".join(f"{k} {_ms(v)}" for k, v in prof.by("bound").items()) + " ms")
    for wrn in prof.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(wrn.line())}", highlight=False, soft_wrap=True)
