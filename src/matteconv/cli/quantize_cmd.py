"""`matteconv quantize`: INT8 for Ascend with AMCT, predicted on the host first (library: matteconv.int8.job)."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from . import app, console, friendly


def parse_tolerance(text: str | None, golden: Path | None = None) -> dict | None:
    """'MAX/MEAN' (e.g. 0.05/1e-3) -> {'max_abs', 'mean_abs'}; 'MAX/MEAN/CMAX/CMEAN' adds the confident-pixel
    figures (confident_max_abs, confident_mean_abs: golden alpha < 0.05 or > 0.95); 'golden' is the golden set's
    own `int8` tolerance from its manifest (golden/real: the deployable-matte rule, REAL_INT8)."""
    if text is None:
        return None
    if text == "golden":
        from ..verify.golden import load_golden

        return dict(load_golden(golden).tolerance("int8"))
    keys = ("max_abs", "mean_abs", "confident_max_abs", "confident_mean_abs")
    parts = text.split("/")
    try:
        if len(parts) not in (2, 4):
            raise ValueError
        tol = {k: float(v) for k, v in zip(keys, parts)}
    except ValueError:
        raise ValueError(f"--tolerance {text!r}: give MAX/MEAN, MAX/MEAN/CONFIDENT_MAX/CONFIDENT_MEAN or golden, "
                         "e.g. 0.05/1e-3") from None
    if not all(v > 0 for v in tol.values()):
        raise ValueError(f"--tolerance {text!r}: every number must be positive")
    return tol


def _fmt(e: dict | None) -> str:
    if not e:
        return "-"
    conf = (f" (confident {e['confident_max_abs']:.3g} / {e['confident_mean_abs']:.3g})"
            if "confident_mean_abs" in e else "")
    return f"{e['max_abs']:.3g} / {e['mean_abs']:.3g}{conf}"


@app.command("quantize")
@friendly
def quantize(
    model: Path = typer.Argument(..., help="ONNX model, or Caffe .prototxt (`ascend` export, .caffemodel beside it)."),
    golden: Path = typer.Option(..., "--golden", help="Golden set: calibration inputs (unless --images) and the "
                                                     "float64 alphas the INT8 prediction is judged against."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder (record, AMCT config, command, models)."),
    images: Path = typer.Option(None, "--images", help="Calibrate on the images of this folder instead."),
    activation_offset: bool = typer.Option(True, "--activation-offset/--no-activation-offset",
                                           help="Asymmetric INT8 activations (AMCT's activation_offset; default on)."),
    tolerance: str = typer.Option(None, "--tolerance", help="MAX/MEAN |d alpha| vs float64 (or MAX/MEAN/"
                                                            "CONFIDENT_MAX/CONFIDENT_MEAN, or `golden`: the set's "
                                                            "int8 tolerance): keep the fewest layers fp16 that "
                                                            "bring the predicted INT8 .om within it."),
    prune_seconds: float = typer.Option(None, "--prune-seconds", min=0,
                                        help="With --tolerance: stop trying kept layers back in INT8 after this "
                                             "long (each try predicts the whole golden set)."),
    soc_version: str = typer.Option("Ascend310", "--soc-version", help="For atc, when it builds the .om."),
    aipp: Path = typer.Option(None, "--aipp", help="AIPP config for atc."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Calibrate MODEL for INT8 as AMCT does (IFMR activations, ARQ weights), predict the INT8 .om against the
    golden set, write AMCT's config and command, and run amct + atc when they are installed."""
    import json

    from ..int8.job import quantize_job

    tol = parse_tolerance(tolerance, golden)
    with console.status("quantizing...") as status:
        result = quantize_job(model, golden, output, images, activation_offset, tol, soc_version, aipp,
                              progress=lambda m: status.update(m), prune_seconds=prune_seconds)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    rec = result.record
    t = Table(title=f"{model.name}: INT8 plan")
    for col in ("", "value"):
        t.add_column(col, overflow="fold")
    t.add_row("layers INT8 / kept fp16", f"{len(rec.quantized)} / {len(rec.skipped)}")
    t.add_row("MACs in INT8", f"{100 * rec.int8_share():.1f}% of {rec.total_macs / 1e9:.2f} GMAC")
    t.add_row("activations", "asymmetric (offset)" if rec.activation_offset else "symmetric")
    t.add_row("predicted fp16 .om vs float64 (max / mean)", _fmt(result.fp16))
    if result.skip:
        t.add_row("predicted INT8 .om, all layers INT8", _fmt(result.skip.all_int8_error))
    t.add_row("predicted INT8 .om" + (" (with the skip)" if result.skip else ""),
              _fmt(result.predicted))
    console.print(t)
    if result.skip:
        tr = result.skip.trade()
        state = "[green]met[/]" if tr["met"] else "[bold red]not met[/]"
        console.print(f"tolerance {tolerance}: {state}; kept fp16: {len(tr['kept_fp16'])} layer(s), "
                      f"{100 * tr['kept_macs_share']:.1f}% of the MACs; {result.skip.evaluations} predictions in "
                      f"{result.skip.seconds:.0f} s", highlight=False)
        if tr["note"]:
            console.print(f"  {tr['note']}", highlight=False)
        for name in tr["kept_fp16"]:
            console.print(f"  fp16: {name}", highlight=False)
    console.print(f"wrote {result.out / 'quant.json'}, {result.config}", highlight=False)
    console.print(f"AMCT: {result.amct_status}", highlight=False)
    console.print(result.command, highlight=False, markup=False, soft_wrap=True)
    if result.amct:
        console.print(f"deploy model: {result.amct['deploy']}", highlight=False)
        console.print(f"om: {result.om or result.om_status}", highlight=False)
    if result.skip and not result.skip.met:
        raise typer.Exit(1)
