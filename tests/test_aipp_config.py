"""AIPP config: rendering, the checked-in presets, the parser/validator on hand-written configs, and fuzzing."""
from __future__ import annotations

from matteconv.cli import app

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matteconv import __version__
from matteconv.aipp import PRESETS, AippSpec, check_model_inputs, load_config, parse_config, render_config
from matteconv.errors import MatteconvError

REPO = Path(__file__).resolve().parents[1]
NV21 = render_config(AippSpec("nv21", (384, 384)))


def test_presets_match_the_library():
    for name, spec in PRESETS.items():
        path = REPO / "aipp" / name
        assert path.is_file(), f"missing preset {path}: run scripts/make-aipp-presets.sh"
        assert path.read_text() == render_config(spec), f"{path} drifted: run scripts/make-aipp-presets.sh"
    assert sorted(p.name for p in (REPO / "aipp").glob("*.cfg")) == sorted(PRESETS)


def test_nv21_preset_fields():
    op = parse_config(NV21).ops[0]
    v = op.values
    assert v["input_format"] == "YUV420SP_U8" and v["rbuv_swap_switch"] is True and v["csc_switch"] is True
    rows = [[v[f"matrix_r{r}c{c}"] for c in range(3)] for r in range(3)]
    assert rows == [[298, 0, 409], [298, -100, -208], [298, 516, 0]]  # R, G, B rows
    assert [v[f"input_bias_{i}"] for i in range(3)] == [16, 128, 128]
    assert [v[f"mean_chn_{i}"] + v[f"min_chn_{i}"] for i in range(3)] == [127.5] * 3
    assert v["var_reci_chn_0"] == 1 / 127.5
    assert (v["src_image_size_w"], v["src_image_size_h"]) == (384, 384)
    assert f"matteconv {__version__}" in NV21


def test_full_range_and_bgr():
    v = parse_config(render_config(AippSpec("nv12", (320, 320), color_range="full"))).ops[0].values
    assert (v["matrix_r0c0"], v["matrix_r0c2"], v["matrix_r2c1"], v["input_bias_0"]) == (256, 359, 454, 0)
    assert v["rbuv_swap_switch"] is False
    v = parse_config(render_config(AippSpec("bgr888", (384, 384)))).ops[0].values
    assert v["input_format"] == "RGB888_U8" and v["rbuv_swap_switch"] is True and v["csc_switch"] is False


def test_crop_rendered_and_checked():
    spec = AippSpec("nv21", (384, 384), src_size=(480, 640), crop=(128, 48, 384, 384))
    v = parse_config(render_config(spec)).ops[0].values
    assert (v["crop"], v["load_start_pos_w"], v["load_start_pos_h"], v["crop_size_w"]) == (True, 128, 48, 384)
    with pytest.raises(MatteconvError, match="must equal the model size"):
        render_config(AippSpec("nv21", (384, 384), src_size=(480, 640), crop=(0, 0, 320, 384)))
    with pytest.raises(MatteconvError, match="exceeds src_image_size_w 640"):
        render_config(AippSpec("nv21", (384, 384), src_size=(480, 640), crop=(300, 0, 384, 384)))
    with pytest.raises(MatteconvError, match="must be even"):
        render_config(AippSpec("nv21", (384, 384), src_size=(480, 640), crop=(3, 0, 384, 384)))
    with pytest.raises(MatteconvError, match="give --crop"):
        render_config(AippSpec("nv21", (384, 384), src_size=(480, 640)))


def test_yuv400_refused_clearly():
    with pytest.raises(MatteconvError, match="YUV400_U8 and then only feeds 1-channel models"):
        render_config(AippSpec("yuv400", (384, 384)))


