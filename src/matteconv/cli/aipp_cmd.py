"""`matteconv aipp`: write a static AIPP config that reproduces matteconv's preprocessing on the chip, and
`matteconv aipp check CFG`: say what ATC does with any config (errors exit 2, warnings 0)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..aipp.render import CLI_FORMATS, AippSpec, parse_crop, parse_wxh, write_config
from ..errors import MatteconvError
from ..fileio import sha256_file
from ..preprocess import MEAN, STD, parse_size
from . import app, console, fail, friendly

aipp_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                       help="Write an AIPP config (aipp_op { ... }) for ATC/OMG --insert_op_conf, or check one.")
app.add_typer(aipp_app, name="aipp")


@aipp_app.callback(invoke_without_command=True)
@friendly
def aipp(
    ctx: typer.Context,
    output: Path = typer.Option(None, "-o", "--output", help="Config file to write (atomically)."),
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
    """Write an AIPP config (aipp_op { ... }) for ATC/OMG --insert_op_conf; `aipp check CFG` explains one."""
    if ctx.invoked_subcommand:
        return
    if output is None:
        fail("give -o/--output to write a config (or `matteconv aipp check CFG` to check one)")
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


def _model_inputs(model: Path) -> list[tuple[str, tuple[int, ...]]]:
    from ..ascend.command import inspect_caffe, inspect_onnx

    if model.is_dir():
        raise MatteconvError(f"{model}: is a folder, not a model file")
    if not model.is_file():
        raise MatteconvError(f"{model}: model file not found")
    suffix = model.suffix.lower()
    if suffix not in (".onnx", ".prototxt"):
        raise MatteconvError(f"{model}: expected a .onnx or .prototxt model")
    inputs = (inspect_onnx if suffix == ".onnx" else inspect_caffe)(model).inputs
    if not inputs:  # the config would be blamed for the model's emptiness
        raise MatteconvError(f"{model}: the model declares no inputs (an empty file, or not a model)")
    return inputs


def _read_rgb(path: Path):
    import cv2
    import numpy as np

    from ..preprocess import to_rgb

    if path.is_dir():
        raise MatteconvError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise MatteconvError(f"{path}: image not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:  # OpenCV asserts on some damaged files instead of returning None
        img = None
    if img is None:
        why = "an empty file" if not data.size else "OpenCV cannot decode it"
        raise MatteconvError(f"{path}: not a readable image ({why})")
    if img.ndim == 3 and img.shape[2] >= 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return to_rgb(img)


@aipp_app.command("check")
@friendly
def check(
    cfg_path: Path = typer.Argument(..., metavar="CFG", help="AIPP config (--insert_op_conf file)."),
    model: Path = typer.Option(None, "--model", help="Model (.onnx or .prototxt) whose input the config feeds."),
    image: Path = typer.Option(None, "--image", help="A photo to push through the emulated AIPP."),
    output: Path = typer.Option(None, "-o", "--output", help="With --image: save the model input as .npy."),
    soc_version: str = typer.Option("Ascend310", "--soc-version", help="Target SoC (AIPP rules differ per SoC)."),
    fp16: bool = typer.Option(False, "--fp16", help="With --image: round as the chip's fp16 registers do."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Explain an AIPP config: output size, raw bytes per frame, each output channel, GE defaults, warnings;
    refusals (what ATC refuses, with the rule) exit 2."""
    from ..aipp import check_config, load_config
    from ..aipp.parse import AippParseError
    from ..fileio import atomic_path, check_output_file, json_text

    from ..ascend.command import check_soc_version

    check_soc_version(soc_version)  # the rules differ per SoC: an unknown one would check against none
    if output is not None and image is None:
        raise MatteconvError("-o/--output saves the emulated model input: give --image too")
    if output is not None:
        if output.suffix.lower() != ".npy":
            raise MatteconvError(f"{output}: the model input is saved as .npy; name the file *.npy")
        check_output_file(output)
    try:
        cfg = load_config(cfg_path, validate=False)
    except AippParseError as e:
        if not as_json:
            raise
        # what ATC's own parser refuses is a refusal like any other: the same report, one finding
        print(json_text({"config": str(cfg_path), "accepted": False, "soc_version": soc_version,
                         "model_inputs": None, "ops": [],
                         "findings": [{"level": "error", "rule": e.rule, "message": str(e), "line": e.line,
                                       "source": "protobuf text format (ATC reads the file with it)"}]}))
        raise typer.Exit(2) from None
    inputs = _model_inputs(model) if model is not None else None
    rgb = _read_rgb(image) if image is not None else None
    explanations, findings = check_config(cfg, inputs, soc_version)
    errors = [f for f in findings if f.level == "error"]
    report = {"config": str(cfg_path), "accepted": not errors, "soc_version": soc_version,
              "model_inputs": [[n, list(s)] for n, s in inputs] if inputs is not None else None,
              "ops": [e.as_dict() for e in explanations], "findings": [f.to_dict() for f in findings]}
    if rgb is not None and not errors and explanations:
        import numpy as np

        from ..aipp.emulate import emulate_image

        ex = explanations[0]
        op = cfg.ops[ex.index]
        hw, channels = None, None
        if inputs and ex.rank < len(inputs) and len(inputs[ex.rank][1]) == 4 and min(inputs[ex.rank][1][1:]) > 0:
            channels, hw = int(inputs[ex.rank][1][1]), tuple(int(d) for d in inputs[ex.rank][1][2:])
        res = emulate_image(op, rgb, hw, fp16=fp16, model_channels=channels)
        report["image"] = {"path": str(image), "src_hw": list(res["src_hw"]), "resized": res["resized"],
                           "shape": list(res["input"].shape), "stats": res["stats"],
                           "vs_matteconv_preprocess": res["vs_preprocess"]}
        if output is not None:
            with atomic_path(output) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, res["input"])
            report["image"]["output"] = str(output)
    elif rgb is not None:
        report["image"] = {"path": str(image), "skipped": "the config is refused" if errors else
                           "no static aipp_op to emulate"}
    if as_json:
        print(json_text(report))
    else:
        _print_report(report, cfg.path)
    if errors:
        raise typer.Exit(2)


