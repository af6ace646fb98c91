"""The one loader: every layout users have loads; every bad file gets a one-line error naming file and cause."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from matteconv.errors import MatteconvError
from matteconv.model.checkpoint import load_checkpoint, official_state_dict
from matteconv.model.checkpoint import weights_sha256

REFERENCE_TSV = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "reference" / "modnet_state_dict.tsv"


def test_state_dict_layout_matches_official_key_list(ref3_model):
    """All 751 tensors of the official checkpoint, same names and shapes (module. prefix, backbone twice)."""
    sd = official_state_dict(ref3_model)
    assert len(sd) == 751
    if REFERENCE_TSV.exists():
        rows = [line.split("\t") for line in REFERENCE_TSV.read_text().splitlines()[1:]]
        want = {k: s for k, s, _ in rows}
        got = {k: "x".join(map(str, v.shape)) or "scalar" for k, v in sd.items()}
        assert got == want
    assert sum(p.numel() for p in ref3_model.parameters()) == 6_487_075


# tier 1 loads the official layout and safetensors; the other layouts run in tier 2 (issue 38)
@pytest.mark.parametrize("variant", ["official", *(pytest.param(v, marks=pytest.mark.slow) for v in
                                                   ("bare", "wrapped", "dedup", "no_nbt")), "safetensors"])
def test_layouts_load_to_same_weights(variant, ref3_model, tmp_path):
    sd = official_state_dict(ref3_model)
    if variant == "bare":
        sd = {k[len("module."):]: v for k, v in sd.items()}
    elif variant == "wrapped":
        sd = {"state_dict": sd, "epoch": 3}
    elif variant == "dedup":
        sd = {k: v for k, v in sd.items() if ".lr_branch.backbone." not in k}
    elif variant == "no_nbt":
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / ("m.safetensors" if variant == "safetensors" else "m.pth")
    if variant == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    ck = load_checkpoint(path)
    assert ck.in_channels == 3
    assert ck.weights_sha256 == weights_sha256(ref3_model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        # bitwise: the same module code on the same weights and input, in one process with the same thread count,
        # runs the same kernels; any difference would be a weight that did not load exactly
        assert torch.equal(ck.model(x), ref3_model(x))


def test_four_channels_inferred(ref4_ckpt):
    ck = load_checkpoint(ref4_ckpt)
    assert ck.in_channels == 4
    assert ck.model.hr_branch.conv_enc2x.layers[0].weight.shape[1] == 32 + 4


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


class EvilSystem:
    """A global whose whole module torch blocks: torch words that refusal differently (several paragraphs)."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def _bad_files(tmp_path, ref3_model):
    sd = official_state_dict(ref3_model)
    good = tmp_path / "good.pt"
    torch.save(sd, good)
    files = {}
    files["not found"] = (tmp_path / "missing.pt", "not found")
    (tmp_path / "text.pt").write_text("hello, I am not a checkpoint\n")
    files["text"] = (tmp_path / "text.pt", "not a PyTorch checkpoint")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    files["truncated"] = (tmp_path / "trunc.pt", "truncated or corrupt")
    torch.save({"w": torch.zeros(1), "evil": Evil()}, tmp_path / "evil.pt")
    files["code"] = (tmp_path / "evil.pt", "refused: unpickling needs code")
    torch.save({"w": torch.zeros(1), "evil": EvilSystem()}, tmp_path / "evil_system.pt")
    files["code, blocked module"] = (tmp_path / "evil_system.pt", "refused: unpickling needs code (posix.system)")
    wrong = {k.replace("hr_branch", "hr_head"): v for k, v in sd.items()}
    torch.save(wrong, tmp_path / "arch.pt")
    files["architecture"] = (tmp_path / "arch.pt", "not a MODNet checkpoint")
    shape = dict(sd)
    shape["module.f_branch.conv_f.1.layers.0.weight"] = torch.zeros(2, 16, 1, 1)
    torch.save(shape, tmp_path / "shape.pt")
    files["shape"] = (tmp_path / "shape.pt", "shape mismatch at f_branch.conv_f.1.layers.0.weight: got (2, 16, 1, 1), expected (1, 16, 1, 1)")
    nan = dict(sd)
    nan["module.f_branch.conv_f.1.layers.0.bias"] = torch.tensor([float("nan")])
    torch.save(nan, tmp_path / "nan.pt")
    files["nan"] = (tmp_path / "nan.pt", "NaN/Inf value(s) in module.f_branch.conv_f.1.layers.0.bias")  # the key as the file spells it
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    files["not a dict"] = (tmp_path / "list.pt", "not a checkpoint")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    files["safetensors"] = (tmp_path / "bad.safetensors", "not a readable safetensors file")
    return files


