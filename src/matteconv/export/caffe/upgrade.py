"""Old Caffe prototxt formats, read the way Caffe reads them.

Caffe's `ReadNetParamsFromTextFileOrDie` runs `UpgradeNetAsNeeded` (src/caffe/util/upgrade_proto.cpp): V0
(`layers { layer { ... } }`) and V1 (`layers { type: CONVOLUTION ... }`, enum types, `blobs_lr`) become
`layer { type: "Convolution" ... }`, and `input`/`input_dim` become an Input layer. Rather than re-implement it,
we let pycaffe do it in its worker process (a glog abort kills only the worker) and read back the net it built
(`Net::ToProto`, via `net.save`, weights dropped). The old DDK's omg refuses V1 layers (Atlas 200 DK FAQ); Caffe
ships `upgrade_net_proto_text IN OUT` for that, and `matteconv inspect --upgrade OUT` writes the same text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import MatteconvError
from .runner import CaffeWorker
from .writer import caffe_pb2, read_prototxt

UPGRADE_TOOL = "upgrade_net_proto_text"  # Caffe's tools/upgrade_net_proto_text.cpp


@dataclass
class NetText:
    """A prototxt as Caffe sees it: `net` in the current format, `format` what the file was (V0, V1 or V2)."""

    net: object  # caffe_pb2.NetParameter
    format: str
    path: Path
    info: dict | None = None  # what pycaffe's worker reported when it loaded the net to upgrade it (shapes...)
    unknown_fields: str | None = None  # the first field BVLC's caffe.proto lacks (skipped; see read_net)

    @property
    def upgraded(self) -> bool:
        return self.format != "V2"

    @property
    def test_layers(self) -> list:
        """The layers of the net pycaffe builds (`caffe.Net(path, caffe.TEST)`): include/exclude rules applied."""
        return [la for la in self.net.layer if in_test_net(la)]

    @property
    def excluded(self) -> list:
        """The layers Caffe leaves out of the TEST net (TRAIN-only data, stage-only dropout...)."""
        return [la for la in self.net.layer if not in_test_net(la)]


TEST_PHASE = 1  # caffe.proto Phase: TRAIN = 0, TEST = 1


def _meets(rule) -> bool:
    """Caffe's Net::StateMeetsRule for the state pycaffe's Net(path, TEST) builds: phase TEST, level 0, no
    stages (src/caffe/net.cpp)."""
    if rule.HasField("phase") and rule.phase != TEST_PHASE:
        return False
    if rule.HasField("min_level") and 0 < rule.min_level:
        return False
    if rule.HasField("max_level") and 0 > rule.max_level:
        return False
    return not rule.stage  # every listed stage must be in the state's stages, which are none; not_stage passes


def in_test_net(layer) -> bool:
    """Caffe's Net::FilterNet: a layer with no include rules is in unless an exclude rule meets the state; one
    with include rules is in if any of them meets it."""
    included = not layer.include
    if any(_meets(r) for r in layer.exclude):
        included = False
    if any(_meets(r) for r in layer.include):
        included = True
    return included


def prototxt_format(net) -> str:
    """V2 (`layer {}`), V1 (`layers {}` with enum types) or V0 (`layers { layer {} }`)."""
    if len(net.layers) == 0:
        return "V2"
    return "V0" if any(la.HasField("layer") for la in net.layers) else "V1"


def upgraded_net(path: Path) -> tuple[object, dict]:
    """The NetParameter pycaffe builds from an old-format prototxt (TEST phase, no weights), and the worker's
    description of the loaded net (inputs, shapes, params), so callers need not load it twice."""
    worker = CaffeWorker(path, None)
    try:
        data = worker.net_param()
        info = worker.info
    finally:
        worker.close()
    net = caffe_pb2().NetParameter()
    net.ParseFromString(data)
    for layer in net.layer:
        del layer.blobs[:]
    return net, info


_UPGRADED: dict[tuple, NetText] = {}  # (resolved path, mtime_ns, size) -> upgraded net: one pycaffe load per file


def read_net(path: str | Path) -> NetText:
    """Parse a prototxt; upgrade V0/V1 as Caffe does. A file with no layers is an error (a checker must not
    report "accepted" for layers it did not read). Fields BVLC's caffe.proto lacks are skipped and the first is
    kept in `unknown_fields`: vendors extend caffe.proto (Ascend's adds Proposal and ROIPooling fields that atc
    reads), so the layers are still checked; pycaffe itself refuses such a file, which `summarize` reports."""
    path = Path(path)
    unknown: list[str] = []
    net = read_prototxt(path, unknown)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key in _UPGRADED:
        cached = _UPGRADED[key]
        return NetText(cached.net, cached.format, path, cached.info)
    fmt = prototxt_format(net)
    if fmt != "V2" and len(net.layer):
        raise MatteconvError(f"{path}: has both 'layer' and old-format 'layers' blocks: Caffe refuses to upgrade "
                             "such a net (upgrade_proto: 'both layer and layers specified')")
    info = None
    if fmt != "V2":
        try:
            net, info = upgraded_net(path)
        except MatteconvError as e:
            raise MatteconvError(f"{path}: {fmt} prototxt that Caffe could not upgrade and load: {e}") from None
    if not len(net.layer):
        raise MatteconvError(f"{path}: no layers (no 'layer {{ ... }}' blocks): nothing to check")
    nt = NetText(net, fmt, path, info, unknown[0] if unknown else None)
    if nt.upgraded:
        _UPGRADED[key] = nt
    return nt


def upgraded_text(nt: NetText) -> str:
    from google.protobuf import text_format

    return (f"# upgraded from the {nt.format} prototxt {nt.path.name} by matteconv (pycaffe's upgrade_proto)\n"
            + text_format.MessageToString(nt.net))
