"""`matteconv om`: compile an ONNX or Caffe model to an Ascend .om with an AIPP config, after checking both."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from ..ascend.build import DEFAULT_TIMEOUT, BuildError, RuleError, plan_build, run_build, write_keep_dtype
from ..ascend.cann import soc_help
from . import app, backbone_copy_option, console, err_console, fail, friendly


OM_HELP = ("Compile MODEL to OUT.om with atc/omg; keeps OUT.build.log and OUT.build.json.\n\n"
           "First the model is checked against the layer/op rules of that compiler (`matteconv rules`) and "
           "--soc-version against the toolkit's CANN version: a violation is refused (exit 2) unless --force.")


@app.command("om", help=OM_HELP)
@friendly
@backbone_copy_option
def om(
    model: Path = typer.Argument(..., help="Model: .onnx, or .prototxt with the .caffemodel beside it."),
    output: Path = typer.Option(..., "-o", "--output", help="Output stem (the tool appends .om)."),
    aipp: Path = typer.Option(None, "--aipp", help="AIPP config (see `matteconv aipp`)."),
    soc_version: str = typer.Option("Ascend310", "--soc-version", help=soc_help()),
    tool: str = typer.Option(None, "--tool", help="atc or omg (default: atc for ONNX, atc then omg for Caffe)."),
    input_shape: str = typer.Option(None, "--input-shape", help="atc's --input_shape: name:1,3,H,W;name2:... "
                                    "(fills a dynamic ONNX's dimensions; the rules are checked at it)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and print the command; do not run it."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", min=1, help="Seconds before the tool is killed."),
    force: bool = typer.Option(False, "--force", help="Run the compiler despite Ascend rule violations or an "
                               "--soc-version the toolkit's CANN no longer lists (they become warnings)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    precision_mode: str = typer.Option(None, "--precision-mode",
                                       help="atc --precision_mode (default force_fp16): force_fp16, force_fp32, "
                                            "cube_fp16in_fp32out, allow_fp32_to_fp16, must_keep_origin_dtype, "
                                            "allow_mix_precision[_fp16|_bf16]."),
    keep_fp32: str = typer.Option(None, "--keep-fp32",
                                  help="Layers atc keeps in fp32 (--keep_dtype): comma-separated original layer names "
                                       "or OpType::TYPE, or 'auto' (what `compare --precision fp16` flags; needs "
                                       "--ckpt)."),
    output_type: str = typer.Option(None, "--output-type", help="fp16 or fp32: atc --output_type (default: the "
                                                                "model's, fp32; fp16 skips the slow fp32 TransData "
                                                                "and the app must read fp16)."),
    ckpt: Path = typer.Option(None, "--ckpt", help="With --keep-fp32 auto: the checkpoint MODEL was made from."),
    golden: Path = typer.Option(Path("golden/photos"), "--golden", help="With --keep-fp32 auto: the golden set "
                                                                        "whose first input is analysed."),
):
    """Compile MODEL to OUT.om (help: OM_HELP)."""
    if tool is not None and tool not in ("atc", "omg"):
        fail(f"--tool {tool!r} is not atc or omg")
    from ..ascend.command import check_input_shape, check_soc_version, inspect_model, parse_input_shape
    from ..errors import MatteconvError

    if tool != "omg":  # omg takes no --soc_version
        try:
            check_soc_version(soc_version)
        except MatteconvError as e:
            if not force:
                fail(f"{e}; --force passes it to atc anyway")
            if not as_json:
                err_console.print(f"[yellow]warning:[/] ignored (--force): {escape(str(e))}", highlight=False,
                                  soft_wrap=True)
    if input_shape:  # before the rule checks: a shape that contradicts the model is named as such
        check_input_shape(inspect_model(model), parse_input_shape(input_shape))
    keep = None
    if keep_fp32 == "auto":
        if ckpt is None:
            fail("--keep-fp32 auto needs --ckpt (the checkpoint MODEL was converted from)")
        from ..verify.fp16_compare import keep_fp32_layers

        with console.status("finding the layers fp16 hurts (compare --precision fp16)..."):
            keep, flagged = keep_fp32_layers(ckpt, model, golden)
        if not as_json:
            err_console.print(f"--keep-fp32 auto: modules flagged {', '.join(flagged) or 'none'} -> "
                              f"{len(keep)} layer(s) kept in fp32", highlight=False, soft_wrap=True)
    elif keep_fp32:
        keep = keep_fp32.split(",")
    try:
        plan = plan_build(model, output, aipp, soc_version, tool, input_shape, force=force,
                          precision_mode=precision_mode, keep_fp32=keep, output_type=output_type)
    except RuleError as e:
        if as_json:
            print(json.dumps({"refused": str(e), "problems": e.lines, "rules": e.report.to_dict()}))
        else:
            for line in e.lines:
                err_console.print(f"[red]rule:[/] {escape(line)}", highlight=False, soft_wrap=True)
        fail(str(e))
    if not as_json:
        for warning in plan.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if not as_json and not input_shape:  # the prediction is for the model's own input size
        from ..ascend.profile.walk import predicted_line

        line = predicted_line(model, aipp, soc_version, precision_mode, output_type)
        if line:
            err_console.print(escape(line), highlight=False, soft_wrap=True)
    if dry_run or plan.tool is None:
        write_keep_dtype(plan)  # the command names it: keep it ready to copy with the model
        if as_json:
            print(json.dumps({"dry_run": dry_run, "tool_found": plan.tool is not None, "argv": plan.argv,
                              "command": plan.command, "om": str(plan.om), "warnings": plan.warnings,
                              "cann_version": plan.toolkit.version if plan.toolkit else None}))
        else:
            console.print(plan.command, highlight=False, soft_wrap=True, markup=False)
        if plan.tool is None and not dry_run:
            fail(f"{plan.tool_name} not found (PATH, $ASCEND_TOOLKIT_HOME, $ASCEND_HOME_PATH, "
                 "/usr/local/Ascend/ascend-toolkit/latest, ~/Ascend/ascend-toolkit/latest, $DDK_HOME/uihost/bin); "
                 "run the command above on a machine with the toolkit")
        return
    try:
        result = run_build(plan, timeout)
    except BuildError as e:
        for line in e.lines:
            err_console.print(line, highlight=False, soft_wrap=True, markup=False)
        fail(str(e), code=1)
    if as_json:
        print(json.dumps({"om": str(result.om), "log": str(result.log), "record": str(result.record),
                          "seconds": round(result.seconds, 3), "sha256": result.info["om"]["sha256"],
                          "warnings": plan.warnings}))
    else:
        console.print(f"wrote {result.om} in {result.seconds:.1f} s (log {result.log}, record {result.record})",
                      highlight=False)
