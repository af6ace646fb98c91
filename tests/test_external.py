"""Real-world files (tests/external/) against the value each must give (tests/external/cases.toml): accepted or
refused with the rule ATC uses, output size, bytes per frame, channel order, warnings, and emulated pixels."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from matteconv.aipp import check_config, emulate, load_config
from matteconv.aipp.parse import AippParseError
from matteconv.errors import MatteconvError

HERE = Path(__file__).resolve().parent / "external"
CASES = tomllib.loads((HERE / "cases.toml").read_text(encoding="utf-8"))
# Manifest values are hand-computed and rounded to 6 decimals; the emulator works in float64 and returns
# float32 (relative 6e-8 of values up to 255): 1e-5 absolute covers the rounding of the written values only.
ATOL = 1e-5


def _frame(op, pixel: dict, hw: tuple[int, int]) -> np.ndarray:
    """A uniform raw frame in the op's layout."""
    h, w = hw
    if "yuv" in pixel and op.input_format == "YUV400_U8":
        return np.full((h, w), pixel["yuv"][0], dtype=np.uint8)  # the Y plane alone
    if "yuv" in pixel:
        y, u, v = pixel["yuv"]
        uv = (v, u) if op.get("rbuv_swap_switch") else (u, v)  # NV21 stores V first
        chroma = np.tile(np.array(uv, dtype=np.uint8), h * w // 4)
        return np.concatenate([np.full(h * w, y, dtype=np.uint8), chroma])
    return np.tile(np.array(pixel["bytes"], dtype=np.uint8), (h, w, 1))


def test_every_file_has_a_case():
    listed = {c["file"] for c in CASES["aipp"]}
    on_disk = {str(p.relative_to(HERE)) for p in (HERE / "aipp").glob("*.cfg")}
    assert listed == on_disk


@pytest.mark.parametrize("case", CASES["aipp"], ids=[c["file"].split("/")[-1] for c in CASES["aipp"]])
def test_aipp_case(case):
    path = HERE / case["file"]
    if case.get("rule", "").startswith("proto."):  # refused by protobuf's text parser, before any AIPP rule
        with pytest.raises(AippParseError, match=rf"{path.name}:{case['line']}:") as err:
            load_config(path, validate=False)
        assert (err.value.rule, err.value.line) == (case["rule"], case["line"])
        return
    cfg = load_config(path, validate=False)
    size = tuple(case["size"]) if "size" in case else None
    channels = case.get("channels", 3)
    inputs = [(name, (1, channels) + size) for name in case.get("inputs", ["input"])] if size else None
    explanations, findings = check_config(cfg, inputs)
    errors = [f for f in findings if f.level == "error"]
    rules = {f.rule for f in findings}
    if not case["accepted"]:
        assert errors and errors[0].rule == case["rule"] and errors[0].line == case["line"], errors
        with pytest.raises(MatteconvError, match=rf"{path.name}:{case['line']}: "):
            load_config(path)  # the strict loader (om, verify) refuses with the same line
        return
    assert not errors, [f.text(str(path)) for f in errors]
    load_config(path)  # what ATC accepts, the strict loader accepts
    assert set(case.get("warnings", [])) <= rules, rules
    assert not set(case.get("absent", [])) & rules, rules
    if not explanations:
        assert "pixel" not in case
        return
    ex = explanations[0]
    if "output_wh" in case:
        assert list(ex.output_hw[::-1]) == case["output_wh"]
    if "raw_bytes" in case:
        assert ex.raw_bytes == case["raw_bytes"]
    if "order" in case:
        assert ex.order == case["order"]
    if "frame" in case:
        assert ex.frame == case["frame"]
    if "ranks" in case:
        assert [e.rank for e in explanations] == case["ranks"]
    op = cfg.ops[ex.index]
    hw = op.src_hw(size)
    for pixel in case.get("pixel", []):
        out = emulate(op, _frame(op, pixel, hw), size=size)[:, :channels]  # the model reads the first channels
        oh, ow = op.output_hw(size)
        assert out.shape == (1, channels, oh, ow)
        t, _, left, _ = op.padding_hw()
        cy, cx = t + (oh - op.padding_hw()[0] - op.padding_hw()[1]) // 2, left + (ow - left - op.padding_hw()[3]) // 2
        np.testing.assert_allclose(out[0, :, cy, cx], pixel["expect"], atol=ATOL, rtol=0)
        if "border" in pixel:
            assert t > 0 and np.all(out[0, :, :t, :] == pixel["border"]) and np.all(out[0, :, :, :left] == pixel["border"])


def _caffe_param(case):
    # a V1 file means one pycaffe worker (the upgrade): several seconds on this machine, so the slow tier
    marks = [pytest.mark.slow] if "format" in case else []
    return pytest.param(case, marks=marks, id=case["file"].split("/")[-1])


@pytest.mark.parametrize("case", [_caffe_param(c) for c in CASES["caffe"]])
def test_caffe_case(case):
    from matteconv.ascend.rules import check_model
    from matteconv.export.caffe.summary import summarize
    from matteconv.export.caffe.targets import get_target

    path = HERE / case["file"]
    if "error" in case:
        with pytest.raises(MatteconvError, match=rf"{path.name}: {case['error']}"):
            summarize(path, "bvlc")
        return
    s = summarize(path, "bvlc")
    assert s.format == case["format"] and [la.type for la in s.layers] == case["layers"]
    assert [name for name, _ in s.excluded] == case.get("excluded", [])
    assert s.num_params is not None and s.num_params > 0  # pycaffe loaded the upgraded net
    for target in case["accepted_by"]:
        assert all(get_target(target).accepts(la.type) for la in s.layers), target
    shapes = ({top: tuple(sh) for la in s.layers for top, sh in zip(la.tops, la.shapes or [])}, None)
    for compiler, rule in case.get("refused_by", {}).items():
        report = check_model(path, compiler, shapes=shapes)
        assert rule in {v.rule for v in report.errors}, (compiler, report.violations)
    for compiler, rule in case.get("warned_by", {}).items():
        report = check_model(path, compiler, shapes=shapes)
        assert rule in {v.rule for v in report.warnings} and rule not in {v.rule for v in report.errors}


def test_every_prototxt_has_a_case():
    listed = {c["file"] for c in CASES["caffe"]} | {c["file"] for c in CASES["caffe_atc"]}
    assert listed == {str(p.relative_to(HERE)) for p in (HERE / "caffe").glob("*.prototxt")}


@pytest.mark.parametrize("case", CASES["caffe_atc"], ids=[c["file"].split("/")[-1] for c in CASES["caffe_atc"]])
def test_caffe_atc_case(case):
    """atc's verdict on a public prototxt, by layer type: what it refuses (with atc's error code and the fix),
    what it drops, and that nothing else is refused."""
    from matteconv.ascend.ops import caffe_ops
    from matteconv.ascend.rules import check_ops

    path = HERE / case["file"]
    model = caffe_ops(path, {}, "not run here")  # types and parameters only: no pycaffe
    types = {op.type for op in model.ops}
    report = check_ops(model, "atc-caffe")
    assert {v.rule for v in report.errors} <= {"caffe.layer-type"}, [v.message for v in report.errors]
    refused = {}
    for v in report.errors:
        refused.setdefault(v.type, v.message)
    expected = case.get("refused", {})
    assert (case["atc"] == "accepted") == (not expected)
    assert set(refused) == set(expected), refused
    for layer_type, code in expected.items():
        assert code in refused[layer_type], refused[layer_type]
    said = " ".join(refused.values())
    assert all(word in said for word in case.get("names", [])), said
    for layer_type in case.get("dropped", []) + case.get("takes", []):
        assert layer_type in types and layer_type not in refused, layer_type
    warned = {}
    for v in report.warnings:
        warned.setdefault(v.rule, []).append(v.layer)
    if "warned" in case or case["atc"] == "accepted":  # an accepted file: every warning is listed
        assert warned == case.get("warned", {}), warned
    from matteconv.ascend.caffe_oplist import DROPS, lookup

    assert all(lookup("atc-caffe", t).verdict == DROPS for t in case.get("dropped", []))
