"""`matteconv export CKPT --to onnx|caffe`."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..errors import MatteconvError
from . import app, backbone_copy_option, console, err_console, friendly
from ..preprocess import parse_size


NO_SPLIT_CONCAT = ("relu-before-concat", "split-concat-conv")  # what --no-split-concat skips


def _does(name: str) -> str:
    """' (what the count counts)' for a pass that says, else ''."""
    from ..export.onnx.passes import REGISTRY

    does = next((p.does for p in REGISTRY if p.name == name), "")
    return f" ({does})" if does else ""


def _list_passes(value: bool):
    """`--list-passes`: the ONNX pass registry in run order, then exit."""
    if not value:
        return
    from ..export.onnx.passes import REGISTRY

    t = Table(title="ONNX passes, in run order")
    for col in ("pass", "runtimes", "default", "after", "why exact"):
        t.add_column(col, overflow="fold")
    for p in REGISTRY:
        t.add_row(p.name, ", ".join(sorted(p.profiles)), "on" if p.default else "off", ", ".join(p.after), p.exact)
    console.print(t)
    raise typer.Exit()


@app.command()
@friendly
@backbone_copy_option
def export(
    ckpt: Path = typer.Argument(..., help="MODNet checkpoint (.pt/.pth/.ckpt/.safetensors)."),
    to: str = typer.Option("onnx", "--to", help="onnx or caffe."),
    output: Path = typer.Option(..., "-o", "--output", help="OUT.onnx, or the stem OUT for OUT.prototxt + OUT.caffemodel."),
    size: str = typer.Option("512", "--size", help="N or HxW, multiples of 32."),
    opset: int = typer.Option(11, "--opset", help="ONNX opset: 11, 13 or 17."),
    dynamic: bool = typer.Option(False, "--dynamic", help="ONNX: dynamic height and width."),
    no_simplify: bool = typer.Option(False, "--no-simplify", help="ONNX: skip onnxsim."),
    no_split_concat: bool = typer.Option(False, "--no-split-concat", help="ONNX: keep Conv(Concat(...)) as traced "
                                         "instead of one Conv per concatenated input plus Add (faster in onnxruntime); "
                                         "the same as --skip-pass relu-before-concat --skip-pass split-concat-conv."),
    skip_pass: list[str] = typer.Option([], "--skip-pass", metavar="NAME", help="ONNX: do not run this pass "
                                        "(repeatable; names: --list-passes)."),
    list_passes: bool = typer.Option(False, "--list-passes", callback=_list_passes, is_eager=True,
                                     help="List the ONNX passes (run order, runtimes, default, why exact) and exit."),
    fold_batchnorm: bool = typer.Option(False, "--fold-batchnorm", help="ONNX: fold IBNorm's BatchNorm half into its "
                                        "convolution (slower in onnxruntime on AMD EPYC AVX2, measured; README)."),
    runtime: str = typer.Option("any", "--runtime", help="ONNX: any (one file for every runtime, atc included) or "
                                "onnxruntime (IBNorm and upsamples kept in onnxruntime's blocked layout: faster on the "
                                "CPU, refused by `matteconv om`)."),
    split_inputs: bool = typer.Option(False, "--split-inputs", help="4-channel models: inputs `image` and `prev_alpha`."),
    target: str = typer.Option("bvlc", "--target", help="Caffe: bvlc (also OpenCV DNN 4.x), ascend (CANN atc) or ddk (old DDK omg, HiLens Kit)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Load a checkpoint safely, export it, check the export numerically against PyTorch."""
    from ..export.memory import check_memory
    from ..export.onnx.exporter import RUNTIMES, SUPPORTED_OPSETS
    from ..export.onnx.passes import resolve
    from ..fileio import check_output_file, refuse_overwrite
    from ..model.checkpoint import load_checkpoint

    hw = parse_size(size)
    if to not in ("onnx", "caffe"):
        raise ValueError(f"--to {to}: choose onnx or caffe")
    if to == "onnx" and opset not in SUPPORTED_OPSETS:
        raise ValueError(f"--opset {opset}: choose from {', '.join(map(str, SUPPORTED_OPSETS))}")
    if to == "onnx" and runtime not in RUNTIMES:
        raise ValueError(f"--runtime {runtime}: choose from {', '.join(RUNTIMES)}")
    skip = [*skip_pass, *(NO_SPLIT_CONCAT if no_split_concat else ())]
    if to == "onnx":
        resolve(runtime, skip)  # an unknown pass name is found before the work
    if to == "caffe":
        from ..export.caffe.targets import get_target

        get_target(target)
        if output.is_dir():  # Path drops a trailing slash: "-o DIR/" would otherwise write DIR.prototxt beside it
            raise MatteconvError(f"{output}: is a folder; give a file name for the output (STEM or STEM.prototxt)")
        stem = output.with_suffix("") if output.suffix in (".prototxt", ".caffemodel") else output
        outputs = [stem.with_suffix(".prototxt"), stem.with_suffix(".caffemodel")]
    else:
        outputs = [output]
    for out in outputs:  # before the work: a bad output path is found in a second, not after the export
        check_output_file(out)
    refuse_overwrite(outputs, [ckpt])
    check_memory(hw)
    ckpt_obj = load_checkpoint(ckpt)
    for note in ckpt_obj.notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    with console.status(f"exporting {ckpt} to {to} at {hw[0]}x{hw[1]}..."):
        if to == "onnx":
            from ..export.onnx.exporter import export_onnx

            res = export_onnx(ckpt_obj, output, hw, opset, dynamic=dynamic, do_simplify=not no_simplify,
                              split_inputs=split_inputs, fold_batchnorm=fold_batchnorm, runtime=runtime, skip=skip)
            info = {"output": str(res.path), "opset": res.opset, "nodes": res.nodes_after,
                    "nodes_before_simplify": res.nodes_before, "passes": res.passes,
                    "rule_rewrites": res.rule_rewrites, "batchnorm_folded": fold_batchnorm, "runtime": res.runtime,
                    "nchwc_block": res.nchwc_block, "inputs": res.input_names,
                    "max_abs_diff_vs_torch": res.max_abs_diff, "parity_tolerance": res.parity_tolerance}
        else:
            from ..export.caffe import export_caffe

            res = export_caffe(ckpt_obj, stem, target=target, size=hw, split_inputs=split_inputs)
            info = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(res).items()}
    if as_json:
        console.print_json(json.dumps(info))
        return
    t = Table(title=f"export to {to}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    if to == "onnx":
        rows = [("file", info["output"]), ("inputs", ", ".join(info["inputs"])), ("opset", str(info["opset"])),
                ("nodes", f"{info['nodes']} ({info['nodes_before_simplify']} as traced)"),
                ("runtime", info["runtime"] + (f" (NCHWc block {info['nchwc_block']})" if info["nchwc_block"] else "")),
                ("passes", "\n".join(f"{name}: {_count_text(n)}{_does(name)}" for name, n in info["passes"].items())
                 or "none")]
        diff = info["max_abs_diff_vs_torch"]
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(info["layer_counts"].items()))
        rows = [("files", f"{info['prototxt']}\n{info['caffemodel']}"), ("target", info["target"]),
                ("inputs", ", ".join(info["input_names"])), ("layers", f"{info['num_layers']}: {counts}"),
                ("parameters", f"{info['num_params']:,}")]
        diff = info["max_abs_diff"]
    for row in rows:
        t.add_row(*row)
    if info.get("rule_rewrites"):  # exact rewrites for Ascend's depthwise rule (export/depthwise_plan.py)
        t.add_row("rewritten for Ascend rules", "\n".join(info["rule_rewrites"]))
    t.add_row("max |d alpha| vs PyTorch", f"{diff:.3g} (real photo, within tolerance)")
    console.print(t)


def _count_text(n) -> str:
    """A pass's count for the table: 18, or `phased 1, contracted 1` for a pass with several forms."""
    return ", ".join(f"{k} {v}" for k, v in n.items()) if isinstance(n, dict) else str(n)
