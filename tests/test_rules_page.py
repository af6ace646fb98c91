"""docs/targets-and-rules.md is generated from the rule tables: the committed page must equal what
`matteconv rules --markdown` renders now, so a changed rule, target or operator row changes the page with it."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from matteconv.ascend.rules_page import PAGE, REGENERATE, render_markdown
from matteconv.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_committed_page_is_current():
    committed = (ROOT / PAGE).read_text(encoding="utf-8")
    rendered = render_markdown()
    if committed != rendered:
        old, new = committed.splitlines(), rendered.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        raise AssertionError(f"{PAGE} is stale (first difference at line {first + 1}): regenerate it with "
                             f"`{REGENERATE}` and commit it")


def test_page_lists_every_rule_and_table():
    from matteconv.aipp.rules import AIPP_RULES
    from matteconv.ascend.caffe_oplist import TABLES
    from matteconv.ascend.rules import RULES
    from matteconv.export.caffe.targets import TARGETS

    page = render_markdown()
    for rule_id in [r.id for r in RULES] + [r.id for r in AIPP_RULES]:
        assert f"| `{rule_id}` |" in page, rule_id
    for name in TARGETS:
        assert f"| `{name}` |" in page, name
    assert all(f"### `{c}` ({len(rows)} types" in page for c, rows in TABLES.items())
    assert "`ConstantOfShape`" in page and "`AscendRequant`" in page  # CANN 8.0 and 5.0.4-only ONNX ops


def test_cli_markdown_json_and_output(tmp_path):
    r = CliRunner().invoke(app, ["rules", "--markdown"])
    assert r.exit_code == 0 and r.stdout == render_markdown()
    out = tmp_path / "page.md"
    r = CliRunner().invoke(app, ["rules", "--markdown", "-o", str(out)])
    assert r.exit_code == 0 and out.read_text(encoding="utf-8") == render_markdown()
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]  # written through a temp file, nothing else left
    r = CliRunner().invoke(app, ["rules", "-o", str(tmp_path / "x.md")])
    assert r.exit_code == 2 and "give --markdown too" in r.output and not (tmp_path / "x.md").exists()
    rep = json.loads(CliRunner().invoke(app, ["rules", "--json"]).stdout)
    aipp = {r["id"]: r for r in rep["aipp_rules"]}
    assert aipp["tbe.crop-inside"]["scope"] == "block" and aipp["tbe.crop-inside"]["model_size"] is True
    assert aipp["ge.same-input"]["severity"] == "error" and "E10052" in aipp["ge.same-input"]["source"]
    assert "conv.depthwise-buffer" in {r["id"] for r in rep["rules"]}
    r = CliRunner().invoke(app, ["rules"])
    assert r.exit_code == 0 and "AIPP config rules" in r.stdout and "lint.model-range" in r.stdout
