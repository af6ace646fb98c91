"""Run atc/omg once, keep its whole log, and leave either a complete OUT.om + OUT.build.json or nothing.

The tool writes to a hidden temporary stem beside the target; only after it exits 0 and the .om exists is it
renamed onto OUT.om, so a failed or killed build never leaves a partial or stale-looking model.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MatteconvError
from ..fileio import atomic_path, atomic_paths, check_output_file, refuse_overwrite, remove_path, sha256_file
from ..proc import run as run_in_group
from .cann import ToolkitVersion, soc_problem, toolkit_version
from .command import (ModelInfo, build_argv, display, framework_problems, inspect_model, keep_dtype_entries,
                      layer_types, omg_path_warnings, parse_input_shape, precision_flags, precision_warnings,
                      render_keep_dtype)
from .discover import Tool, find_any, find_tool
from .rules import RuleReport, check_model, compiler_for

ERROR_LINE = re.compile(r"\[ERROR\]|\bERROR\b|\bE[0-9]{5}\b|\bE[A-Z]?[0-9]{4,5}:")
DEFAULT_TIMEOUT = 1800.0


class RuleError(MatteconvError):
    """The model breaks Ascend rules (or the toolkit refuses the SoC): `lines` name each layer, rule and source."""

    def __init__(self, message: str, lines: list[str], report: RuleReport):
        super().__init__(message)
        self.lines = lines
        self.report = report


class BuildError(MatteconvError):
    """The compiler failed: `lines` are its own error lines, `log` where the full output was kept."""

    def __init__(self, message: str, lines: list[str], log: Path | None):
        super().__init__(message)
        self.lines = lines
        self.log = log


@dataclass
class BuildPlan:
    """Everything decided before running: the tool (if found), argv, and where outputs go."""

    tool_name: str
    tool: Tool | None
    argv: list[str]  # as shown to the user, with the real output stem
    model: ModelInfo
    aipp: Path | None
    om: Path
    log: Path
    record: Path
    soc_version: str
    warnings: list[str] = field(default_factory=list)
    rules: RuleReport | None = None
    toolkit: ToolkitVersion | None = None  # atc's CANN version (None: no atc found, or omg)
    precision_mode: str | None = None  # None: atc's default, force_fp16
    keep_dtype: list[str] = field(default_factory=list)  # --keep_dtype entries, written to keep_dtype_file
    keep_dtype_file: Path | None = None

    @property
    def command(self) -> str:
        return display(self.argv)


@dataclass
class BuildResult:
    om: Path
    log: Path
    record: Path
    seconds: float
    info: dict


def output_paths(out: str | Path) -> tuple[Path, Path, Path, Path]:
    """-o OUT or OUT.om -> (stem, OUT.om, OUT.build.log, OUT.build.json)."""
    p = Path(out)
    stem = p.with_suffix("") if p.suffix == ".om" else p
    return stem, Path(f"{stem}.om"), Path(f"{stem}.build.log"), Path(f"{stem}.build.json")


def error_lines(log_text: str, limit: int = 20) -> list[str]:
    """The tool's own error lines (ERROR, [ERROR], E1xxxx codes), in order."""
    lines = [ln.rstrip() for ln in log_text.splitlines() if ERROR_LINE.search(ln)]
    return lines[:limit]


