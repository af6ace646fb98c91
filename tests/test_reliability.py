"""The reliability class (issue 12), held against the real CLI in subprocesses:
NaN never passes and reports stay valid JSON; no command writes over its inputs, however the path is spelled;
every checkpoint dtype converts exactly or is refused; every way a command ends (success, error, timeout,
SIGINT, SIGTERM) leaves no temporary file or folder and no child process; messages name the user's file and the
real problem; bad input exits 2 before the work. BAD_INPUT holds one bad input per command: a new command must
add its row (test_every_command_has_a_bad_input_row fails until it does)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import fakes
from matteconv.cli import app
from matteconv.errors import MatteconvError
from test_ascend_command import conv_model

SIZE = 64


# ---------------------------------------------------------------- helpers


def cli_env(tmp: Path, **extra) -> dict:
    """The CLI's environment with a private TMPDIR (checked empty afterwards) and no real Ascend tools."""
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    env = fakes.env_with_path(tmp / "bin", TMPDIR=str(tmpdir), **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])
    return env


def start(args, tmp: Path, cwd: Path | None = None, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "matteconv.cli", *map(str, args)], cwd=cwd or tmp,
                            env=cli_env(tmp, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mc(args, tmp: Path, cwd: Path | None = None, timeout: float = 240, **extra) -> subprocess.CompletedProcess:
    p = start(args, tmp, cwd, **extra)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def one_error_line(r: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit `code`, no traceback, exactly one `error:` line on stderr containing every needle."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("note:", "warning:"))]
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def leftovers(*folders: Path) -> list[str]:
    """Hidden temporaries (ours start with '.') in output folders, and anything in the private TMPDIR."""
    found = []
    for f in folders:
        if f.name == "tmpdir":  # everything: onnxruntime's telemetry file ($TMPDIR/.ses) included (matteconv/__init__)
            found += [str(p) for p in f.iterdir()]
        else:
            found += [str(p) for p in f.iterdir() if p.name.startswith(".")]
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_for(cond, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 64x64 world without PyTorch: a MODNet-shaped ONNX (one conv), the same with a NaN weight, a non-MODNet
    ONNX (3-channel output), a photo and an AIPP config."""
    import cv2

    from matteconv import samples
    from matteconv.aipp import AippSpec, render_config

    d = tmp_path_factory.mktemp("rel")
    w = {"dir": d, "onnx": conv_model(d / "tiny.onnx", hw=SIZE)}
    nan = onnx.load(str(w["onnx"]))
    nan.graph.initializer[0].float_data[:] = [float("nan")] + list(nan.graph.initializer[0].float_data[1:])
    onnx.save(nan, str(d / "nan.onnx"))
    w["nan_onnx"] = d / "nan.onnx"
    three = onnx.load(str(w["onnx"]))  # 3-channel output: an image-to-image model, not a matte
    three.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 3
    w_init = three.graph.initializer[0]
    w_init.dims[0] = 3
    w_init.float_data[:] = list(np.eye(3, dtype=np.float32).ravel())
    onnx.save(three, str(d / "rgb.onnx"))
    w["rgb_onnx"] = d / "rgb.onnx"
    photos = d / "photos"
    photos.mkdir()
    img = cv2.resize(samples.photos()["astronaut"], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    w["photo"] = photos / "astronaut.png"
    w["aipp"] = d / "nv21.cfg"
    w["aipp"].write_text(render_config(AippSpec("nv21", (SIZE, SIZE))))
    return w


@pytest.fixture(scope="module")
def work(models, ref3_ckpt):
    """`models` plus the reference checkpoint and a one-photo golden set made from it."""
    from matteconv.verify.golden import make_set

    golden = make_set(models["dir"] / "golden", ckpt=ref3_ckpt, images=models["photo"].parent, size=(SIZE, SIZE))
    return {**models, "ckpt": ref3_ckpt, "golden": golden.root}


# ---------------------------------------------------------------- 1. NaN never passes


@pytest.mark.slow
def test_verify_fails_a_model_that_outputs_nan_and_the_report_stays_json(work, tmp_path):
    report = tmp_path / "r.json"
    r = mc(["verify", "--golden", work["golden"], "--ckpt", work["ckpt"], "--onnx", work["nan_onnx"],
            "--require", "onnx", "--json", report], tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "model output contains" in r.stdout and "NaN" in r.stdout and "within tolerance" not in r.stdout
    data = json.loads(report.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    onnx_row = next(s for s in data["stages"] if s["name"] == "onnx")
    assert data["ok"] is False and onnx_row["status"] == "failed" and "NaN" in onnx_row["reason"]
    assert leftovers(tmp_path, tmp_path / "tmpdir") == []


@pytest.mark.slow
def test_matte_refuses_nan_and_non_modnet_models(models, tmp_path):
    out = tmp_path / "out.png"
    one_error_line(mc(["matte", models["photo"], "--model", models["nan_onnx"], "-o", out], tmp_path), 2,
                   str(models["nan_onnx"]), "model output", "NaN")
    one_error_line(mc(["matte", models["photo"], "--model", models["rgb_onnx"], "-o", out], tmp_path), 2,
                   str(models["rgb_onnx"]), "not a MODNet matting model", "1x1xHxW")
    assert not out.exists() and leftovers(tmp_path, tmp_path / "tmpdir") == []


def test_json_reports_never_hold_a_bare_nan():
    from matteconv.fileio import json_text

    text = json_text({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": (np.float64(2.0),)})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": [2.0]}


def test_parity_rule():
    """Within 1e-3 of fp32 passes; beyond, within 2x fp32's own distance from float64 passes (large sizes);
    a real error does not; NaN from PyTorch is the checkpoint's problem, from the runtime the converter's."""
    from matteconv.export.parity import judge

    ref64 = np.linspace(0, 1, 100).reshape(1, 1, 10, 10)
    ref = ref64 + 8e-4 * np.sign(np.sin(np.arange(100))).reshape(ref64.shape)  # fp32's own error: 8e-4
    got = ref64 - 7e-4 * np.sign(np.sin(np.arange(100))).reshape(ref64.shape)  # 1.5e-3 from fp32, 7e-4 from f64
    p = judge(got, ref, lambda: ref64, "m.onnx", "c.ckpt", "onnxruntime")
    assert p.max_abs == pytest.approx(1.5e-3) and p.tolerance == pytest.approx(1.6e-3) and p.floor == pytest.approx(8e-4)
    with pytest.raises(MatteconvError, match="more than 2x PyTorch fp32's own error"):
        judge(got + 5e-3, ref, lambda: ref64, "m.onnx", "c.ckpt", "onnxruntime")
    small = ref64 + 1e-4
    with pytest.raises(MatteconvError, match="m.onnx: onnxruntime differs"):
        judge(small + 2e-3, small, lambda: ref64, "m.onnx", "c.ckpt", "onnxruntime")
    bad = ref.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(MatteconvError, match=r"c.ckpt: the model's output in PyTorch contains 1 NaN .* checkpoint"):
        judge(got, bad, lambda: ref64, "m.onnx", "c.ckpt", "onnxruntime")
    with pytest.raises(MatteconvError, match=r"m.onnx: onnxruntime's output contains 1 NaN .* converter bug"):
        judge(bad, ref, lambda: ref64, "m.onnx", "c.ckpt", "onnxruntime")


def test_float64_reference_in_row_tiles_is_exact():
    """The float64 reference at large sizes runs convolutions band by band: the same sums per output pixel as in one
    piece, up to summation order. The convolution kernel may block a band and the whole image differently (it does
    on AVX2 EPYC, not on AVX-512 Xeon), so the two agree within the float64 rounding bound of a dot product of K
    terms computed in any order (Higham, Accuracy and Stability, eq. 3.5): |d| <= 2 gamma_K (|W| * |x| + |b|),
    gamma_K = K u / (1 - K u), u = 2^-53. A band that took the wrong rows would be off by O(1)."""
    from matteconv.export.onnx.exporter import row_tiled_float64_convs

    torch.manual_seed(0)
    x = torch.randn(1, 4, 37, 29, dtype=torch.float64)
    b = torch.ones(8, dtype=torch.float64)
    u = 2.0 ** -53
    for kw in ({"stride": 1, "padding": 1}, {"stride": 2, "padding": 1}, {"stride": 1, "padding": 2, "dilation": 2},
               {"stride": 2, "padding": 0, "groups": 4}, {"stride": 1, "padding": 3}):
        groups = kw.get("groups", 1)
        w = torch.randn(8, 4 // groups, 3 if "dilation" in kw or kw["padding"] < 3 else 7,
                        3 if "dilation" in kw or kw["padding"] < 3 else 7, dtype=torch.float64)
        plain = torch.nn.functional.conv2d(x, w, b, **kw)
        with row_tiled_float64_convs(rows=4):
            tiled = torch.nn.functional.conv2d(x, w, b, **kw)
        k = w[0].numel() + 1  # products per output, plus the bias
        gamma = k * u / (1 - k * u)
        bound = 2 * gamma * (torch.nn.functional.conv2d(x.abs(), w.abs(), b.abs(), **kw))
        assert tiled.shape == plain.shape, kw
        assert ((tiled - plain).abs() <= bound).all(), (kw, (tiled - plain).abs().max().item())
        assert (tiled - plain).abs().max() < 1e-12, kw  # and far from a wrong band


def test_a_size_that_cannot_fit_in_memory_is_refused_up_front(work, tmp_path):
    out = tmp_path / "huge.onnx"
    t0 = time.monotonic()
    one_error_line(mc(["export", work["ckpt"], "-o", out, "--size", "32768"], tmp_path), 2,
                   "--size 32768x32768", "GB of memory")
    assert time.monotonic() - t0 < 60 and not out.exists()


# ---------------------------------------------------------------- 2. no command writes over its inputs


SPELLINGS = ("relative", "dot-slash", "symlink", "hard link")


def spell(p: Path, how: str, base: Path) -> Path:
    """Another name for the file p: relative to `base` (the command's working folder), ./-prefixed, a symlink or a
    hard link beside it."""
    if how == "relative":
        return Path(os.path.relpath(p, base))
    if how == "dot-slash":
        return Path("./" + os.path.relpath(p, base))
    alias = base / f"alias{SPELLINGS.index(how)}_{Path(p).name}"
    (alias.symlink_to if how == "symlink" else alias.hardlink_to)(p)
    return alias


def test_same_file_sees_through_every_spelling(tmp_path):
    from matteconv.fileio import refuse_overwrite, same_file

    f = tmp_path / "model.ckpt"
    f.write_bytes(b"x")
    (tmp_path / "other.ckpt").write_bytes(b"x")
    for how in SPELLINGS:
        alias = spell(f, how, tmp_path)
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            assert same_file(alias, f) and not same_file(alias, tmp_path / "other.ckpt"), how
            with pytest.raises(MatteconvError, match="would overwrite the input"):
                refuse_overwrite([alias], [f])
        finally:
            os.chdir(cwd)


@pytest.mark.slow
def test_no_command_writes_over_an_input(work, tmp_path):
    """export -o CKPT, matte -o IMAGE, verify --json MANIFEST, om with OUT.build.json = the AIPP config, golden
    make -o the images' folder, each with another spelling of the input's path: exit 2, the input unchanged."""
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    ckpt = shutil.copy(work["ckpt"], folder / "model.ckpt")
    photo = shutil.copy(work["photo"], folder / "photo.png")
    cfg = shutil.copy(work["aipp"], folder / "m.build.json")  # an AIPP config that OUT.build.json would replace
    onnx_model = shutil.copy(work["onnx"], folder / "m.onnx")
    golden = tmp_path / "golden"
    shutil.copytree(work["golden"], golden)
    manifest = golden / "manifest.json"
    before = {p: Path(p).read_bytes() for p in (ckpt, photo, cfg, manifest)}
    cases = [
        (["export", ckpt, "-o", spell(Path(ckpt), "hard link", tmp_path), "--size", SIZE], "would overwrite"),
        (["matte", photo, "--model", work["onnx"], "-o", spell(Path(photo), "symlink", tmp_path)], "would overwrite"),
        (["verify", "--golden", golden, "--ckpt", work["ckpt"], "--json", spell(manifest, "relative", tmp_path)],
         "would overwrite"),
        (["om", onnx_model, "--aipp", cfg, "-o", str(spell(Path(cfg), "dot-slash", tmp_path))[: -len(".build.json")]],
         "would overwrite"),
        (["golden", "make", "--ckpt", work["ckpt"], "--images", folder, "-o", spell(folder, "dot-slash", tmp_path),
          "--size", SIZE], "written over its input"),
    ]
    fakes.install("atc", tmp_path / "bin")
    for args, needle in cases:
        one_error_line(mc(args, tmp_path), 2, needle)
    for p, data in before.items():
        assert Path(p).read_bytes() == data, p
    assert leftovers(tmp_path, folder, tmp_path / "tmpdir") == []


# ---------------------------------------------------------------- 3. checkpoint dtypes


@pytest.mark.slow
def test_every_checkpoint_dtype_converts_exactly_or_is_refused(work, tmp_path):
    from matteconv.model.checkpoint import load_checkpoint

    sd = torch.load(work["ckpt"], weights_only=True)
    base = load_checkpoint(work["ckpt"]).model.state_dict()
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        path = tmp_path / f"{str(dtype)[6:]}.pt"
        torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}, path)
        ck = load_checkpoint(path)
        for k, v in ck.model.state_dict().items():
            assert v.dtype == base[k].dtype, k
            if v.is_floating_point():
                assert torch.equal(v, sd[f"module.{k}"].to(dtype).to(torch.float32)), (dtype, k)  # exact conversion
        assert ck.notes == []  # float32 values stored as float64 come back unchanged: nothing to note
    nudged = {k: (v.double() + 1e-12 if k.endswith("features.0.0.weight") else v) for k, v in sd.items()}
    torch.save(nudged, tmp_path / "f64.pt")
    notes = load_checkpoint(tmp_path / "f64.pt").notes
    assert len(notes) == 1 and "float64 weights rounded to float32" in notes[0]
    for dtype, kind in ((torch.int8, "integer"), (torch.complex64, "complex")):
        bad = dict(sd)
        bad["module.f_branch.conv_f.1.layers.0.weight"] = sd["module.f_branch.conv_f.1.layers.0.weight"].to(dtype)
        torch.save(bad, tmp_path / f"{kind}.pt")
        with pytest.raises(MatteconvError, match=f"f_branch.conv_f.1.layers.0.weight is .* \\({kind}\\)"):
            load_checkpoint(tmp_path / f"{kind}.pt")
    out = tmp_path / "bf16.onnx"
    r = mc(["export", tmp_path / "bfloat16.pt", "-o", out, "--size", SIZE, "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["max_abs_diff_vs_torch"] < 1e-3 and out.is_file()


# ---------------------------------------------------------------- 4. every way a command ends


HANGING_ATC = """#!/bin/bash
# a wrapper script, as real toolkits install: its child outlives it unless the whole group is ended
echo $$ > "$PIDS"
sleep 600 &
echo $! >> "$PIDS"
wait
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "timeout"])
def test_om_ends_the_tool_group_and_leaves_nothing(models, tmp_path, how):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "atc").write_text(HANGING_ATC)
    (bindir / "atc").chmod(0o755)
    pids = tmp_path / "pids"
    out = tmp_path / "out"
    out.mkdir()
    args = ["om", models["onnx"], "--aipp", models["aipp"], "-o", out / "m"]
    args += ["--timeout", 1] if how == "timeout" else []
    p = start(args, tmp_path, PIDS=str(pids))
    wait_for(lambda: pids.is_file() and len(pids.read_text().split()) == 2, what="the tool to start")
    tool_pids = [int(x) for x in pids.read_text().split()]
    if how != "timeout":
        p.send_signal(getattr(signal, how))
    _, err = p.communicate(timeout=60)
    if how == "timeout":
        assert p.returncode == 1 and "timed out after 1 s" in err, err
    else:
        assert p.returncode == 128 + getattr(signal, how), err
        assert f"interrupted ({how})" in err and "Traceback" not in err, err
    wait_for(lambda: not any(alive(pid) for pid in tool_pids), timeout=10, what="the tool's group to end")
    assert not (out / "m.om").exists() and not (out / "m.build.json").exists()
    assert leftovers(out, tmp_path / "tmpdir") == []


def test_om_writes_om_and_record_together(models, tmp_path):
    fakes.install("atc", tmp_path / "bin")
    r = mc(["om", models["onnx"], "--aipp", models["aipp"], "-o", tmp_path / "m"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith("m.")} == {"m.om", "m.build.json", "m.build.log"}
    record = json.loads((tmp_path / "m.build.json").read_text())
    from matteconv.fileio import sha256_file

    assert record["om"]["sha256"] == sha256_file(tmp_path / "m.om")
    assert leftovers(tmp_path, tmp_path / "tmpdir") == []


@pytest.mark.slow
def test_sigterm_during_matte_leaves_no_frames_folder(work, tmp_path):
    """A folder of frames through the checkpoint; SIGTERM once the hidden frames folder has frames in it."""
    import shutil

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(300):
        shutil.copy(work["photo"], frames / f"f{i:04d}.png")
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    p = start(["matte", frames, "--model", work["ckpt"], "--size", SIZE, "-o", out_parent / "result"], tmp_path)

    def frames_written():
        tmp = [d for d in out_parent.iterdir() if d.name.startswith(".result.")]
        return bool(tmp) and any(tmp[0].iterdir())

    wait_for(frames_written, what="the first frames")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert list(out_parent.iterdir()) == [] and leftovers(tmp_path / "tmpdir") == []


@pytest.mark.slow
def test_sigterm_during_caffe_export_leaves_neither_file_nor_worker(work, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    before = _caffe_workers()
    p = start(["export", work["ckpt"], "--to", "caffe", "-o", out / "m", "--size", SIZE], tmp_path)
    wait_for(lambda: _caffe_workers() - before, what="the pycaffe worker")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert list(out.iterdir()) == [] and leftovers(tmp_path / "tmpdir") == []
    wait_for(lambda: not (_caffe_workers() - before), timeout=10, what="the worker to end")


def _caffe_workers() -> set[int]:
    from matteconv.export.caffe.runner import WORKER

    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(WORKER).encode() in (d / "cmdline").read_bytes() and alive(int(d.name)):
                    found.add(int(d.name))
            except OSError:
                pass
    return found


def test_multi_file_outputs_land_together_or_not_at_all(tmp_path, monkeypatch):
    """If the second rename fails, the first target gets its old content back; nothing temporary stays."""
    from matteconv import fileio

    a, b = tmp_path / "m.prototxt", tmp_path / "m.caffemodel"
    a.write_text("old prototxt")
    calls = []
    real = fileio.publish

    def failing(tmp, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(tmp))
        real(tmp, target)

    monkeypatch.setattr(fileio, "publish", failing)
    with pytest.raises(MatteconvError, match=r"m.caffemodel: cannot write \(No space left on device\)"):
        with fileio.atomic_paths(a, b) as (ta, tb):
            ta.write_text("new prototxt")
            tb.write_bytes(b"new weights")
    assert a.read_text() == "old prototxt" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.prototxt"]


# ---------------------------------------------------------------- 5./6. messages and early checks


@pytest.mark.slow
def test_messages_name_the_users_file_and_the_real_problem(work, tmp_path):
    rnd = tmp_path / "random.ckpt"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 100, dtype=np.uint8).tobytes())
    png = tmp_path / "photo.ckpt"
    png.write_bytes(Path(work["photo"]).read_bytes())
    bad_var = tmp_path / "badvar.pt"
    sd = torch.load(work["ckpt"], weights_only=True)
    key = next(k for k in sd if k.endswith("running_var"))
    sd[key] = sd[key].clone()
    sd[key][0] = -1.0
    torch.save(sd, bad_var)
    binary = tmp_path / "model.prototxt"
    binary.write_bytes(b"\x0a\x05modnet\x12\x00\xff\xfe" * 10)
    rows = [
        (["export", rnd, "-o", tmp_path / "x.onnx", "--size", SIZE], [str(rnd), "not a PyTorch checkpoint"]),
        (["export", png, "-o", tmp_path / "x.onnx", "--size", SIZE], [str(png), "not a PyTorch checkpoint", "PNG"]),
        (["export", bad_var, "-o", tmp_path / "x.onnx", "--size", SIZE],
         [str(bad_var), "negative BatchNorm variance", "output NaN"]),
        (["inspect", binary], [str(binary), "not a Caffe prototxt", "binary"]),
    ]
    for args, needles in rows:
        line = one_error_line(mc(args, tmp_path), 2, *needles)
        assert "unpickling needs code" not in line and ".tmp" not in line
    assert not (tmp_path / "x.onnx").exists() and leftovers(tmp_path, tmp_path / "tmpdir") == []


@pytest.mark.slow
def test_bad_input_is_found_before_the_work(work, tmp_path):
    """Output folders, an output that is a folder, an AIPP config that does not parse, a model of the wrong size:
    exit 2 in seconds, before any export or stage runs."""
    bad_cfg = tmp_path / "bad.cfg"
    bad_cfg.write_text("aipp_op { input_format : NOPE }\n")
    (tmp_path / "taken").mkdir()
    big = conv_model(tmp_path / "big.onnx", hw=2 * SIZE)
    rows = [
        (["export", work["ckpt"], "-o", tmp_path / "missing" / "m.onnx", "--size", SIZE], ["output folder", "missing"]),
        (["export", work["ckpt"], "-o", tmp_path / "taken", "--size", SIZE], ["taken", "is a folder"]),
        (["export", work["ckpt"], "--to", "caffe", "-o", tmp_path / "missing" / "m", "--size", SIZE], ["missing"]),
        (["verify", "--golden", work["golden"], "--ckpt", work["ckpt"], "--onnx", work["onnx"], "--aipp", bad_cfg],
         [str(bad_cfg)]),
        (["verify", "--golden", work["golden"], "--ckpt", work["ckpt"], "--json", tmp_path / "missing" / "r.json"],
         ["r.json", "output folder"]),
        (["verify", "--golden", work["golden"], "--ckpt", work["ckpt"], "--onnx", big], [str(big), "128x128"]),
    ]
    for args, needles in rows:
        t0 = time.monotonic()
        r = mc(args, tmp_path)
        one_error_line(r, 2, *needles)
        assert "verify " not in r.stdout, r.stdout  # no verify table: no stage ran
        assert time.monotonic() - t0 < 90
    assert leftovers(tmp_path, tmp_path / "tmpdir") == []


# ---------------------------------------------------------------- 7. every command is in the class

# One bad input per command (a file that does not exist, or a folder where a file is expected): exit 2, one line.
BAD_INPUT = {
    "export": ["export", "{missing}", "-o", "{tmp}/x.onnx"],
    "inspect": ["inspect", "{missing}"],
    "aipp": ["aipp", "--size", "384", "-o", "{tmp}/no/such/folder/a.cfg"],
    "om": ["om", "{missing}", "-o", "{tmp}/m"],
    "golden": ["golden", "make", "--ckpt", "{missing}", "-o", "{tmp}/g"],
    "verify": ["verify", "--golden", "{missing}"],
    "compare": ["compare", "{missing}", "{missing}.onnx"],
    "matte": ["matte", "{missing}", "--model", "{missing}", "-o", "{tmp}/o.png"],
    "doctor": None,  # reads nothing from the user
    # commands from other branches (rows take effect where the command is registered)
    "deploy": ["deploy", "{missing}", "-o", "{tmp}/app"],
    "train": ["train", "-o", "{tmp}/t.pt", "--size", "500"],
    "rules": ["rules", "--compiler", "no-such-compiler"],
    "quantize": ["quantize", "{missing}.onnx", "--golden", "{missing}", "-o", "{tmp}/q"],
    "import": ["import", "{missing}.onnx", "-o", "{tmp}/m.safetensors"],
    "profile": ["profile", "{missing}.onnx"],
}


def _commands() -> set[str]:
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups}


