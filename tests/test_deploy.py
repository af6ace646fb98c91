"""`matteconv deploy`: the generated device app, run unchanged against the stand-in hilens / acl / ais_bench modules.

Models are the reference checkpoints exported at 64x64 and "compiled" by the stand-in atc (tests/fakes/atc), so
the .om's build record points at a real ONNX model that the stand-ins execute behind the emulated AIPP."""
from __future__ import annotations

import ast
import io
import json
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import fakes
from conftest import GOLDEN_CLIP
from matteconv.aipp import AippSpec, render_config, rgb_to_nv21
from matteconv.ascend.build import build_om
from matteconv.cli import app as cli
from matteconv.deploy import DeployOptions, EmulatedOmBackend, generate_app, simulate
from matteconv.deploy.app import pipeline
from matteconv.deploy.generate import layout_error
from matteconv.deploy.simhost import STANDINS
from matteconv.errors import MatteconvError
from matteconv.export.onnx import export_onnx
from matteconv.matte import matte
from matteconv.model.checkpoint import load_checkpoint
from matteconv.video import write_test_video

SIZE = (64, 64)
N = SIZE[0] * SIZE[1]  # pixels of a model input
CLIP = GOLDEN_CLIP / "inputs"
BACKGROUND = "#2e8b57"
# Measured: the simulated app equals `matteconv matte` through the same emulated .om to the last level on the
# golden clip (max 0) for every runtime; 1 level allows for a different OpenCV build's rounding.
PARITY_MAX_LEVELS = 1


@pytest.fixture(scope="module")
def oms(ref3_ckpt, ref4_ckpt, tmp_path_factory) -> dict[str, Path]:
    """'3' and '4' -> an .om (NV21 AIPP) + build record; 'nv12' -> the 3-channel model with an NV12 AIPP."""
    d = tmp_path_factory.mktemp("deploy_om")
    bindir = d / "bin"
    fakes.install("atc", bindir)
    env = fakes.env_with_path(bindir)
    out = {}
    for key, ckpt, split, fmt in (("3", ref3_ckpt, False, "nv21"), ("4", ref4_ckpt, True, "nv21"),
                                  ("nv12", ref3_ckpt, False, "nv12")):
        onnx_path = d / f"ref{key}.onnx"
        if key != "nv12":
            export_onnx(load_checkpoint(ckpt), onnx_path, SIZE, split_inputs=split)
        else:
            onnx_path = d / "ref3.onnx"
        cfg = d / f"{fmt}.cfg"
        cfg.write_text(render_config(AippSpec(fmt, SIZE)))
        out[key] = build_om(onnx_path, d / f"model_{key}", cfg, env=env).om
    return out


def read_frames(folder: Path) -> list[np.ndarray]:
    files = sorted(folder.glob("*.png"))
    assert files, folder
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