def plan_build(model: str | Path, out: str | Path, aipp: str | Path | None = None, soc_version: str = "Ascend310",
               tool: str | None = None, input_shape: str | None = None, env=None,
               system_roots=None, force: bool = False, precision_mode: str | None = None,
               keep_fp32: list[str] | None = None, output_type: str | None = None) -> BuildPlan:
    """Inspect the model, check it against the compiler's rules (rules.py), the SoC against the toolkit's CANN
    version and the AIPP config against the model, choose the tool, make argv. `precision_mode` and `keep_fp32`
    (layer names or OpType::TYPE) become atc's --precision_mode and --keep_dtype; `output_type` (fp16 | fp32)
    atc's --output_type (FP16 saves the slow fp32 output TransData: `matteconv profile`, rule fp32-output).

    Raises MatteconvError on any check failure, before anything is run (RuleError for rule violations and an
    unaccepted SoC, which `force` turns into warnings).
    """
    from ..aipp import check_model_inputs, load_config

    info = inspect_model(model)
    name = tool or ("atc" if info.kind == "onnx" else None)
    kw = {} if system_roots is None else {"system_roots": system_roots}
    found = find_tool(name, env, **kw) if name else find_any(None, env, **kw)
    name = name or (found.name if found else "atc")
    problems = framework_problems(info, name)
    if problems:
        raise MatteconvError(problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""))
    compiler = compiler_for(info.kind, name)
    inputs = parse_input_shape(input_shape) if input_shape else None
    if inputs:
        model_names = [n for n, _ in info.inputs]
        unknown = [n for n, _ in inputs if model_names and n not in model_names]
        if unknown:
            raise MatteconvError(f"--input-shape names {', '.join(unknown)} not among the model's inputs "
                                 f"({', '.join(model_names)})")
    # atc compiles at --input_shape: a dynamic ONNX is checked at it (every shape rule runs)
    report = check_model(info.path, compiler.name,
                         input_shapes=dict(inputs) if inputs and info.kind == "onnx" else None)
    warnings = report.lines("warning") + ([report.unchecked_note()] if report.unchecked else [])
    refusals = report.lines("error")
    toolkit = toolkit_version(found) if found is not None and name == "atc" else None
    if toolkit is not None:
        soc = soc_problem(soc_version, toolkit.version)
        if soc:
            refusals.append(f"{found.path}: {soc}")
        elif toolkit.version is None:
            warnings.append(f"{found.path}: CANN version unknown ({toolkit.source}): --soc-version {soc_version} "
                            "not checked against it")
    if refusals and not force:
        raise RuleError(_refusal(report, refusals), refusals, report)
    warnings += [f"ignored (--force): {line}" for line in refusals]
    aipp_path = Path(aipp) if aipp is not None else None
    if aipp_path is not None:
        cfg = load_config(aipp_path)
        check_model_inputs(cfg, inputs or info.inputs, soc_version)
    stem, om, log, record = output_paths(out)
    refuse_overwrite([om, log, record], [info.path, info.weight, aipp_path])
    argv = build_argv(name, found.path if found else name, info, stem, aipp_path, soc_version, inputs)
    if name == "omg":
        warnings += omg_path_warnings([info.path, info.weight])
    keep, keep_file = [], None
    if precision_mode or keep_fp32:
        if name != "atc":
            raise MatteconvError(f"--precision-mode and --keep-fp32 are atc options; {name} has neither")
        types = layer_types(info)
        keep = keep_dtype_entries(keep_fp32 or [], types, info.path)
        warnings += precision_warnings(precision_mode, keep, types, soc_version)
        keep_file = Path(f"{stem}.keep_dtype.cfg") if keep else None
        at = next(k for k, a in enumerate(argv) if a.startswith("--output="))
        argv[at:at] = precision_flags(precision_mode, keep_file)
    if output_type:
        if output_type not in ("fp16", "fp32"):
            raise MatteconvError(f"--output-type {output_type!r}: choose fp16 or fp32")
        if name != "atc":
            raise MatteconvError(f"--output-type is an atc option; {name} has none")
        at = next(k for k, a in enumerate(argv) if a.startswith("--output="))
        argv[at:at] = [f"--output_type={output_type.upper()}"]  # CANN ATC parameter --output_type: FP32, FP16, UINT8
    return BuildPlan(name, found, argv, info, aipp_path, om, log, record, soc_version, warnings, report, toolkit,
                     precision_mode, keep, keep_file)


def write_keep_dtype(plan: BuildPlan) -> None:
    """Write the --keep_dtype file the argv names (before atc runs, or for a dry run to be copied)."""
    if plan.keep_dtype_file is not None:
        with atomic_path(plan.keep_dtype_file) as tmp:
            tmp.write_text(render_keep_dtype(plan.keep_dtype), encoding="utf-8")