HAND = """\
# hand-written, two inputs
aipp_op{
  aipp_mode: static
  related_input_rank : 0   # camera
  input_format : YUV420SP_U8
  src_image_size_w: 640
  src_image_size_h: 480
  crop: 1
  load_start_pos_w: 128
  load_start_pos_h: 48
  crop_size_w: 384
  crop_size_h: 384
  csc_switch: 1
  rbuv_swap_switch: True
  matrix_r0c0: 298
  matrix_r0c1: 0
  matrix_r0c2: 409
  matrix_r1c0: 298
  matrix_r1c1: -100
  matrix_r1c2: -208
  matrix_r2c0: 298
  matrix_r2c1: 516
  matrix_r2c2: 0
  input_bias_0: 16
  input_bias_1: 128
  input_bias_2: 128
  var_reci_chn_0: 0.0078431
}
aipp_op { aipp_mode : static related_input_rank : 1 input_format : YUV400_U8 }
"""


def test_hand_written_config_parses():
    cfg = parse_config(HAND, "hand.cfg")
    assert len(cfg.ops) == 2
    assert cfg.ops[0].values["crop"] is True and cfg.ops[0].values["rbuv_swap_switch"] is True
    assert cfg.ops[0].lines["related_input_rank"] == 4
    assert cfg.op_for_input(1).input_format == "YUV400_U8" and cfg.op_for_input(1).channels == 1
    check_model_inputs(cfg, [("image", (1, 3, 384, 384)), ("prev_alpha", (1, 1, 480, 640))])


@pytest.mark.parametrize("old,new,message", [
    ("matrix_r0c0: 298", "matrix_r0c0: 40000", r"hand.cfg:15: matrix_r0c0 40000 is outside the range \[-32768, 32767\] the tools accept \[AIPP operator"),
    ("input_bias_1: 128", "input_bias_1: 256", r"hand.cfg:25: input_bias_1 256 is outside"),
    ("crop_size_w: 384", "crop_size_w: 600", r"hand.cfg:11: crop load_start_pos_w 128 \+ crop_size_w 600 exceeds"),
    ("load_start_pos_h: 48", "load_start_pos_h: 47", r"hand.cfg:10: crop offset 128,47 .* must be even"),
    ("src_image_size_h: 480", "src_image_size_h: 481", r"hand.cfg:7: src_image_size 640x481 .* even"),
    ("csc_switch: 1", "csc_swtich: 1", r"hand.cfg:13: unknown AIPP field 'csc_swtich'"),
    ("crop: 1", "crop: yes", r"hand.cfg:8: crop must be true/false/1/0"),
    ("input_format : YUV420SP_U8", "input_format : NV21", r"hand.cfg:5: input_format 'NV21' is not one of"),
    ("matrix_r2c2: 0\n", "", None),  # ATC accepts it: GE fills its default (a warning in check, see below)
    ("var_reci_chn_0: 0.0078431", "var_reci_chn_0: 0.0078431\n  var_reci_chn_0: 1", r"hand.cfg:27: var_reci_chn_0 is given 2 values: GE takes one"),
    ("related_input_rank : 1", "related_input_rank : 0", r"hand.cfg:29: two aipp_op blocks for model input 0"),
    ("input_format : YUV400_U8 }", "input_format : YUV400_U8 csc_switch : true }", r"hand.cfg:29: YUV400_U8 cannot use csc_switch"),
    ("\n}\naipp_op", "\naipp_op", r"hand.cfg:28: aipp_op inside an aipp_op block: is a '}' missing\?"),
    ("var_reci_chn_0: 0.0078431", "var_reci_chn_0: 0.0078431\n  mean_chn_0 : 127\n  min_chn_0 : 0.5", None),
])
def test_errors_name_file_line_and_cause(old, new, message):
    assert old in HAND
    text = HAND.replace(old, new, 1)
    if message is None:
        parse_config(text, "hand.cfg")
        return
    with pytest.raises(MatteconvError, match=message):
        parse_config(text, "hand.cfg")


