"""atc's and omg's Caffe layer tables (ascend/caffe_oplist.py) and `matteconv inspect --target ascend|ddk` on
them: the compiler's parser decides, not the smaller set our exporter writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matteconv.ascend import caffe_oplist as cl
from matteconv.cli import app
from matteconv.export.caffe.targets import TARGETS

runner = CliRunner()
EXTERNAL = Path(__file__).resolve().parent / "external" / "caffe"


def test_every_row_has_a_verdict_and_a_source():
    for compiler, rows in cl.TABLES.items():
        assert len({r.type for r in rows}) == len(rows), compiler  # one row per type string
        for r in rows:
            assert r.verdict in (cl.TAKES, cl.DROPS, cl.REFUSES) and r.source, r
            assert (r.verdict == cl.REFUSES) == (r.op == "") and (r.verdict != cl.REFUSES or r.note), r


def test_atc_table_holds_cann_s_page_and_the_parser():
    # a sample of the CANN 8.0 page's entries, under the names prototxts write
    for t in ("Interp", "Normalize", "Permute", "PriorBox", "Flatten", "Proposal", "ROIPooling", "PSROIPooling",
              "Upsample", "Yolo", "YoloV3DetectionOutput", "SSDDetectionOutput", "FSRDetectionOutput", "ReLU6",
              "ConvolutionDepthwise", "DepthwiseConvolution", "ShuffleChannel", "BNLL", "SPP", "LSTM"):
        assert cl.lookup("atc-caffe", t).source.startswith(cl.CANN80), t
    assert cl.lookup("atc-caffe", "Reorg").op == "PassThrough"  # the page's PassThrough is the Reorg layer
    assert cl.lookup("atc-caffe", "Dropout").verdict == cl.DROPS and "dropout_pass.cc" in cl.lookup(
        "atc-caffe", "Dropout").source
    assert cl.takes("atc-caffe", "Input") and cl.takes("atc-caffe", "DummyData")
    for t, code in (("DetectionOutput", "E11008"), ("Silence", "E11009"), ("Python", "E11031"), ("BN", "E11009"),
                    ("Swish", "E11009")):
        message, source = cl.refusal("atc-caffe", t)
        assert code in message and source, t
    assert "Yolo" in cl.refusal("atc-caffe", "Region")[0]
    assert "did you mean 'Scale'" in cl.refusal("atc-caffe", "scale")[0]


def test_fork_layers_are_refused_naming_the_fork_on_both_compilers():
    for compiler in cl.TABLES:
        message, source = cl.refusal(compiler, "BN")
        assert "SegNet" in message and "ENet" in message and "BatchNorm" in message, compiler
        assert "caffe-segnet" in source and "caffe-enet" in source
        assert "Python layer" in cl.refusal(compiler, "Python")[0]
    assert "omg accepts only listed operators" in cl.refusal("omg", "BN")[0]


def test_what_we_export_is_what_the_compilers_take():
    """The export sets stay the smaller, verified ones, and each is inside its compiler's table."""
    assert all(cl.takes("atc-caffe", t) for t in TARGETS["ascend"].layers)
    assert all(cl.takes("omg", t) for t in TARGETS["ddk"].layers)
    assert not TARGETS["ascend"].accepts("Dropout") and cl.takes("atc-caffe", "Dropout")


TINY = ('layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 3 dim: 8 dim: 8 }} }} }}\n'
        'layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        'convolution_param {{ num_output: 4 kernel_size: 3 }} }}\n'
        'layer {{ name: "drop" type: "Dropout" bottom: "conv" top: "conv" }}\n{extra}')


def test_inspect_ascend_takes_dropout_and_refuses_silence(tmp_path):
    ok = tmp_path / "drop.prototxt"
    ok.write_text(TINY.format(extra=""))
    r = runner.invoke(app, ["inspect", str(ok), "--target", "ascend", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["unsupported"] == []
    bad = tmp_path / "silence.prototxt"
    bad.write_text(TINY.format(extra='layer { name: "sil" type: "Silence" bottom: "conv" }\n'))
    r = runner.invoke(app, ["inspect", str(bad), "--target", "ascend", "--json"])
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["unsupported"] == [["sil", "Silence"]]
    (v,) = out["rules"]["violations"]
    assert v["rule"] == "caffe.layer-type" and "E11009" in v["message"] and "caffe_parser.cc" in v["source"]
    r = runner.invoke(app, ["inspect", str(bad), "--input-shape", "data:1,3,8,8"])
    assert r.exit_code == 2 and "--input-shape is for ONNX models here" in r.output


@pytest.mark.slow
@pytest.mark.parametrize("name, code, refused", [
    ("samples_faster_rcnn.prototxt", 0, []),  # Huawei's own sample: atc --framework=0 compiles it
    ("ssdlite_mobilenetv2_voc_deploy.prototxt", 1, ["DetectionOutput", "Silence"]),
])
def test_inspect_public_prototxts(name, code, refused):
    """The whole CLI (pycaffe's shapes, which our fork cannot give for these) on two corpus files."""
    r = runner.invoke(app, ["inspect", str(EXTERNAL / name), "--target", "ascend", "--json"])
    assert r.exit_code == code, r.output
    out = json.loads(r.output)
    assert sorted({t for _, t in out["unsupported"]}) == refused
    assert sorted({v["type"] for v in out["rules"]["violations"] if v["severity"] == "error"}) == refused
