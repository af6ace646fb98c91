"""Run a written Caffe export in pycaffe one segment at a time, so the parity check fits in memory.

BVLC Caffe keeps every blob of a Net and, per Convolution/Deconvolution layer, its own im2col buffer, never shared:
the 512x512 MODNet export peaked at 4.8 GB in one Net (3.5 GB of im2col buffers), 704x1280 at 15 GB, and 1088x1920
would have needed about 35 GB (in segments of 384 MB, the budget then: 0.76, 1.6 and 3.6 GB, measured). Blobs and
buffers are allocated on first use, so a Net whose forward never ran costs little. Here the prototxt as written is
cut into consecutive runs of layers whose estimated memory stays under a budget; each run becomes a Net of its own
(the layers copied verbatim, an `Input` layer for every blob it reads from an earlier run, the weights copied by
layer name from the whole Net loaded from the written caffemodel, which is never run), is run and dropped, and only
the blobs later layers read are kept, in the worker. The numbers are those of the whole Net: every layer computes
from the same bottom values with the same kernels; only where memory lives changes.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import MatteconvError
from ...heap import KEEP_FREED_ENV
from .runner import CaffeWorker
from .writer import spatial_pair

SEGMENT_BYTES = 256 * 2**20  # estimated memory of one run of layers (a single larger layer runs alone). Measured at
# 512 (bvlc, Intel Xeon): the worker's peak 920 MB at 384 MB, 778 at 256, 861 at 192 (the heap's reuse, heap.py)
FEED_PREFIX = "matteconv_feed/"


@dataclass
class Segment:
    layers: list[int]  # indices into the NetParameter's layers
    feeds: list[str]  # blobs read from earlier segments (or the net inputs)
    keep: list[str]  # blobs this segment writes that later segments (or the caller) read
    needed: list[str] = field(default_factory=list)  # blobs to hold after it runs: later feeds and the outputs


def _floats(shape) -> int:
    return int(np.prod(shape)) if shape else 0


def layer_bytes(layer, shapes: dict[str, tuple[int, ...]]) -> int:
    """Estimated bytes a layer adds when it runs: its new top blobs, the im2col buffer of a convolution that is not
    1x1 / stride 1 / pad 0 (BVLC base_conv_layer: kernel_dim x group x output spatial; the input spatial for a
    Deconvolution), the temporary blob of MVN (the size of its input)."""
    tops = [t for t in layer.top if t not in layer.bottom]
    n = sum(_floats(shapes.get(t)) for t in tops)
    if layer.type in ("Convolution", "Deconvolution") and layer.bottom:
        p = layer.convolution_param
        (kh, kw), stride, pad = (spatial_pair(p, "kernel_size", "kernel", 1), spatial_pair(p, "stride", "stride", 1),
                                 spatial_pair(p, "pad", "pad", 0))
        if (kh, kw, *stride, *pad) != (1, 1, 1, 1, 0, 0):
            bottom, top = shapes.get(layer.bottom[0]), shapes.get(layer.top[0])
            if bottom and top:
                c_in = bottom[1] if layer.type == "Convolution" else top[1]
                spatial = _floats(top[2:]) if layer.type == "Convolution" else _floats(bottom[2:])
                n += c_in * kh * kw * spatial
    if layer.type == "MVN" and layer.bottom:
        n += _floats(shapes.get(layer.bottom[0]))
    return 4 * n


def plan_segments(proto, shapes: dict[str, tuple[int, ...]], outputs: list[str],
                  budget: int = SEGMENT_BYTES) -> list[Segment]:
    """Cut proto.layer (in order, Input layers left out: their blobs are fed) into segments of at most `budget`
    estimated bytes; a layer larger than the budget is a segment alone. `outputs`: blobs the caller wants at the
    end, kept by whichever segment writes them last."""
    groups: list[list[int]] = []
    used = 0
    for i, layer in enumerate(proto.layer):
        if layer.type == "Input":
            continue
        cost = layer_bytes(layer, shapes)
        if not groups or used + cost > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += cost
    segments = []
    for g in groups:
        written, feeds = set(), []
        for i in g:
            layer = proto.layer[i]
            feeds += [b for b in dict.fromkeys(layer.bottom) if b not in written and b not in feeds]  # x*x: one feed
            written.update(layer.top)
        segments.append(Segment(g, feeds, sorted(written)))
    for k, seg in enumerate(segments):  # keep what a later segment feeds on, or the caller asked for
        seg.needed = sorted({b for s in segments[k + 1:] for b in s.feeds} | set(outputs))
        seg.keep = [b for b in seg.keep if b in seg.needed]
    return segments


def segment_proto(proto, seg: Segment, shapes: dict[str, tuple[int, ...]]):
    """The NetParameter of one segment: an Input layer per fed blob, then the segment's layers verbatim."""
    net = type(proto)(name=f"{proto.name}_part")
    for blob in seg.feeds:
        if blob not in shapes:
            raise MatteconvError(f"segmented run: the shape of blob {blob!r} is unknown")
        feed = net.layer.add(name=FEED_PREFIX + blob, type="Input")
        feed.top.append(blob)
        feed.input_param.shape.add().dim.extend(int(d) for d in shapes[blob])
    for i in seg.layers:
        net.layer.add().CopyFrom(proto.layer[i])
    return net


def start_worker(timeout: float = 600.0) -> CaffeWorker:
    """A pycaffe worker set up for run_in_segments, started now (caffe imports while the caller works on)."""
    return CaffeWorker(timeout=timeout, env=KEEP_FREED_ENV)  # each segment reuses pages (heap.py)


def run_in_segments(prototxt: str | Path, caffemodel: str | Path, feeds: dict[str, np.ndarray],
                    budget: int = SEGMENT_BYTES, timeout: float = 600.0,
                    worker: CaffeWorker | None = None) -> dict[str, np.ndarray]:
    """Forward the written export on `feeds` (input blob -> float32 array) one segment at a time and return its
    outputs (blob -> float32 array), as CaffeWorker.run(feeds)["outputs"] would. `worker`: one from
    start_worker() with nothing loaded yet (it is closed here either way). Errors as CaffeWorker: one line
    naming `prototxt` (a glog CHECK kills only the worker)."""
    from google.protobuf import text_format

    from .writer import read_prototxt

    prototxt, caffemodel = Path(prototxt), Path(caffemodel)
    worker = worker or start_worker(timeout)
    try:
        proto = read_prototxt(prototxt)
        info = worker.load(prototxt, caffemodel)  # the whole export parses and loads; nothing runs
        outputs = list(info["outputs"])
        loaded = [name for name, kind in info["layers"] if kind != "Split"]  # Caffe adds a Split per shared blob
        shapes = {k: tuple(v) for k, v in info["shapes"].items()}
        segments = plan_segments(proto, shapes, outputs, budget)
        if len(segments) <= 1 or proto.input or proto.layers or loaded != [lp.name for lp in proto.layer]:
            # it fits in one segment, or legacy inputs / V1 layers (which Caffe upgraded): run the whole Net
            return worker.run(feeds)["outputs"]
        with tempfile.TemporaryDirectory(prefix=".matteconv-seg-") as tmp:
            part = Path(tmp) / "part.prototxt"
            for k, seg in enumerate(segments):
                part.write_text(text_format.MessageToString(segment_proto(proto, seg, shapes)))
                got = worker.run_part(part, seg.feeds, seg.keep, seg.needed, feeds if k == 0 else None,
                                      outputs if k == len(segments) - 1 else ())
        return {name: got[name] for name in outputs}
    finally:
        worker.close()