def test_unclosed_and_empty(tmp_path):
    with pytest.raises(MatteconvError, match=r"x.cfg:1: aipp_op block opened here is never closed"):
        parse_config("aipp_op {\n aipp_mode: static\n", "x.cfg")
    with pytest.raises(MatteconvError, match="no aipp_op block"):
        parse_config("# nothing\n", "x.cfg")
    p = tmp_path / "bin.cfg"
    p.write_bytes(b"aipp_op {\n\xff\xfe}")
    with pytest.raises(MatteconvError, match=r"bin.cfg:2: not UTF-8"):
        load_config(p)


def test_config_vs_model():
    cfg = parse_config(NV21, "nv21.cfg")
    check_model_inputs(cfg, [("input", (1, 3, 384, 384))], "Ascend310")
    with pytest.raises(MatteconvError, match=r"nv21.cfg:10: AIPP src_image_size 384x384 \(WxH\) does not match model input 'input' 512x512"):
        check_model_inputs(cfg, [("input", (1, 3, 512, 512))])
    with pytest.raises(MatteconvError, match="feeds 3 channel\\(s\\) but model input 'input' has 4"):
        check_model_inputs(cfg, [("input", (1, 4, 384, 384))])
    with pytest.raises(MatteconvError, match="related_input_rank 0 but the model has 0 input"):
        check_model_inputs(cfg, [])
    two = parse_config(NV21.replace("related_input_rank : 0", "related_input_rank : 2"), "r.cfg")
    with pytest.raises(MatteconvError, match="related_input_rank 2 but the model has 2 input\\(s\\) \\(image, prev\\)"):
        check_model_inputs(two, [("image", (1, 3, 384, 384)), ("prev", (1, 1, 384, 384))])


# --- fuzzing: any text gives a config or a MatteconvError, never another exception -----------------------------

def _parse_or_error(text: str) -> None:
    try:
        parse_config(text, "fuzz.cfg")
    except MatteconvError as e:
        assert str(e).startswith("fuzz.cfg")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("aipp_op{}:#\n \t\"'0123456789-.etruefalsTRUEmatrix_r0c1") ), max_size=200))
def test_fuzz_token_soup(text):
    _parse_or_error(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    _parse_or_error(data.decode("utf-8", errors="replace"))


LINES = NV21.splitlines()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(LINES) - 1), st.sampled_from(["drop", "dup", "value", "key", "cut"]),
                          st.text(max_size=12)), max_size=4))
def test_fuzz_mutated_valid_config(edits):
    lines = list(LINES)
    for idx, kind, junk in edits:
        idx %= len(lines)
        if kind == "drop":
            del lines[idx]
        elif kind == "dup":
            lines.insert(idx, lines[idx])
        elif kind == "value" and ":" in lines[idx]:
            lines[idx] = lines[idx].split(":")[0] + ": " + junk
        elif kind == "key":
            lines[idx] = junk + lines[idx]
        elif kind == "cut":
            lines[idx] = lines[idx][: len(junk)]
        if not lines:
            break
    _parse_or_error("\n".join(lines))


# --- CLI ---------------------------------------------------------------------------------------------------

