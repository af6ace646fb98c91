"""docs/targets-and-rules.md, generated from the rule tables (`matteconv rules --markdown`): the Caffe export
targets (export/caffe/targets.TARGETS), the compilers and their layer/op rules (ascend/rules.RULES), the AIPP
config rules (aipp/rules.AIPP_RULES), and the layer and operator lists the rules check against
(ascend/caffe_oplist.TABLES, ascend/onnx_oplist). tests/test_rules_page.py keeps the committed page equal to
this output, so the page never drifts from the code.

The output is plain text and deterministic (no dates, versions or paths of this machine).
"""
from __future__ import annotations

import re

PAGE = "docs/targets-and-rules.md"
REGENERATE = f"matteconv rules --markdown -o {PAGE}"

SCOPE_TEXT = {
    "parse": "protobuf's text parser (ATC reads the file with it) refuses the file",
    "block": "one aipp_op block alone (GraphEngine ValidateParams, the AIPP operator's static checks); rules marked "
             "*model size* run again once the model is known, a size of 0 read as the model's",
    "file": "one aipp_op block against the others",
    "config": "the whole file",
    "model": "one aipp_op block against the model input it feeds",
    "lint": "one explained static block against what matteconv's models expect: accepted by ATC, but see why",
}
_URL = re.compile(r"https?://\S+")


def _cell(text: str) -> str:
    """One table cell: pipes escaped, URLs as links, ' ; ' between sources as line breaks."""
    text = str(text).replace("|", "\\|")
    text = _URL.sub(lambda m: f"<{m.group(0)}>", text)
    return text.replace(" ; ", "<br>")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def _code_list(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _targets() -> list[str]:
    from ..export.caffe.targets import TARGETS
    from .rules import COMPILERS

    by_target = {c.caffe_target: c.name for c in COMPILERS.values() if c.caffe_target}
    out = ["## Caffe export targets", "",
           "`matteconv caffe --target T` writes only the layers of T's set (each runs in our pycaffe, so every "
           "export is verified); a user's prototxt is checked against the target compiler's whole layer table "
           "(below).", ""]
    rows = [[f"`{t.name}`", t.description, f"`{by_target[t.name]}`" if t.name in by_target else "none",
             _code_list(sorted(t.layers))] for t in TARGETS.values()]
    return out + _table(["target", "for", "compiler", "layers the export writes"], rows)


def _compilers() -> list[str]:
    from .rules import COMPILERS, ONNX_OPS

    rows = [[f"`{c.name}`", c.description, f"`{c.caffe_target}`" if c.caffe_target else "(ONNX)"]
            for c in COMPILERS.values()]
    return (["## Compilers", ""] + _table(["compiler", "tool", "export target"], rows)
            + [f"ONNX ops matteconv's export writes (each in CANN's ONNX list): {_code_list(sorted(ONNX_OPS))}.", ""])


def _ascend_rules() -> list[str]:
    from .rules import RULES

    out = ["## Layer and operator rules", "",
           "Checked by `matteconv inspect --target` and `matteconv om` before the compiler runs "
           "(`src/matteconv/ascend/rules.py`).", ""]
    rows = []
    for r in RULES:
        checks = r.checks + (f" (enforced by {r.enforced_by})" if r.enforced_by else "")
        rows.append([f"`{r.id}`", ", ".join(r.compilers), ", ".join(f"`{k}`" for k in r.kinds), r.severity, checks,
                     r.source])
    return out + _table(["rule", "compilers", "looks at", "severity", "checks", "source"], rows)


def _aipp_rules() -> list[str]:
    from ..aipp.rules import AIPP_RULES

    out = ["## AIPP config rules", "",
           "Checked by `matteconv aipp check` (every rule), by the strict loader of `om`, `verify` and `quantize` "
           "(the errors of the parse, block and file rules) and against the model (`model` rules) "
           "(`src/matteconv/aipp/rules.py`). Errors are what ATC refuses; warnings and notes it accepts.", ""]
    for scope, text in SCOPE_TEXT.items():
        rules = [r for r in AIPP_RULES if r.scope == scope]
        out += [f"### {scope}: {text}", ""]
        rows = []
        for r in rules:
            modes = "any" if not r.modes else ", ".join(r.modes)
            checks = r.checks + (" (*model size*)" if r.model_size else "")
            rows.append([f"`{r.id}`", r.severity, modes, checks, r.source or "matteconv"])
        out += _table(["rule", "severity", "aipp_mode", "checks", "source"], rows)
    return out


def _caffe_tables() -> list[str]:
    from .caffe_oplist import LIST_PAGE, TABLES

    out = ["## Caffe layer tables", "",
           "What each compiler's Caffe parser does with a layer `type:` (`src/matteconv/ascend/caffe_oplist.py`): "
           "takes it (as the CANN operator named), drops it, or refuses it; a type with no row is refused as "
           "unlisted.", ""]
    for compiler, rows in TABLES.items():
        sources: dict[str, int] = {}
        for r in rows:
            sources.setdefault(r.source, len(sources) + 1)
        pages = ", ".join(f"<{u}>" for u in LIST_PAGE[compiler].split(" ; "))
        out += [f"### `{compiler}` ({len(rows)} types; list: {pages})", ""]
        out += _table(["type", "verdict", "operator", "source", "note"],
                      [[f"`{r.type}`", r.verdict, r.op, f"[{sources[r.source]}]", r.note] for r in rows])
        out += [f"[{n}] {_cell(s)}  " for s, n in sources.items()] + [""]
    return out


def _onnx_list() -> list[str]:
    from . import onnx_oplist

    out = ["## ONNX operator list", "",
           "What atc's ONNX parser (`--framework=5`) is checked against (`src/matteconv/ascend/onnx_oplist.py`); an "
           "op on neither list is warned about (`onnx.op-type`), since a newer CANN may take it.", ""]
    out += [f"CANN 8.0.0 ({len(onnx_oplist.LIST_80)} ops, <{onnx_oplist.CANN80}>): "
            f"{_code_list(onnx_oplist.OP_TYPE.get(n, n) for n in onnx_oplist.LIST_80)}.", ""]
    out += [f"CANN 5.0.4 only ({len(onnx_oplist.LIST_504_ONLY)} ops, <{onnx_oplist.CANN504}>): "
            f"{_code_list(onnx_oplist.LIST_504_ONLY)}.", ""]
    return out


def render_markdown() -> str:
    """The whole page, as `matteconv rules --markdown` prints it."""
    lines = ["# Targets and rules", "",
             f"<!-- generated by `{REGENERATE}` from the rule tables; do not edit by hand -->", "",
             "Every rule matteconv checks before atc or omg runs, with where it is written, and the tables the "
             "rules read. Regenerate this page after changing a table:", "",
             "```", REGENERATE, "```", ""]
    for part in (_targets, _compilers, _ascend_rules, _aipp_rules, _caffe_tables, _onnx_list):
        lines += part()
    return "\n".join(lines).rstrip() + "\n"
