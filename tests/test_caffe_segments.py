"""export/caffe/segments.py: the export's parity check runs the written net one segment at a time (issue 20: the
whole 512x512 Net peaked at 4.8 GB in pycaffe) and must give the whole Net's numbers."""
from __future__ import annotations

import numpy as np
import pytest

from matteconv.export.caffe import segments
from matteconv.export.caffe.export import export_caffe, probe_input
from matteconv.export.caffe.runner import CaffeBackend, CaffeWorker
from matteconv.export.caffe.writer import read_prototxt
from matteconv.model.checkpoint import load_checkpoint

SIZE = (64, 96)


@pytest.fixture(scope="module")
def exported(ref3_ckpt, tmp_path_factory):
    d = tmp_path_factory.mktemp("segments")
    return {t: export_caffe(load_checkpoint(ref3_ckpt), d / t, t, SIZE) for t in ("bvlc",)}


def test_segments_give_the_whole_nets_numbers(exported, monkeypatch):
    """A tiny budget cuts the net into many Nets (each layer's bottoms from earlier ones, in-place layers included).
    Each layer runs the same kernel on the same bottom values as in the whole Net, so the matte is the same: measured
    bitwise; the bound allows 2 float32 ulps of 1 in case a BLAS picks another blocking for another buffer address."""
    res = exported["bvlc"]
    x = probe_input(3, SIZE)
    with CaffeBackend(res.prototxt) as whole:
        want = whole.run(x)
    loads = []
    real_run = CaffeWorker.run_part
    monkeypatch.setattr(CaffeWorker, "run_part", lambda self, *a: loads.append(a) or real_run(self, *a))
    (got,) = segments.run_in_segments(res.prototxt, res.caffemodel, {"input": x}, 1 << 21).values()
    assert len(loads) > 20  # really in segments (53 here; Caffe's own Split layers do not send it down the whole path)
    assert got.shape == want.shape and np.abs(got - want).max() <= 2 * np.spacing(np.float32(1))


def test_plan_keeps_only_what_later_layers_read(exported):
    res = exported["bvlc"]
    proto = read_prototxt(res.prototxt)
    worker = CaffeWorker(res.prototxt, res.caffemodel)
    try:
        shapes, outputs = worker.info["shapes"], worker.info["outputs"]
    finally:
        worker.close()
    plan = segments.plan_segments(proto, shapes, outputs, 1 << 16)
    assert sorted(i for s in plan for i in s.layers) == [i for i, la in enumerate(proto.layer) if la.type != "Input"]
    assert plan[0].feeds == ["input"] and plan[-1].keep == outputs
    for k, seg in enumerate(plan):
        later = {b for s in plan[k + 1:] for b in s.feeds} | set(outputs)
        assert set(seg.needed) == later and set(seg.keep) <= later
        assert sum(segments.layer_bytes(proto.layer[i], shapes) for i in seg.layers) <= 1 << 16 or len(seg.layers) == 1
    # a 3x3 convolution's estimate counts its im2col buffer: C_in x 9 x output pixels, 4 bytes each
    conv = next(la for la in proto.layer if la.type == "Convolution" and la.convolution_param.kernel_h == 3
                and la.convolution_param.stride_h == 1 and la.convolution_param.group <= 1)
    top, bottom = shapes[conv.top[0]], shapes[conv.bottom[0]]
    assert segments.layer_bytes(conv, shapes) == 4 * (np.prod(top) + bottom[1] * 9 * top[2] * top[3])


def test_a_layer_reading_one_blob_many_times_gets_one_feed(exported):
    """bvlc's border map is a Concat of the same one-channel blob C times; cut so that it starts a segment, the
    segment must declare that blob once (twice, Caffe aborts: "Top blob ... produced by multiple sources")."""
    res = exported["bvlc"]
    proto = read_prototxt(res.prototxt)
    repeated = [i for i, la in enumerate(proto.layer) if len(set(la.bottom)) < len(la.bottom)]
    assert repeated
    worker = CaffeWorker(res.prototxt, res.caffemodel)
    try:
        shapes, outputs = worker.info["shapes"], worker.info["outputs"]
    finally:
        worker.close()
    plan = segments.plan_segments(proto, shapes, outputs, 1)  # every layer a segment of its own
    for seg in plan:
        assert len(seg.feeds) == len(set(seg.feeds))
    seg = next(s for s in plan if s.layers == [repeated[0]])
    assert seg.feeds == [proto.layer[repeated[0]].bottom[0]]