def test_cli_writes_config_and_json(tmp_path):
    from typer.testing import CliRunner

    out = tmp_path / "cam.cfg"
    r = CliRunner().invoke(app, ["aipp", "--input-format", "nv21", "--size", "384", "--src-size", "640x480",
                                 "--crop", "128,48,384,384", "--json", "-o", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["src_size_wh"] == [640, 480] and summary["crop"] == [128, 48, 384, 384]
    v = load_config(out).ops[0].values
    assert (v["src_image_size_w"], v["load_start_pos_w"], v["crop_size_h"]) == (640, 128, 384)
    r = CliRunner().invoke(app, ["aipp", "--input-format", "yuv400", "--size", "384", "-o", str(tmp_path / "g.cfg")])
    assert r.exit_code == 2 and "yuv400 cannot feed" in r.output
    assert not (tmp_path / "g.cfg").exists()
    r = CliRunner().invoke(app, ["aipp", "--size", "384", "--src-size", "640x480", "--crop", "400,0,384,384",
                                 "-o", str(tmp_path / "c.cfg")])
    assert r.exit_code == 2 and "exceeds src_image_size_w 640" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.cfg"]  # nothing partial left


# --- matteconv aipp check ------------------------------------------------------------------------------------

EXT = REPO / "tests" / "external" / "aipp"


def _identity_onnx(path, shape):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["out"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_check_cli_explains_emulates_and_saves(tmp_path):
    import cv2
    import numpy as np
    from typer.testing import CliRunner

    model = _identity_onnx(tmp_path / "m.onnx", (1, 3, 95, 85))
    photo = tmp_path / "p.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photo), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    out = tmp_path / "in.npy"
    r = CliRunner().invoke(app, ["aipp", "check", str(EXT / "guide_crop_padding.cfg"), "--model", str(model),
                                 "--image", str(photo), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["accepted"] and rep["ops"][0]["output_hw"] == [95, 85] and rep["ops"][0]["raw_bytes"] == 115200
    assert rep["image"]["shape"] == [1, 3, 95, 85] and not rep["image"]["resized"]
    x = np.load(out)
    assert x.shape == (1, 3, 95, 85) and np.all(x[0, :, :20] == 0) and x[0, :, 20:80, 20:70].min() >= 0
    # the same config against a model of another size: ATC refuses (crop + padding must equal the input)
    small = _identity_onnx(tmp_path / "s.onnx", (1, 3, 96, 96))
    r = CliRunner().invoke(app, ["aipp", "check", str(EXT / "guide_crop_padding.cfg"), "--model", str(small), "--json"])
    assert r.exit_code == 2
    assert [f["rule"] for f in json.loads(r.stdout)["findings"] if f["level"] == "error"] == ["tbe.output-size"]


def test_check_cli_seed_config_matches_preprocess(tmp_path):
    import cv2
    import numpy as np
    from typer.testing import CliRunner

    from matteconv.samples import photos

    rgb = next(iter(photos().values()))
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    r = CliRunner().invoke(app, ["aipp", "check", str(EXT / "seed_aipp.cfg"), "--image", str(photo), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert not [f for f in rep["findings"] if f["rule"].startswith("lint.")]
    assert rep["image"]["resized"] and rep["image"]["shape"] == [1, 3, 320, 320]
    # NV21 shares chroma per 2x2 block and the documented >> 8 floors: on the astronaut photo measured mean
    # 0.0113 (1.4 LSB; max 0.38 at sharp colour edges). The same config with B,G,R rows gives mean 0.25.
    vs = rep["image"]["vs_matteconv_preprocess"]
    assert vs["mean"] < 0.015 and vs["max"] < 0.5
    r = CliRunner().invoke(app, ["aipp", "check", str(EXT / "seed_aipp.cfg")])
    assert r.exit_code == 0 and "153600 bytes per frame" in r.output and "ch0 = (R - 127.5)" in r.output


def test_check_cli_refusals_exit_2_and_write_nothing(tmp_path):
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["aipp", "check", str(EXT / "refused_odd_crop.cfg")])
    assert r.exit_code == 2 and "refused_odd_crop.cfg:7: crop offset 127,48" in r.output and "tbe.yuv420sp-crop-even" in r.output
    r = CliRunner().invoke(app, ["aipp", "check", str(EXT / "seed_aipp.cfg"), "-o", str(tmp_path / "x.npy")])
    assert r.exit_code == 2 and "give --image too" in r.output
    bad = tmp_path / "bad.cfg"
    bad.write_text("aipp_op { aipp_mode: static input_format: YUV420SP_U8 padding_valu: 0 }\n")
    r = CliRunner().invoke(app, ["aipp", "check", str(bad)])
    assert r.exit_code == 2 and "bad.cfg:1: unknown AIPP field 'padding_valu'" in r.output
    r = CliRunner().invoke(app, ["aipp"])
    assert r.exit_code == 2 and "give -o/--output" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.cfg"]


def test_parse_refusal_as_json_report(tmp_path):
    """What protobuf's parser (ATC's) refuses is a refusal like the rest: with --json, the same report shape."""
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["aipp", "check", str(EXT / "refused_fullwidth_colon.cfg"), "--json"])
    assert r.exit_code == 2
    rep = json.loads(r.stdout)
    assert rep["accepted"] is False and rep["ops"] == []
    assert [(f["level"], f["rule"], f["line"]) for f in rep["findings"]] == [("error", "proto.syntax", 3)]
    bad = tmp_path / "twice.cfg"
    bad.write_text("aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n input_format: YUV400_U8\n}\n")
    rep = json.loads(CliRunner().invoke(app, ["aipp", "check", str(bad), "--json"]).stdout)
    assert [(f["rule"], f["line"]) for f in rep["findings"]] == [("proto.set-twice", 4)]


def test_fewer_model_channels_read_the_first():
    """A model with fewer channels than the op produces reads the first ones (the ATC guide's GRAY setups): not
    refused; constant dropped channels are a note, dropped image data a warning."""
    from matteconv.aipp import check_config

    rgb = parse_config("aipp_op { aipp_mode: static input_format: RGB888_U8 }", "rgb.cfg")
    ex, findings = check_config(rgb, [("x", (1, 1, 32, 32))])
    rules = {f.rule: f.level for f in findings}
    assert rules["lint.channels-dropped"] == "warning" and "tbe.channels" not in rules
    assert ex[0].order == ["R"] and len(ex[0].channels) == 1
    grey = parse_config("aipp_op { aipp_mode: static input_format: RGB888_U8 csc_switch: true matrix_r0c0: 76 "
                        "matrix_r0c1: 150 matrix_r0c2: 30 matrix_r1c0: 0 matrix_r1c1: 0 matrix_r1c2: 0 matrix_r2c0: 0 "
                        "matrix_r2c1: 0 matrix_r2c2: 0 }", "grey.cfg")
    ex, findings = check_config(grey, [("x", (1, 1, 32, 32))])
    assert ex[0].order == ["Y"] and {f.rule: f.level for f in findings}["aipp.channels-dropped"] == "note"
    assert "clamp(((76*R + 150*G + 30*B) >> 8) + 16, 0, 255)" in ex[0].csc[0]  # GE's default output_bias_0
    import numpy as np

    from matteconv.aipp.emulate import emulate_image

    rgb_frame = np.full((32, 32, 3), (30, 20, 10), np.uint8)
    x = emulate_image(grey.ops[0], rgb_frame, (32, 32), model_channels=1)["input"]
    assert x.shape == (1, 1, 32, 32) and np.all(x == ((76 * 30 + 150 * 20 + 30 * 10) >> 8) + 16)
    _, findings = check_config(grey)  # no model: all three channels explained, nothing dropped
    assert not {"aipp.channels-dropped", "lint.channels-dropped"} & {f.rule for f in findings}
    yuv400 = parse_config("aipp_op { aipp_mode: static input_format: YUV400_U8 }", "y.cfg")
    with pytest.raises(MatteconvError, match="YUV400_U8 feeds 1 channel\\(s\\) but model input 'x' has 3"):
        check_model_inputs(yuv400, [("x", (1, 3, 32, 32))])


def test_related_input_name_wins_and_resolves():
    from matteconv.aipp import check_config

    text = ('aipp_op {{ aipp_mode: static related_input_rank: {rank} {name} input_format: RGB888_U8 }}\n'
            'aipp_op {{ aipp_mode: static related_input_rank: 0 input_format: YUV400_U8 }}\n')
    cfg = parse_config(text.format(rank=0, name='related_input_name: "b"'), "n.cfg")  # GE: the name wins
    ex, findings = check_config(cfg, [("a", (1, 1, 8, 8)), ("b", (1, 3, 8, 8))])
    assert [(e.rank, e.input_format) for e in ex] == [(1, "RGB888_U8"), (0, "YUV400_U8")]
    assert cfg.op_for_input(1, ["a", "b"]).input_format == "RGB888_U8"  # by name, given the model's inputs
    assert cfg.op_for_input(0).input_format == "RGB888_U8"  # without them, by rank, as before (verify's aipp stage)
    assert [f.rule for f in findings if f.level != "warning"] == ["ge.name-over-rank"]
    _, findings = check_config(cfg, [("a", (1, 1, 8, 8)), ("c", (1, 3, 8, 8))])
    assert [f.rule for f in findings if f.level == "error"] == ["ge.input-name"]
    empty = text.format(rank=0, name='related_input_name: ""')  # GE skips an empty name: the rank stands
    _, findings = check_config(parse_config(empty, "e.cfg", validate=False), [("a", (1, 3, 8, 8))])
    assert "ge.same-input" in {f.rule for f in findings if f.level == "error"}
    with pytest.raises(MatteconvError, match="e.cfg:2: two aipp_op blocks for model input 0"):
        parse_config(empty, "e.cfg")


@pytest.mark.parametrize("rbuv, ax, frame", [
    (False, True, "X,R,G,B bytes per pixel"), (True, True, "X,B,G,R bytes per pixel for R,G,B at the model"),
    (False, False, "R,G,B,X bytes per pixel"), (True, False, "B,G,R,X bytes per pixel for R,G,B at the model")])
def test_xrgb_frames_follow_the_swaps(rbuv, ax, frame):
    """The ATC guide's XRGB / XBGR / RGBX / BGRX table: ax_swap_switch takes X from the front, rbuv swaps R, B."""
    from matteconv.aipp import check_config

    cfg = parse_config(f"aipp_op {{ aipp_mode: static input_format: XRGB8888_U8 rbuv_swap_switch: {str(rbuv).lower()} "
                       f"ax_swap_switch: {str(ax).lower()} }}", "x.cfg")
    (ex,), _ = check_config(cfg)
    assert ex.frame == frame and ex.order == ["R", "G", "B"]


def test_check_cli_bad_image_model_and_options_are_one_line(tmp_path):
    from typer.testing import CliRunner

    empty_png, empty_onnx = tmp_path / "e.png", tmp_path / "e.onnx"
    empty_png.write_bytes(b"")
    empty_onnx.write_bytes(b"")
    cfg = str(EXT / "rgb888_imagenet.cfg")
    r = CliRunner().invoke(app, ["aipp", "check", cfg, "--image", str(empty_png)])
    assert r.exit_code == 2 and "e.png: not a readable image (an empty file)" in r.output
    r = CliRunner().invoke(app, ["aipp", "check", cfg, "--model", str(empty_onnx)])
    assert r.exit_code == 2 and "e.onnx: " in r.output and "related_input_rank" not in r.output  # the model's fault
    r = CliRunner().invoke(app, ["aipp", "check", cfg, "--model", str(tmp_path)])
    assert r.exit_code == 2 and "is a folder, not a model file" in r.output
    r = CliRunner().invoke(app, ["aipp", "--size", "64", "--crop", "1,1,64,64", "--src-size", "100x100",
                                 "-o", str(tmp_path / "a.cfg")])
    assert r.exit_code == 2 and "the AIPP config these options describe: crop offset 1,1" in r.output
    r = CliRunner().invoke(app, ["aipp", "check", cfg, "--soc-version", "ascend310"])
    assert r.exit_code == 2 and "not a SoC atc knows (did you mean Ascend310?" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.onnx", "e.png"]