def _refusal(report: RuleReport, refusals: list[str]) -> str:
    """One line: for omg given a prototxt from another target, which layers make it so and what to do."""
    types = {}
    for v in report.errors:
        if v.rule == "omg.layer-type":
            types.setdefault(v.type, []).append(v.layer)
    if types:
        listed = "; ".join(f"{t} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                           for t, names in types.items())
        was = f"; it was exported with --target {report.exported_for}" if report.exported_for else ""
        return (f"{report.path}: not a `ddk` export: the old DDK's omg has no {', '.join(types)} layers "
                f"({listed}){was}: export with --target ddk")
    return (f"{report.path}: {len(refusals)} Ascend rule violation(s) for {report.compiler} (listed above); "
            "fix the model or pass --force")


def _status(message: str):
    """A rich spinner on stderr while the tool runs (a no-op when stderr is not a terminal)."""
    from rich.console import Console

    return Console(stderr=True).status(message)


def run_build(plan: BuildPlan, timeout: float = DEFAULT_TIMEOUT, extra: dict | None = None) -> BuildResult:
    """Run the planned command; on success OUT.om, OUT.build.log and OUT.build.json exist, else BuildError.
    `extra` goes into OUT.build.json as is (`int8`: the quantization record of an AMCT deploy model)."""
    if plan.tool is None:
        raise MatteconvError(f"{plan.tool_name} not found (searched PATH, $ASCEND_TOOLKIT_HOME, $ASCEND_HOME_PATH, "
                             f"/usr/local/Ascend/ascend-toolkit/latest, ~/Ascend, $DDK_HOME); run on a machine with "
                             f"the toolkit: {plan.command}")
    for path in (plan.om, plan.log, plan.record):  # before the tool runs, not after minutes of compiling
        check_output_file(path)
    tmp_stem = plan.om.parent / f".{plan.om.stem}.partial-{os.getpid()}"
    argv = [a if not a.startswith("--output=") else f"--output={tmp_stem}" for a in plan.argv]
    tmp_om = Path(f"{tmp_stem}.om")
    write_keep_dtype(plan)
    try:
        return _compile(plan, argv, tmp_stem, tmp_om, timeout, extra)
    finally:  # success, failure, timeout, Ctrl-C or SIGTERM: nothing of the tool's temporary stem stays
        for leftover in plan.om.parent.glob(f"{tmp_stem.name}*"):
            remove_path(leftover)


def _compile(plan: BuildPlan, argv: list[str], tmp_stem: Path, tmp_om: Path, timeout: float,
             extra: dict | None = None) -> BuildResult:
    start = time.monotonic()
    status = "ok"
    try:
        with _status(f"{plan.tool_name}: compiling {plan.model.path.name} for {plan.soc_version}"):
            proc = run_in_group(argv, timeout)
        text = proc.stdout.decode("utf-8", errors="replace")
        code = proc.returncode
    except subprocess.TimeoutExpired as e:
        text = (e.output or b"").decode("utf-8", errors="replace") + f"\n[matteconv] killed after {timeout:g} s\n"
        code, status = None, "timeout"
    except OSError as e:
        text, code, status = f"[matteconv] could not start {argv[0]}: {e}\n", None, "not started"
    seconds = time.monotonic() - start
    header = f"$ {display(plan.argv)}\n# (run with --output={tmp_stem}, renamed on success)\n"
    with atomic_path(plan.log) as tmp:
        tmp.write_text(header + text, encoding="utf-8")
    if status != "ok" or code != 0 or not tmp_om.is_file():
        lines = error_lines(text) or [ln for ln in text.splitlines() if ln.strip()][-5:]
        if status == "timeout":
            why = f"timed out after {timeout:g} s (its whole process group was ended)"
        elif status != "ok":
            why = status
        elif code != 0:
            why = f"exited with code {code}"
        else:
            why = f"exited 0 but wrote no {tmp_om.name}"
        raise BuildError(f"{plan.tool_name} {why} building {plan.om} (full log: {plan.log})", lines, plan.log)
    from ..aipp.parse import decode_config

    toolkit = plan.toolkit or toolkit_version(plan.tool, ask_tool=False)  # omg: its DDK's version file, if any
    info = {
        "tool": plan.tool_name, "tool_path": str(plan.tool.path), "tool_found_via": plan.tool.source,
        "tool_version": toolkit.version, "tool_version_source": toolkit.source, "warnings": plan.warnings,
        "argv": plan.argv, "soc_version": plan.soc_version,
        "seconds": round(seconds, 3),
        "inputs": {str(p): sha256_file(p) for p in [plan.model.path, plan.model.weight, plan.aipp] if p is not None},
        "om": {"path": str(plan.om), "sha256": sha256_file(tmp_om), "bytes": tmp_om.stat().st_size},
        "model_inputs": [[n, list(s)] for n, s in plan.model.inputs],
        # as protobuf read it (comments in any encoding: decode_config); the sha256 above is of the bytes
        "aipp_config": decode_config(plan.aipp.read_bytes(), str(plan.aipp)) if plan.aipp else None,
        "precision_mode": plan.precision_mode or "force_fp16 (atc default)",
        "keep_dtype": {"file": str(plan.keep_dtype_file), "entries": plan.keep_dtype} if plan.keep_dtype else None,
    }
    from .. import __version__

    info["matteconv"] = __version__
    info.update(extra or {})
    with atomic_paths(plan.om, plan.record) as (om_tmp, record_tmp):  # the .om and its record land together
        os.replace(tmp_om, om_tmp)
        record_tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return BuildResult(plan.om, plan.log, plan.record, seconds, info)


def build_om(model: str | Path, out: str | Path, aipp: str | Path | None = None, soc_version: str = "Ascend310",
             tool: str | None = None, input_shape: str | None = None, timeout: float = DEFAULT_TIMEOUT,
             env=None, force: bool = False, precision_mode: str | None = None,
             keep_fp32: list[str] | None = None) -> BuildResult:
    """Plan and run in one call (library entry point for the verify `om` stage)."""
    return run_build(plan_build(model, out, aipp, soc_version, tool, input_shape, env, force=force,
                                precision_mode=precision_mode, keep_fp32=keep_fp32), timeout)
