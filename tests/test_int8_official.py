"""INT8 on the official MODNet (issue 32, item 4), tier 2: the finding of docs/official-model.md "INT8 on the
official model", pinned on golden/real/320 with the rule that judges a deployable matte there (golden/real's
manifest `int8` tolerance = REAL_FP16: max 0.5, mean 5e-3, confident max 0.25, confident mean 1e-3).

Measured 2026-12-08 (scripts/int8_table.py golden/real/320 --tolerance real): every layer INT8 is 1.0 max and
2.3e-2 confident mean (23x over the rule); the automatic skip meets the rule keeping 57 of the 90 layers fp16
(84 before its prune gave 27 back; 300 s, too long for a test: the kept set is stored), 76% of the MACs left
INT8, most of the kept layers backbone convolutions; with the prune giving back the most MACs first (now), 46
kept, 83.5% of the MACs INT8.
Needs the official checkpoint in the user cache (`make install`); skipped with the reason otherwise. Cost on a
shared 2-core machine: 35-45 s (export with its parity check, calibration 5 s, five predictions of the set)."""
from __future__ import annotations

import json

import pytest

from conftest import ROOT
from matteconv import official

REAL_320 = ROOT / "golden" / "real" / "320"
SKIP = ROOT / "tests" / "data" / "official_int8_skip_320.json"


@pytest.fixture(scope="module")
def official_320(tmp_path_factory):
    s = official.status()
    if not s["matches"]:
        pytest.skip(f"the official MODNet is not in the cache ({s['detail']}); `make install` puts it there")
    from typer.testing import CliRunner

    from matteconv.cli import app
    from matteconv.int8.quantize import calibrate, golden_inputs

    model = tmp_path_factory.mktemp("official_int8") / "official_320.onnx"
    r = CliRunner().invoke(app, ["export", str(official.official_checkpoint()), "--to", "onnx", "--size", "320",
                                 "-o", str(model)])
    assert r.exit_code == 0, r.output
    inputs = golden_inputs(REAL_320)
    return model, inputs, calibrate(model, inputs)


@pytest.mark.slow
def test_all_layer_int8_is_not_deployable_and_the_measured_skip_is(official_320):
    """Every layer INT8 misses the rule (23x on the confident mean); the 57 layers the automatic skip kept fp16
    (tests/data/official_int8_skip_320.json, measured) meet it, and so does the MobileNetV2 backbone alone in
    fp16: what INT8 breaks on this model is the backbone, not one bad layer."""
    from matteconv.int8.quantize import errors, predict, switchable, switched_errors, within
    from matteconv.verify.golden import load_golden
    from matteconv.verify.golden_real import REAL_FP16

    model, inputs, record = official_320
    rule = load_golden(REAL_320).tolerance("int8")
    assert rule == REAL_FP16  # INT8 is judged on golden/real as fp16 is: by the deployable-matte rule
    assert len(record.layers) == 90 and record.int8_share() == 1.0
    all_int8 = errors(predict(model, record, inputs.xs), inputs.goldens)
    assert not within(all_int8, rule)
    assert all_int8["max_abs"] > 0.9 and all_int8["confident_mean_abs"] > 10 * rule["confident_mean_abs"]

    measured = json.loads(SKIP.read_text())
    kept = measured["kept_fp16"]
    assert len(kept) == 57 and set(kept) <= {r.name for r in record.layers}
    backend = switchable(model, record)
    everything = set(backend.layers)
    fp16 = switched_errors(backend, inputs.xs, inputs.goldens, set())
    assert within(fp16, rule) and fp16["confident_mean_abs"] < 4e-4  # fp16 alone: 2.6e-4 measured
    skip = switched_errors(backend, inputs.xs, inputs.goldens, everything - set(kept))
    assert within(skip, rule), skip  # 0.47 / 3.6e-3, confident 0.24 / 4.2e-4 measured
    share = record.with_skips(kept, "test").int8_share()
    assert 0.7 < share < 0.8  # 75.7% of the MACs stay INT8
    # the prune in MACs order (the order now) keeps fewer layers, and more of the MACs INT8
    now = measured["macs_first"]["kept_fp16"]
    assert len(now) == 46 and len(now) < len(kept)
    e = switched_errors(backend, inputs.xs, inputs.goldens, everything - set(now))
    assert within(e, rule), e  # 0.478 / 3.1e-3, confident 0.184 / 2.9e-4 measured
    assert 0.8 < record.with_skips(now, "test").int8_share() < 0.87  # 83.5%
    # the greedy skip is not minimal: the 45 of its 57 that are backbone convolutions meet the rule alone (91% of
    # the MACs INT8), and so does the whole MobileNetV2 backbone fp16 (52 layers, 10% of the MACs); the 12 others
    # alone (high-resolution and fusion branches) do not
    backbone = [n for n in kept if n.startswith("/lr_branch/backbone/")]
    assert len(backbone) == 45
    whole = [n for n in everything if n.startswith("/lr_branch/backbone/")]
    for part, ok, lo, hi in ((backbone, True, 0.9, 0.93), (whole, True, 0.88, 0.91),
                             ([n for n in kept if n not in backbone], False, 0.8, 0.9)):
        e = switched_errors(backend, inputs.xs, inputs.goldens, everything - set(part))
        assert within(e, rule) is ok, (len(part), e)
        assert lo < record.with_skips(part, "test").int8_share() < hi