def test_every_command_has_a_bad_input_row():
    missing = _commands() - set(BAD_INPUT)
    assert not missing, f"add a row to BAD_INPUT for {sorted(missing)}: every command is held to the class"


@pytest.mark.slow
def test_every_command_turns_bad_input_into_one_line_and_exit_2(tmp_path):
    for name in sorted(_commands()):
        row = BAD_INPUT.get(name)
        if row is None:
            continue
        args = [a.format(missing=tmp_path / "does-not-exist.pt", tmp=tmp_path) for a in row]
        one_error_line(mc(args, tmp_path), 2)
    assert leftovers(tmp_path, tmp_path / "tmpdir") == []


# ---------------------------------------------------------------- 8. late checks moved early (issue 16)


def test_corrupt_golden_alpha_is_one_line_without_unsafe_advice(work, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from matteconv.verify.golden import load_golden

    golden = tmp_path / "golden"
    shutil.copytree(work["golden"], golden)
    alpha = next((golden / "alphas").glob("*.npz"))
    alpha.write_bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(MatteconvError) as e:
        load_golden(golden)
    msg = str(e.value)
    assert msg.startswith(f"{alpha}: not a valid .npz (starts with ") and "allow_pickle" not in msg
    r = CliRunner().invoke(app, ["verify", "--golden", str(golden), "--ckpt", str(work["ckpt"])])
    assert r.exit_code == 2 and f"{alpha.name}: not a valid .npz" in r.output and "allow_pickle" not in r.output
    assert "verify " not in r.stdout  # refused before any stage
    np.savez(alpha, alpha=np.array([object()], dtype=object))  # a pickled object array inside a real zip
    with pytest.raises(MatteconvError, match=r"not a valid .npz \(it holds Python objects, not numbers\)"):
        load_golden(golden)


def test_deploy_checks_every_combination_before_writing(tmp_path):
    from typer.testing import CliRunner

    om = tmp_path / "m.om"
    om.write_bytes(b"FAKE-OM")
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"not read: refused before")
    app_dir = tmp_path / "app_dir"
    app_dir.mkdir()
    rows = [
        (["--simulate", clip, "-o", tmp_path / "out.mp4"], "--simulate with MODEL.om needs --sim-output"),
        (["-o", tmp_path / "out.mp4"], "out.mp4: -o is the app folder to write; a name ending in .mp4 looks like"),
        (["-o", tmp_path / "app", "--sim-output", tmp_path / "o.avi"], "--sim-output needs --simulate INPUT"),
        (["-o", tmp_path / "app", "--simulate", tmp_path / "none.mp4", "--sim-output", tmp_path / "o.avi"],
         "none.mp4: input not found"),
        (["-o", tmp_path / "app", "--simulate", clip, "--sim-output", tmp_path / "no" / "o.avi"], "output folder"),
        (["-o", tmp_path / "app", "--simulate", clip, "--sim-output", clip], "in.mp4: output exists"),
        (["-o", tmp_path / "app", "--simulate", clip, "--sim-output", tmp_path / "app"], "cannot be the app folder"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for extra, needle in rows:
        r = CliRunner().invoke(app, ["deploy", str(om), *map(str, extra)])
        assert r.exit_code == 2 and needle in r.output, (extra, r.output)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, extra  # nothing written
    r = CliRunner().invoke(app, ["deploy", str(app_dir), "--simulate", str(clip), "-o", str(tmp_path / "o.avi"),
                                 "--sim-output", str(tmp_path / "x.avi")])
    assert r.exit_code == 2 and "--sim-output is for MODEL.om" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