def test_bad_checkpoints_get_one_line_errors(tmp_path, ref3_model):
    for label, (path, needle) in _bad_files(tmp_path, ref3_model).items():
        with pytest.raises(MatteconvError) as e:
            load_checkpoint(path)
        msg = str(e.value)
        assert needle in msg, (label, msg)
        assert str(path) in msg and "\n" not in msg, (label, msg)


def test_code_in_checkpoint_is_never_run(tmp_path, capfd):
    torch.save({"evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(MatteconvError):
        load_checkpoint(tmp_path / "evil.pt")
    assert "pwned" not in capfd.readouterr().out


@pytest.mark.slow
def test_cli_bad_input_no_traceback_no_output(tmp_path, ref3_model):
    """Through the real CLI: exit 2, one line on stderr naming the file, no output file."""
    for label, (path, needle) in _bad_files(tmp_path, ref3_model).items():
        out = tmp_path / f"out_{label.replace(' ', '_')}.onnx"
        proc = subprocess.run([sys.executable, "-m", "matteconv.cli", "export", str(path), "--to", "onnx",
                               "-o", str(out)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (label, proc.stderr)
        assert "Traceback" not in proc.stderr and needle.split(":")[0] in proc.stderr, (label, proc.stderr)
        assert not out.exists()
        assert not list(tmp_path.glob(f".{out.name}*"))


def _differing_copies(ref3_model, tmp_path):
    """The official layout with one lr_branch.backbone tensor changed (a hand-merged checkpoint)."""
    sd = official_state_dict(ref3_model)
    key = "module.lr_branch.backbone.model.features.1.conv.0.weight"
    sd[key] = sd[key] + 0.25
    path = tmp_path / "two_backbones.ckpt"
    torch.save(sd, path)
    return path, sd[key]


def test_differing_backbone_copies_refused_unless_one_is_picked(ref3_model, tmp_path):
    from matteconv.model.checkpoint import backbone_copy_choice

    path, lr_value = _differing_copies(ref3_model, tmp_path)
    with pytest.raises(MatteconvError, match=r"two_backbones.ckpt: the two copies of the shared backbone differ in "
                                             r"1 of \d+ tensors, first at module.backbone.model.features.1.conv.0"
                                             r".weight vs module.lr_branch.backbone.*max \|difference\| 0.25.*"
                                             r"--backbone-copy lr_branch"):
        load_checkpoint(path)
    with backbone_copy_choice("lr_branch"):
        lr = load_checkpoint(path)
    with backbone_copy_choice("backbone"):
        bb = load_checkpoint(path)
    w_lr = lr.model.backbone.model.features[1].conv[0].weight
    w_bb = bb.model.backbone.model.features[1].conv[0].weight
    assert torch.equal(w_lr, lr_value) and torch.equal(w_bb, ref3_model.backbone.model.features[1].conv[0].weight)
    assert "using the lr_branch copy" in lr.notes[0]
    # what the official code does with this file: torch's load_state_dict leaves the lr_branch copy in place
    official = type(ref3_model)(in_channels=3)
    official.load_state_dict({k[len("module."):]: v for k, v in torch.load(path, weights_only=True).items()})
    assert torch.equal(official.backbone.model.features[1].conv[0].weight, w_lr)
    with pytest.raises(MatteconvError, match="expected one of backbone, lr_branch"):
        with backbone_copy_choice("lr"):
            pass


def test_backbone_copy_option_on_the_cli(ref3_model, tmp_path):
    from typer.testing import CliRunner

    from matteconv.cli import app

    path, _ = _differing_copies(ref3_model, tmp_path)
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(app, ["export", str(path), "-o", str(out), "--size", "64"])
    assert r.exit_code == 2 and "backbone copies" not in r.output and "--backbone-copy lr_branch" in r.output
    assert not out.exists()
    for cmd in ("export", "verify", "compare", "matte", "om", "train"):
        assert "--backbone-copy" in CliRunner().invoke(app, [cmd, "--help"]).output, cmd
    assert "--backbone-copy" in CliRunner().invoke(app, ["golden", "make", "--help"]).output
