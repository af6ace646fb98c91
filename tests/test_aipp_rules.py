"""The AIPP rule table (aipp/rules.AIPP_RULES) against what the checks report: every rule id the checker emits,
the parser raises or tests/external/cases.toml names is a row of the table; the duplicated checks are one."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from matteconv.aipp import check_config, load_config, parse_config
from matteconv.aipp.parse import AippParseError
from matteconv.aipp.rules import AIPP_RULES, RULES_BY_ID
from matteconv.errors import MatteconvError

HERE = Path(__file__).resolve().parent / "external"
CASES = tomllib.loads((HERE / "cases.toml").read_text(encoding="utf-8"))["aipp"]


def test_every_rule_id_in_the_cases_is_in_the_table():
    named = set()
    for case in CASES:
        named |= {case.get("rule")} | set(case.get("warnings", [])) | set(case.get("absent", []))
    assert named - {None} <= set(RULES_BY_ID), sorted(named - {None} - set(RULES_BY_ID))


def test_every_reported_rule_is_a_row_with_its_severity():
    """Over the external configs, alone and against models of several sizes: each finding's id is a row, with
    the row's severity; parse refusals are `parse` rows."""
    seen = set()
    for path in sorted((HERE / "aipp").glob("*.cfg")):
        try:
            cfg = load_config(path, validate=False)
        except AippParseError as e:
            assert RULES_BY_ID[e.rule].scope == "parse", e.rule
            seen.add(e.rule)
            continue
        for inputs in (None, [("input", (1, 3, 224, 224))], [("input", (1, 1, 33, 33))], []):
            for f in check_config(cfg, inputs)[1]:
                assert RULES_BY_ID[f.rule].severity == f.level, (path.name, f.rule)
                seen.add(f.rule)
    assert len(seen) >= 20, sorted(seen)  # the files fire about half of the table (23 of 47)


def test_table_shape():
    assert len(RULES_BY_ID) == len(AIPP_RULES) == 47
    assert all(r.source or r.id.startswith(("lint.", "matteconv.")) for r in AIPP_RULES)
    assert [r.id for r in AIPP_RULES if r.model_size] == ["tbe.yuv420sp-even", "tbe.crop-inside"]


NV12 = "aipp_op {{ aipp_mode: static input_format: YUV420SP_U8 {extra} }}\n"


@pytest.mark.parametrize("extra, inputs, want", [
    # an odd explicit size, with the model known: reported once (it was twice, with two texts)
    ("src_image_size_w: 33 src_image_size_h: 32", [("x", (1, 3, 32, 33))],
     "src_image_size 33x32 (WxH): the YUV420SP_U8 source 33x32 must be even, with W in [2, 4096]"),
    ("", [("x", (1, 3, 32, 33))],
     "src_image_size 0x0 (WxH): the YUV420SP_U8 source 33x32 (0 = model input 'x''s size) must be even, with W in "
     "[2, 4096]"),
    # crop size 0 is the model's: its rows and columns must lie inside the source (aipp_comm.py checks both)
    ("src_image_size_w: 64 src_image_size_h: 32 crop: true load_start_pos_w: 32", [("x", (1, 3, 32, 64))],
     "crop load_start_pos_w 32 + crop_size_w 64 (0: the model width) exceeds src_image_size_w 64"),
    ("src_image_size_w: 64 src_image_size_h: 32 crop: true", [("x", (1, 3, 48, 64))],
     "crop load_start_pos_h 0 + crop_size_h 48 (0: the model height) exceeds src_image_size_h 32"),
])
def test_merged_checks_report_once(extra, inputs, want):
    cfg = parse_config(NV12.format(extra=extra), "m.cfg", validate=False)
    _, findings = check_config(cfg, inputs)
    rule = "tbe.crop-inside" if "crop" in extra else "tbe.yuv420sp-even"
    assert [f.message for f in findings if f.rule == rule] == [want]


def test_two_blocks_on_one_input_is_one_rule():
    """E10052: the strict loader and check_config report the same rule with the same text."""
    text = "aipp_op { aipp_mode: static input_format: RGB888_U8 }\naipp_op { aipp_mode: static input_format: RGB888_U8 }\n"
    _, findings = check_config(parse_config(text, "d.cfg", validate=False))
    (f,) = [f for f in findings if f.level == "error"]
    assert f.rule == "ge.same-input" and f.line == 2
    with pytest.raises(MatteconvError) as err:
        parse_config(text, "d.cfg")
    assert str(err.value) == f.text("d.cfg")