def nv21_round_trip(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.cvtColor(rgb_to_nv21(rgb).reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_NV21)


def reference(om: Path, runtime: str, work: Path, temporal: bool = True) -> list[np.ndarray]:
    """`matteconv matte` on the clip through the same emulated .om. For HiLens the frames first make the trip
    the device makes (camera NV21 decoded by OpenCV) and the result the display's (RGB -> NV21 -> screen)."""
    src = CLIP
    if runtime == "hilens":
        src = work / "camera"
        src.mkdir()
        for i, f in enumerate(read_frames(CLIP)):
            cv2.imwrite(str(src / f"{i:03d}.png"), cv2.cvtColor(nv21_round_trip(f), cv2.COLOR_RGB2BGR))
    matte(src, str(om), work / "ref", background=BACKGROUND, backend=EmulatedOmBackend(om), temporal=temporal)
    frames = read_frames(work / "ref")
    return [nv21_round_trip(f) for f in frames] if runtime == "hilens" else frames


def max_levels(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    assert len(a) == len(b)
    return max(int(cv2.absdiff(x, y).max()) for x, y in zip(a, b))


# tier 1: the HiLens app on both models (the 3-channel one off the app's clock); acl and ais_bench: tier 2 (issue 38;
# acl's per-frame allocation and ais_bench's stand-in have their own tier-1 tests below)
@pytest.mark.parametrize("runtime,channels", [("hilens", "4"), pytest.param("acl", "4", marks=pytest.mark.slow),
                                              pytest.param("ais_bench", "4", marks=pytest.mark.slow), ("hilens", "3"),
                                              pytest.param("ais_bench", "3", marks=pytest.mark.slow)])
def test_simulated_app_matches_matte(oms, tmp_path, runtime, channels):
    om = oms[channels]
    res = generate_app(om, tmp_path / "app", DeployOptions(runtime=runtime, background=BACKGROUND))
    # the 3-channel HiLens case runs the stand-ins' camera and display off the app's clock (as bench_deploy):
    # the same frames must come out, in order
    offclock = runtime == "hilens" and channels == "3"
    sim = simulate(res.app, CLIP, tmp_path / "sim", report_every=5, offclock=offclock)
    got = read_frames(tmp_path / "sim")
    assert len(got) == 10 and sim.stats["frames"] == 10 and sim.stats["dropped"] == 0
    assert max_levels(got, reference(om, runtime, tmp_path)) <= PARITY_MAX_LEVELS
    # what the app printed: a stage line every 5 frames and the summary
    stage_lines = [ln for ln in sim.lines if ln.startswith("frames")]
    assert len(stage_lines) == 2 and all(f"{s} " in stage_lines[0] for s in ("read", "pre", "infer", "post", "show"))
    assert sim.lines[-1].startswith("done: 10 frames")
    if channels == "4":
        assert sim.stats["resets"] >= 1
    if runtime == "hilens":
        assert sim.device["hilens"]["frames_shown"] == 10 and sim.device["hilens"]["infer_size_mismatch"] == 0
        assert sim.device["hilens"]["terminate"] == 1 and sim.device["hilens"]["offclock"] == offclock
        assert sim.device["hilens"]["camera_ms"] > 0 and sim.device["hilens"]["display_ms"] > 0
        assert res.archive is not None and "main.py" in zipfile.ZipFile(res.archive).namelist()


@pytest.mark.slow  # end to end: tier 2 (issue 38)
def test_temporal_app_depends_on_previous_frame(oms, tmp_path):
    outs = {}
    for temporal in (True, False):
        res = generate_app(oms["4"], tmp_path / f"app_{temporal}", DeployOptions(runtime="acl", temporal=temporal))
        simulate(res.app, CLIP, tmp_path / f"sim_{temporal}")
        outs[temporal] = read_frames(tmp_path / f"sim_{temporal}")
    with_fb, without = outs[True], outs[False]
    assert np.array_equal(with_fb[0], without[0])  # first frame: zeros either way
    diffs = [int(cv2.absdiff(a, b).max()) for a, b in zip(with_fb[1:], without[1:])]
    assert min(diffs) > 5, diffs
    assert max_levels(without, reference(oms["4"], "acl", tmp_path, temporal=False)) <= PARITY_MAX_LEVELS


def test_generated_files_are_python_3_7(oms, tmp_path):
    for runtime in ("hilens", "acl", "ais_bench"):
        res = generate_app(oms["4"], tmp_path / runtime, DeployOptions(runtime=runtime))
        sources = sorted(res.app.glob("*.py"))
        assert {p.name for p in sources} >= {"main.py", "pipeline.py", "stream.py", f"runtime_{runtime}.py"}
        for p in sources:
            tree = ast.parse(p.read_text(encoding="utf-8"), str(p), feature_version=(3, 7))
            # annotations are evaluated at runtime on 3.7 (no PEP 604/585): the app carries none
            assert not any(isinstance(n, ast.AnnAssign) or (isinstance(n, ast.arg) and n.annotation)
                           for n in ast.walk(tree)), p
            imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert "matteconv" not in imports and "torch" not in imports, p
        cfg = json.loads((res.app / "app_config.json").read_text())
        assert cfg["inputs"][0] == {"name": "image", "shape": [1, 3, *SIZE], "dtype": "uint8", "bytes": N * 3 // 2}
        assert cfg["inputs"][1]["dtype"] == "float32" and cfg["inputs"][1]["bytes"] == N * 4
        assert (res.app / "model" / "aipp.cfg").is_file() and (res.app / "README.md").is_file()


def test_swapped_nv12_nv21_is_caught(oms, tmp_path):
    res = generate_app(oms["3"], tmp_path / "app", DeployOptions(runtime="ais_bench"))
    record = EmulatedOmBackend(oms["3"]).device.record
    ok, _ = layout_error(res.config, record)
    bad, red = layout_error(dict(res.config, input_layout="nv12"), record)
    assert ok <= 3 and bad > 100, (ok, bad)
    r, g, b = (int(v) for v in red[red.index("(") + 1:red.index(")")].split(","))
    assert b > 200 and r < 60  # the red patch arrives blue
    cfg_path = res.app / "app_config.json"
    cfg_path.write_text(json.dumps(dict(res.config, input_layout="nv12")))
    with pytest.raises(MatteconvError, match="input_layout 'nv12' does not match the .om's AIPP"):
        simulate(res.app, CLIP, tmp_path / "sim")
    assert not (tmp_path / "sim").exists()
    # an NV12 AIPP build gets an NV12 app
    res12 = generate_app(oms["nv12"], tmp_path / "app12", DeployOptions(runtime="acl"))
    assert res12.config["input_layout"] == "nv12" and res12.layout_error_lsb <= 3


def test_byte_count_mismatch_is_one_line(oms, tmp_path):
    res = generate_app(oms["4"], tmp_path / "app", DeployOptions(runtime="acl"))
    cfg = json.loads((res.app / "app_config.json").read_text())
    cfg["inputs"][0]["bytes"] = N * 3  # an RGB-sized input against a YUV420SP AIPP input
    (res.app / "app_config.json").write_text(json.dumps(cfg))
    with pytest.raises(MatteconvError, match=rf"input 0 \('image'\) takes {N * 3 // 2} bytes, the app config says {N * 3}"):
        simulate(res.app, CLIP, tmp_path / "sim")
    spec = [{"name": "prev_alpha", "dtype": "float32", "bytes": N * 4}]
    with pytest.raises(pipeline.AppError, match=rf"input 'prev_alpha': {N * 2} bytes of float16, the model takes {N * 4} "
                                                r"bytes of float32"):
        pipeline.check_inputs(spec, [np.zeros((1, 1, *SIZE), np.float16)])


@pytest.fixture()
def standin_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(STANDINS))
    for name in ("hilens", "ais_bench", "ais_bench.infer", "ais_bench.infer.interface"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import hilens
    from ais_bench.infer.interface import InferSession

    yield hilens, InferSession
    for name in ("hilens", "ais_bench", "ais_bench.infer", "ais_bench.infer.interface"):
        sys.modules.pop(name, None)  # the stand-ins must not look like an installed runtime to later tests


def test_standins_behave_like_the_devices(oms, standin_modules, capsys):
    hilens, InferSession = standin_modules
    model = hilens.Model(str(oms["4"]))
    nv21 = np.zeros(N * 3 // 2, np.uint8)
    prev = np.zeros(N, np.float32)
    assert model.infer([np.zeros(N * 3, np.uint8), prev]) == 17  # RGB bytes into a YUV420SP input
    assert f"your input size: {N * 3}, {N * 4}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="uint8 or float32"):
        model.infer([nv21, prev.astype(np.float64)])
    out = model.infer([nv21, prev])
    assert isinstance(out, list) and out[0].dtype == np.float32 and out[0].size == N
    display = hilens.Display(hilens.HDMI)
    with pytest.raises(ValueError, match="NV21 only|takes an NV21"):
        display.show(np.zeros((128, 128, 3), np.uint8))
    display.show(hilens.cvt_color(np.zeros((128, 128, 3), np.uint8), hilens.RGB2YUV_NV21))
    with pytest.raises(ValueError, match="first frame fixes the size"):
        display.show(hilens.cvt_color(np.zeros((128, 256, 3), np.uint8), hilens.RGB2YUV_NV21))
    assert hilens.cvt_color(np.zeros((127, 128, 3), np.uint8), hilens.RGB2YUV_NV21).size == 0

    session = InferSession(0, str(oms["4"]))
    assert [d.realsize for d in session.get_inputs()] == [N * 3 // 2, N * 4]
    with pytest.raises(RuntimeError, match=f"Check i:0 in size:{N * 3} needsize:{N * 3 // 2} not match"):
        session.infer([np.zeros(N * 3, np.uint8), prev])
    # the dtype is never checked: the right number of bytes of anything passes
    assert session.infer([np.zeros(N * 3 // 16, np.float64), prev])[0].shape == (1, 1, *SIZE)


def test_acl_allocates_nothing_per_frame(oms, tmp_path):
    rng = np.random.default_rng(0)
    base = (rng.random((96, 96, 3)) * 255).astype(np.uint8)
    frames = [np.roll(base, i, axis=1) for i in range(300)]
    video = write_test_video(tmp_path / "clip300.mp4", frames)
    res = generate_app(oms["4"], tmp_path / "app", DeployOptions(runtime="acl"))
    sim = simulate(res.app, video, tmp_path / "out.avi", report_every=100)
    acl = sim.device["acl"]
    assert sim.stats["frames"] == 300 and acl["executes"] == 300
    assert acl["allocations"] == acl["allocations_before_first_execute"] > 0
    assert acl["live_at_exit"] == 0 and acl["frees"] == acl["allocations"]
    assert acl["init"] == acl["finalize"] == 1


def test_live_mode_drops_frames_instead_of_queueing(monkeypatch):
    monkeypatch.syspath_prepend(str(pipeline.__file__.rsplit("/", 1)[0]))
    import stream

    class Source:
        def __init__(self, n):
            self.n = n

        def read(self):
            self.n -= 1
            return np.full((64, 64, 3), self.n % 200, np.uint8) if self.n >= 0 else None

        def to_rgb(self, raw):
            return raw

    class SlowRuntime:
        def infer(self, inputs):
            import time

            time.sleep(0.02)
            return [np.full((1, 1, 64, 64), 0.5, np.float32)]

    class Sink:
        def __init__(self):
            self.n = 0

        def show(self, view):
            self.n += 1

    cfg = {"model_size": [64, 64], "inputs": [{"name": "input", "dtype": "float32", "bytes": 64 * 64 * 12}],
           "input_layout": "float", "in_channels": 3, "queue_depth": 2, "report_every": 1000}
    bg = pipeline.Background("#000000")
    for live in (False, True):
        sink = Sink()
        stats = stream.run(cfg, SlowRuntime(), Source(40), sink, bg, live=live,
                           stats=stream.Stats(1000, out=io.StringIO()))
        if live:
            assert stats.dropped > 0 and sink.n + stats.dropped == 40
        else:
            assert stats.dropped == 0 and sink.n == 40


def test_app_pipeline_equals_matteconv(tmp_path):
    from matteconv import preprocess
    from matteconv.matte import composite, parse_background

    rng = np.random.default_rng(1)
    rgb = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    # bitwise: the board copy calls the same numpy / OpenCV functions with the same arguments as matteconv, in
    # this one process, so any difference is a divergence of the two codes, not of kernels
    np.testing.assert_array_equal(pipeline.yuv420sp(rgb[:, :158]), rgb_to_nv21(rgb[:, :158]))
    for mirror in (False, True):
        ours = pipeline.prepare(0, rgb, (64, 64), mirror)
        prep = preprocess.prepare(rgb, "device", (64, 64), mirror)
        np.testing.assert_array_equal(ours.frame, prep.frame)
        alpha = rng.random((64, 64)).astype(np.float32)
        np.testing.assert_array_equal(pipeline.restore(alpha, ours), preprocess.restore(alpha, prep))
    image = tmp_path / "bg.png"
    cv2.imwrite(str(image), (rng.random((50, 90, 3)) * 255).astype(np.uint8))
    a = rng.random((120, 160)).astype(np.float32)
    for spec in ("#2e8b57", "blur", str(image)):
        np.testing.assert_array_equal(pipeline.composite(rgb, a, pipeline.Background(spec)),
                                      composite(rgb, a, parse_background(spec)))


def test_cli_generates_and_simulates(oms, tmp_path):
    r = CliRunner().invoke(cli, ["deploy", str(oms["3"]), "--runtime", "ais_bench", "-o", str(tmp_path / "app"),
                                 "--simulate", str(CLIP), "--sim-output", str(tmp_path / "out.avi"), "--frames", "4",
                                 "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["simulation"]["stats"]["frames"] == 4 and (tmp_path / "out.avi").is_file()
    assert summary["app"]["config"]["input_layout"] == "nv21"
    r = CliRunner().invoke(cli, ["deploy", str(oms["3"]), "-o", str(tmp_path / "app")])
    assert r.exit_code == 2 and "not an empty folder" in r.output
    bare = tmp_path / "bare.om"
    bare.write_bytes(b"FAKE-OM")
    r = CliRunner().invoke(cli, ["deploy", str(bare), "-o", str(tmp_path / "app2")])
    assert r.exit_code == 2 and "bare.build.json" in r.output and not (tmp_path / "app2").exists()


def test_fp16_output_and_build_flags(oms, tmp_path):
    """atc --output_type=FP16 gives fp16 alpha bytes; --input_fp16_nodes makes prev_alpha fp16 (half the bytes)."""
    import shutil

    from matteconv.deploy import DeviceModel, read_record

    om = tmp_path / "half.om"
    shutil.copyfile(oms["4"], om)
    info = json.loads(oms["4"].with_suffix(".build.json").read_text())
    info["argv"] += ["--output_type=FP16", "--input_fp16_nodes=prev_alpha"]
    info["source_model"] = str(read_record(oms["4"]).source)  # the copy lives elsewhere
    om.with_suffix(".build.json").write_text(json.dumps(info))
    device = DeviceModel(om)
    assert [t.dtype for t in device.inputs] == ["uint8", "float16"] and device.inputs[1].nbytes == N * 2
    out = device.run([np.zeros(N * 3 // 2, np.uint8), np.zeros((1, 1, *SIZE), np.float16)])[0]
    assert out.dtype == np.float16 and out.nbytes == device.outputs[0].nbytes == N * 2
    alpha = pipeline.alpha_from_output(out, SIZE)
    assert alpha.dtype == np.float32 and 0 <= alpha.min() and alpha.max() <= 1
    res = generate_app(om, tmp_path / "app", DeployOptions(runtime="acl"))
    assert res.config["outputs"][0]["dtype"] == "float16" and res.config["inputs"][1]["dtype"] == "float16"
    with pytest.raises(MatteconvError, match="HiLens Model.infer takes only uint8 or float32"):
        generate_app(om, tmp_path / "hl", DeployOptions(runtime="hilens"))
    assert not (tmp_path / "hl").exists()