def _print_report(report: dict, path: str) -> None:
    from rich.markup import escape

    verdict = "[green]ATC accepts it[/]" if report["accepted"] else "[bold red]ATC refuses it[/]"
    console.print(f"[bold]{escape(path)}[/]: {verdict} (rules for {report['soc_version']})", highlight=False)
    for op in report["ops"]:
        src = op["src_hw"]
        out = op["output_hw"]
        name = op["input_name"]
        which = (repr(name) if report.get("model_inputs") is None else f"{op['rank']} ({name!r})") if name else \
            op["rank"]
        console.print(f"  aipp_op for model input {escape(str(which))}: {op['input_format']}, app sends "
                      f"{escape(op['frame'])}", highlight=False)
        if src:
            raw = f", {op['raw_bytes']} bytes per frame" if op["raw_bytes"] else ""
            console.print(f"    source {src[1]}x{src[0]} (WxH){raw}", highlight=False)
        if out:
            console.print(f"    output {out[1]}x{out[0]} (WxH) after crop and padding", highlight=False)
        for line in op["csc"]:
            console.print(f"    {escape(line)}", highlight=False)
        for line, (lo, hi) in zip(op["channels"], op["ranges"]):
            console.print(f"    {escape(line)}   (0..255 -> {lo:.4g}..{hi:.4g})", highlight=False)
        if op["defaults"]:
            console.print(f"    GE defaults in force: {escape('; '.join(op['defaults']))}", highlight=False)
    for f in report["findings"]:
        where = f"{path}:{f['line']}" if f["line"] else path
        style = "bold red" if f["level"] == "error" else "yellow"
        src = f" [{f['source']}]" if f["source"] else ""
        console.print(f"  [{style}]{f['level']}[/] {escape(where)}: {escape(f['message'])} ({f['rule']}){escape(src)}",
                      highlight=False, soft_wrap=True)
    if report.get("model_inputs") is not None:
        fits = not any(f["rule"] in ("tbe.output-size", "tbe.channels", "ge.input-rank") for f in report["findings"])
        console.print(f"  model inputs {report['model_inputs']}: {'fits' if fits else 'does not fit'}",
                      highlight=False)
    img = report.get("image")
    if img and "stats" in img:
        stats = ", ".join(f"ch{i} {s['min']:.4g}..{s['max']:.4g} mean {s['mean']:.4g}" for i, s in enumerate(img["stats"]))
        console.print(f"  image {escape(img['path'])}{' (resized to the source size)' if img['resized'] else ''}: "
                      f"model input {img['shape']}: {stats}", highlight=False)
        vs = img["vs_matteconv_preprocess"]
        if vs is not None:
            console.print(f"  |AIPP - matteconv preprocess|: max {vs['max']:.4g} ({vs['max'] * 127.5:.3g} LSB of "
                          f"1/127.5), mean {vs['mean']:.4g} ({vs['mean'] * 127.5:.3g} LSB)", highlight=False)
        if img.get("output"):
            console.print(f"  wrote {escape(img['output'])}", highlight=False)
    elif img:
        console.print(f"  image skipped: {img['skipped']}", highlight=False)
