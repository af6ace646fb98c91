"""`matteconv verify`: every given artifact is a stage, judged against the golden set; exit 1 on regression."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress

from . import app, backbone_copy_option, console, friendly
from ..errors import MatteconvError

STAGE_NAMES = ("torch", "onnx", "caffe", "aipp", "om", "fp16-torch", "fp16-onnx", "fp16-caffe", "int8-onnx",
               "int8-caffe")


def check_input_files(options: dict[str, Path | None]) -> None:
    """Every file the user named exists and is a file, before any stage runs: a missing --om is an error, not a
    skipped stage (one line naming the option and the path)."""
    for option, path in options.items():
        if path is None:
            continue
        if not path.exists():
            raise MatteconvError(f"{path}: not found ({option})")
        if path.is_dir():
            raise MatteconvError(f"{path}: is a folder ({option} takes a file)")


@app.command()
@friendly
@backbone_copy_option
def verify(
    golden: Path = typer.Option(Path("golden/photos"), "--golden", help="Golden set folder (manifest.json)."),
    ckpt: Path = typer.Option(None, "--ckpt", help="Checkpoint for the torch stage (default: the golden set's reference)."),
    onnx: Path = typer.Option(None, "--onnx", help="ONNX model: the onnx stage."),
    caffe: Path = typer.Option(None, "--caffe", help="Caffe .prototxt (caffemodel beside it): the caffe stage."),
    aipp: Path = typer.Option(None, "--aipp", help="AIPP config: the aipp stage (emulated AIPP into --onnx)."),
    om: Path = typer.Option(None, "--om", help="Ascend .om: the om stage (needs msame or ais_bench)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also run each checkpoint/ONNX/Caffe stage under the Ascend fp16 "
                                                    "device model: the 'predicted .om' stages (fp16-*)."),
    int8: bool = typer.Option(False, "--int8", help="Also run the ONNX / Caffe stages under the Ascend INT8 device "
                                                    "model: the 'predicted INT8 .om' stages (int8-onnx, int8-caffe)."),
    quant_record: Path = typer.Option(None, "--quant-record", help="With --int8: the record `matteconv quantize` "
                                                                   "wrote (default: calibrate on the golden inputs)."),
    require: list[str] = typer.Option([], "--require", help="A stage that must run (repeatable); a skip fails."),
    json_out: Path = typer.Option(None, "--json", help="Write the report as JSON."),
    junit: Path = typer.Option(None, "--junit", help="Write a JUnit XML report."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report."),
):
    """Run each stage on the golden inputs; exit 0 only if every stage is within tolerance."""
    from ..verify.golden import load_golden
    from ..verify.plan import plan_stages
    from ..verify.report import notes, table, write_json, write_junit
    from ..verify.run import verify as run_verify
    from ..fileio import check_output_file, refuse_overwrite

    for r in require:
        if r not in STAGE_NAMES:
            raise ValueError(f"--require {r}: unknown stage (choose from {', '.join(STAGE_NAMES)})")
    check_input_files({"--ckpt": ckpt, "--onnx": onnx, "--caffe": caffe, "--aipp": aipp, "--om": om,
                       "--quant-record": quant_record})
    if caffe is not None:
        check_input_files({"--caffe (its weights beside it)": caffe.with_suffix(".caffemodel")})
    if quant_record is not None and not int8:
        raise MatteconvError(f"{quant_record}: --quant-record is used by --int8 only; add --int8 or drop it")
    reports = [p for p in (json_out, junit, html) if p is not None]
    for p in reports:
        check_output_file(p)
    gset = load_golden(golden)
    inputs = [ckpt, onnx, caffe, aipp, om, quant_record, gset.root / "manifest.json",
              *(p for it in gset.items for p in (it.input, it.alpha))]
    if caffe is not None:
        inputs.append(caffe.with_suffix(".caffemodel"))
    if om is not None:
        inputs.append(om.with_suffix(".build.json"))
    refuse_overwrite(reports, inputs)
    if aipp is not None:  # a config that does not parse is bad input (exit 2), found before any stage runs
        from ..aipp import load_config

        load_config(aipp)
    with console.status("loading models..."):
        stages = plan_stages(gset, ckpt=ckpt, onnx=onnx, caffe=caffe, aipp=aipp, om=om, required=require,
                             precisions=(("fp16",) if fp16 else ()) + (("int8",) if int8 else ()),
                             quant_record=quant_record)
    bad = [s.error for s in stages if s.error]
    if bad:  # a model that cannot load or does not fit the golden set: bad input, before the work
        raise MatteconvError(bad[0] + (f" (and {len(bad) - 1} more problem(s))" if len(bad) > 1 else ""))
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("verifying", total=len(gset.items) * sum(s.run is not None for s in stages))
        report = run_verify(gset, stages, require, keep_alphas=html is not None,
                            progress=lambda name: bar.update(task, advance=1, description=f"verifying {name}"))
    console.print(table(report))
    for line in notes(report):
        console.print(line, highlight=False)
    if onnx is not None and (om is not None or fp16 or int8):  # the device's speed beside the .om stages
        from ..ascend.profile.walk import predicted_line

        speed = predicted_line(onnx, aipp)
        if speed:
            console.print(f"om: {speed}", highlight=False)
    if json_out:
        write_json(report, json_out)
    if junit:
        write_junit(report, junit)
    if html:
        from ..verify.html import write_html

        write_html(report, gset, html)
    written = [str(p) for p in (json_out, junit, html) if p]
    if written:
        console.print(f"wrote {', '.join(written)}", highlight=False)
    if not report.ok:
        bad = [f"{r.name} ({r.status})" for r in report.results if r.status in ("failed", "error")
               or (r.status == "skipped" and r.name in require)]
        missing = [q for q in require if not any(r.name == q for r in report.results)]
        console.print(f"[bold red]FAILED[/]: {', '.join(bad + [f'{m} (required, not given)' for m in missing])}")
        raise typer.Exit(1)
    console.print("[green]all stages within tolerance[/]")
