"""What ATC refuses in an AIPP config (errors, each with its rule and source) and what it accepts but a
deployment engineer must know (warnings, each with its reason), plus a plain explanation of the config: output
size, raw bytes per frame, and every output channel as an affine map of the source channels.

The rules are rows of aipp/rules.AIPP_RULES (id, severity, scope, source, check); this module runs them: the
`block` and `file` rules per aipp_op (the strict loader raises the first error), the `model` rules once the
model's inputs are known, the `lint` rules on each explained static op (explain.py).
"""
from __future__ import annotations

from typing import Callable

from ..errors import MatteconvError
from ..findings import Finding
from .explain import Explanation, explain
from .parse import AippConfig, AippOp
from .rules import AIPP_RULES, AippRule, Context

__all__ = ["Explanation", "Finding", "check_config", "check_model_inputs", "explain_op", "model_findings",
           "refusals", "validate_config", "validate_op"]


def _line(op: AippOp, key: str | None) -> int:
    return op.lines.get(key, op.line) if key else op.line


def _findings(rule: AippRule, op: AippOp, ctx: Context) -> list[Finding]:
    out = []
    for hit in rule.test(op, ctx):
        key, message = hit[0], hit[1]
        source = hit[2] if len(hit) > 2 else rule.source
        out.append(Finding(rule.severity, rule.id, message, _line(op, key), source))
    return out


def _run(op: AippOp, ctx: Context, keep: Callable[[AippRule], bool]) -> list[Finding]:
    """The rules `keep` picks, in table order, for one op; a `stops` rule that fires ends the run."""
    out: list[Finding] = []
    for rule in AIPP_RULES:
        if rule.test is None or not keep(rule) or not rule.applies(op):
            continue
        found = _findings(rule, op, ctx)
        out += found
        if found and rule.stops:
            break
    return out


def refusals(op: AippOp, soc_version: str = "Ascend310") -> list[Finding]:
    """What GE or the AIPP operator refuse in one block, without the model (see model_findings for that)."""
    return _run(op, Context(soc_version), lambda r: r.scope == "block")


def validate_op(op: AippOp, path: str = "<text>", soc_version: str = "Ascend310") -> None:
    """Raise the first refusal of one block as MatteconvError("file:line: ... [source]")."""
    errs = refusals(op, soc_version)
    if errs:
        raise MatteconvError(errs[0].text(path))


def validate_config(cfg: AippConfig, soc_version: str = "Ascend310") -> None:
    """Raise the first refusal in the file, block by block: its own rules, then against the blocks before it
    (two on one input: GE E10052; a block that names its input is placed only with the model)."""
    ctx = Context(soc_version)
    for op in cfg.ops:
        validate_op(op, cfg.path, soc_version)
        errs = [f for f in _run(op, ctx, lambda r: r.scope == "file") if f.level == "error"]
        if errs:
            raise MatteconvError(errs[0].text(cfg.path))


def _model_context(op: AippOp, inputs: list[tuple[str, tuple[int, ...]]], soc_version: str) -> Context:
    """The model input `op` feeds: rank None when its name is not an input; hw only for a positive 4-D shape."""
    names = [n for n, _ in inputs]
    ctx = Context(soc_version, names=names, inputs=inputs, rank=op.resolved_rank(names))
    if ctx.rank is not None and ctx.rank < len(inputs):
        ctx.name, ctx.shape = inputs[ctx.rank][0], tuple(inputs[ctx.rank][1])
        if len(ctx.shape) == 4:
            c, h, w = (int(d) for d in ctx.shape[1:])
            ctx.hw = (h, w) if h > 0 and w > 0 else None
            ctx.model_channels = c if c > 0 else None
    return ctx


def _model_rules(ctx: Context) -> Callable[[AippRule], bool]:
    """The model rules, with the block rules that read the model's size when it is known."""
    return lambda r: r.scope == "model" or (r.model_size and ctx.hw is not None)


def model_findings(cfg: AippConfig, inputs: list[tuple[str, tuple[int, ...]]], soc_version: str = "") -> list[Finding]:
    """The AIPP config against the model's inputs (name, NCHW shape): the `model` rules, and the `model_size`
    block rules with a size of 0 read as the model's."""
    out: list[Finding] = []
    for op in cfg.ops:
        ctx = _model_context(op, inputs, soc_version)
        out += _run(op, ctx, _model_rules(ctx))
    return out


def check_model_inputs(cfg: AippConfig, inputs: list[tuple[str, tuple[int, ...]]], soc_version: str = "") -> None:
    """AIPP config vs the model's inputs (name, NCHW shape): rank exists, channels, output H x W ([tbe]).
    Raises MatteconvError "file:line: problem [source]" for the first refusal."""
    for f in model_findings(cfg, inputs, soc_version):
        if f.level == "error":
            raise MatteconvError(f.text(cfg.path))


def explain_op(op: AippOp, model_hw: tuple[int, int] | None = None, ignored_ok: bool = False,
               model_channels: int | None = None, soc_version: str = "Ascend310") -> Explanation:
    """Describe one static op (explain.explain) and lint it (the `lint` rules) against matteconv's
    preprocessing ((RGB - 127.5) / 127.5, R,G,B). `model_channels`: the channels of the model input it feeds,
    when known; a model with fewer channels than the op produces reads the first ones (the ATC guide's GRAY
    configs for 1-channel models), and the explanation lists only those."""
    ex, colours = explain(op, model_hw, model_channels)
    ctx = Context(soc_version, hw=model_hw, explanation=ex, colours=colours, model_channels=model_channels)
    ex.findings = _run(op, ctx, lambda r: r.scope == "lint")
    return ex


def check_config(cfg: AippConfig, inputs: list[tuple[str, tuple[int, ...]]] | None = None,
                 soc_version: str = "Ascend310") -> tuple[list[Explanation], list[Finding]]:
    """Everything `matteconv aipp check` reports: per-op explanations and all findings (errors first).
    Raises nothing for a parsed config; refusals are findings with level 'error'."""
    findings: list[Finding] = []
    explanations: list[Explanation] = []
    names = [n for n, _ in inputs] if inputs is not None else None
    file_ctx = Context(soc_version, names=names)
    for index, op in enumerate(cfg.ops):
        errs = refusals(op, soc_version)
        findings += errs + _run(op, file_ctx, lambda r: r.scope == "file")
        if op.mode != "static" or errs:
            continue
        rank = op.resolved_rank(names)
        hw, channels = None, None
        if inputs is not None:
            ctx = _model_context(op, inputs, soc_version)
            hw, channels = ctx.hw, ctx.model_channels
        ex = explain_op(op, hw, model_channels=channels, soc_version=soc_version)
        ex.rank, ex.index, ex.input_name = (op.rank if rank is None else rank), index, op.input_name
        explanations.append(ex)
        findings += ex.findings
    for rule in AIPP_RULES:
        if rule.scope == "config":
            findings += [Finding(rule.severity, rule.id, message, line, rule.source)
                         for line, message in rule.test(cfg, file_ctx)]
    if inputs is not None:
        reported = {(f.rule, f.line) for f in findings}  # a model_size rule may repeat what the block said
        findings += [f for f in model_findings(cfg, inputs, soc_version) if (f.rule, f.line) not in reported]
    findings.sort(key=lambda x: (x.level != "error", x.line or 0))
    return explanations, findings
