"""`matteconv inspect` and `unsupported_layers`: what a prototxt holds and whether a target accepts it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from matteconv.cli import app
from matteconv.export.caffe import TARGETS, unsupported_layers
from matteconv.export.caffe.convert import convert
from matteconv.export.caffe.writer import write_caffemodel, write_prototxt

import caffe  # noqa: E402,F401  (real pycaffe is required: make install builds it; no skip)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU6()

    def forward(self, x):
        return torch.sigmoid(self.act(self.conv(x)))


def export_tiny(tmp_path, target: str):
    net = convert(Tiny().eval(), {"x": (1, 3, 16, 16)}, target)
    proto = tmp_path / f"tiny_{target}.prototxt"
    write_prototxt(proto, net, ["tiny"])
    write_caffemodel(proto.with_suffix(".caffemodel"), net)
    return proto


def test_inspect_reports_layers_params_shapes(tmp_path):
    proto = export_tiny(tmp_path, "bvlc")
    result = CliRunner().invoke(app, ["inspect", str(proto), "--target", "bvlc", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["counts"] == {"Convolution": 1, "Eltwise": 1, "Input": 1, "Power": 1, "ReLU": 2, "Sigmoid": 1}
    assert s["num_params"] == 4 * 3 * 9 + 4
    assert s["inputs"] == {"input": [1, 3, 16, 16]} and s["outputs"] == {"alpha": [1, 4, 16, 16]}
    assert s["unsupported"] == []


def test_inspect_exits_nonzero_on_layers_outside_the_target(tmp_path):
    proto = export_tiny(tmp_path, "ascend")  # uses ReLU6, which BVLC Caffe does not have
    assert unsupported_layers(proto, "bvlc") == [("act", "ReLU6")]
    assert unsupported_layers(proto, "ascend") == []
    result = CliRunner().invoke(app, ["inspect", str(proto), "--target", "bvlc"])
    assert result.exit_code == 1
    assert "act (ReLU6)" in result.output and "not accepted by target 'bvlc'" in result.output


def test_inspect_a_net_caffe_cannot_load(tmp_path):
    proto = tmp_path / "interp.prototxt"
    proto.write_text('layer { name: "input" type: "Input" top: "input" input_param { shape { dim: 1 dim: 3 '
                     'dim: 8 dim: 8 } } }\nlayer { name: "up" type: "Interp" bottom: "input" top: "up" }\n'
                     'layer { name: "act" type: "Swish" bottom: "up" top: "act" }\n')
    result = CliRunner().invoke(app, ["inspect", str(proto), "--target", "ascend", "--json"])
    assert result.exit_code == 1
    s = json.loads(result.output)
    assert s["unsupported"] == [["act", "Swish"]]  # Interp is on CANN's list: atc takes it, our pycaffe does not
    assert "Unknown layer type: Interp" in s["caffe_error"] and s["num_params"] is None


def test_inspect_missing_file_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "nope.prototxt")])
    assert result.exit_code == 2 and "prototxt not found" in result.output


def test_target_tables_only_hold_layers_our_pycaffe_runs():
    code = "import caffe; print(' '.join(caffe.layer_type_list()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"GLOG_minloglevel": "2", "PATH": ""}).stdout.split()
    for target in TARGETS.values():
        assert target.layers <= set(out), (target.name, target.layers - set(out))
    assert "ReLU6" not in TARGETS["bvlc"].layers and "ReLU6" in TARGETS["ascend"].layers
    # a user's file is checked against the tool's whole list; exports use only what our pycaffe verifies
    assert TARGETS["ascend"].takes("ROIPooling") and not TARGETS["ascend"].accepts("ROIPooling")
    assert TARGETS["ddk"].takes("Softmax") and not TARGETS["ddk"].accepts("Softmax")
    # atc's parser registers Dropout and a graph pass deletes it (Ascend/parser caffe_parser.cc); Silence: E11009
    assert TARGETS["ascend"].takes("Dropout") and TARGETS["ddk"].takes("Dropout")
    assert not TARGETS["ascend"].takes("Silence") and not TARGETS["ascend"].takes("DetectionOutput")
    for target in TARGETS.values():
        assert all(target.takes(t) for t in target.layers), target.name


def test_inspect_against_the_ddk_layer_set(tmp_path):
    """ddk (old DDK omg): no ReLU6, MVN or Reduction; its own export passes, an ascend export does not."""
    assert not {"ReLU6", "MVN", "Reduction"} & TARGETS["ddk"].layers
    assert {"Convolution", "Deconvolution", "Power", "Scale", "Eltwise", "Pooling", "ReLU", "Concat",
            "InnerProduct", "Sigmoid", "BatchNorm", "Input"} <= TARGETS["ddk"].layers
    assert unsupported_layers(export_tiny(tmp_path, "ascend"), "ddk") == [("act", "ReLU6")]
    result = CliRunner().invoke(app, ["inspect", str(export_tiny(tmp_path, "ddk")), "--target", "ddk", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["target"] == "ddk" and s["unsupported"] == []
    assert s["counts"] == {"Convolution": 1, "Eltwise": 1, "Input": 1, "Power": 1, "ReLU": 2, "Sigmoid": 1}


V1 = Path(__file__).resolve().parent / "external" / "caffe" / "lenet_v1.prototxt"


def test_zero_layers_is_an_error_not_accepted(tmp_path):
    from typer.testing import CliRunner

    from matteconv.cli import app

    empty = tmp_path / "empty.prototxt"
    empty.write_text('name: "x"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n')
    for target in ("bvlc", "ascend", "ddk"):
        r = CliRunner().invoke(app, ["inspect", str(empty), "--target", target])
        assert r.exit_code == 2 and "empty.prototxt: no layers" in r.output and "accepted" not in r.output


@pytest.mark.slow
def test_v1_prototxt_is_upgraded_checked_and_refused_for_omg(tmp_path):
    import json

    from typer.testing import CliRunner

    from matteconv.cli import app

    up = tmp_path / "lenet_v2.prototxt"
    r = CliRunner().invoke(app, ["inspect", str(V1), "--target", "ddk", "--upgrade", str(up), "--json"])
    assert r.exit_code == 1, r.output  # omg refuses V1 layers
    rep = json.loads(r.stdout)
    assert rep["format"] == "V1" and len(rep["layers"]) == 6 and "upgrade_net_proto_text" in rep["refusals"][0]
    assert "caffe.v1-format" in {v["rule"] for v in rep["rules"]["violations"] if v["severity"] == "error"}
    r = CliRunner().invoke(app, ["inspect", str(up), "--json"])  # what the upgrade wrote is the current format
    rep2 = json.loads(r.stdout)
    assert r.exit_code == 0 and rep2["format"] == "V2" and [la["type"] for la in rep2["layers"]] == \
        [la["type"] for la in rep["layers"]] and rep2["num_params"] == rep["num_params"] == 5874
    r = CliRunner().invoke(app, ["inspect", str(V1)])
    assert r.exit_code == 0 and "V1 prototxt" in r.output and "all 6 layers accepted by target 'bvlc'" in r.output


def test_test_net_filter_and_non_utf8_text(tmp_path):
    """Caffe's FilterNet for pycaffe's TEST net (phase, levels, stages), and a prototxt whose comments are not
    UTF-8 (GBK is common in Chinese model zoos): Caffe's C++ parser reads bytes, so it loads."""
    from matteconv.export.caffe.upgrade import read_net

    proto = tmp_path / "phases.prototxt"
    text = ('# 输入层\nlayer { name: "input" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 '
            'dim: 4 } } }\n'
            'layer { name: "train_only" type: "Data" top: "d" include { phase: TRAIN } }\n'
            'layer { name: "staged" type: "Dropout" bottom: "x" top: "x" include { stage: "sample" } }\n'
            'layer { name: "not_test" type: "ReLU" bottom: "x" top: "x" exclude { phase: TEST } }\n'
            'layer { name: "leveled" type: "ReLU" bottom: "x" top: "x" include { min_level: 1 } }\n'
            'layer { name: "kept" type: "ReLU" bottom: "x" top: "x" include { phase: TEST not_stage: "s" } }\n'
            'layer { name: "sig" type: "Sigmoid" bottom: "x" top: "y" exclude { phase: TRAIN } }\n')
    proto.write_bytes(text.encode("gbk"))
    nt = read_net(proto)
    assert [la.name for la in nt.test_layers] == ["input", "kept", "sig"]
    assert [la.name for la in nt.excluded] == ["train_only", "staged", "not_test", "leveled"]
    result = CliRunner().invoke(app, ["inspect", str(proto), "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert [la["name"] for la in s["layers"]] == ["input", "kept", "sig"] and s["outputs"] == {"y": [1, 1, 4, 4]}


def test_rich_markup_in_names_is_printed_as_written(tmp_path):
    proto = tmp_path / "net[v2].prototxt"
    proto.write_text('layer { name: "Net/Sequential[features]/Conv2d[0]" type: "Input" top: "x" input_param { '
                     'shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }\n')
    result = CliRunner().invoke(app, ["inspect", str(proto), "--layers"])
    assert result.exit_code == 0, result.output
    assert "net[v2].prototxt" in result.output and "Net/Sequential[features]/Conv2d[0]" in result.output


def test_bvlc_refuses_what_pycaffe_cannot_build_but_not_missing_data(tmp_path):
    """Every layer type accepted is not enough for bvlc when BVLC Caffe itself cannot build the net; a net that
    only lacks its training data (a Data layer's LMDB) is not refused for that."""
    head = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }\n'
    broken = tmp_path / "broken.prototxt"
    broken.write_text(head + 'layer { name: "r" type: "ReLU" bottom: "nowhere" top: "y" }\n')
    result = CliRunner().invoke(app, ["inspect", str(broken), "--json"])
    assert result.exit_code == 1
    s = json.loads(result.output)
    assert s["unsupported"] == [] and "pycaffe cannot build this net" in s["refusals"][0]
    assert "nowhere" in s["refusals"][0]
    data = tmp_path / "data.prototxt"
    data.write_text('layer { name: "d" type: "Data" top: "x" data_param { source: "no_such_lmdb" batch_size: 1 '
                    'backend: LMDB } }\nlayer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n')
    result = CliRunner().invoke(app, ["inspect", str(data), "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["refusals"] == [] and "reads a data source at load: d" in s["caffe_error"]


def test_inspect_empty_onnx_and_folders_are_refused(tmp_path):
    """protobuf reads a 0-byte file as an empty ONNX model: 0 nodes must not be reported as checked."""
    empty = tmp_path / "e.onnx"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["inspect", str(empty), "--json"])
    assert result.exit_code == 2 and "e.onnx: no nodes in the graph (an empty file)" in result.output
    folder = tmp_path / "d.onnx"
    folder.mkdir()
    result = CliRunner().invoke(app, ["inspect", str(folder)])
    assert result.exit_code == 2 and "is a folder, not an ONNX model" in result.output
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder, not a prototxt" in result.output
