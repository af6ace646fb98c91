"""What `matteconv inspect` reports about a prototxt: layers, counts per type, parameter count, output
shapes and the layers a target does not accept. Parsing is pure Python (never aborts); parameter counts and
shapes come from pycaffe in the worker when the net loads there, else they are reported as unavailable."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...errors import MatteconvError
from .runner import CaffeWorker
from .targets import get_target
from .upgrade import UPGRADE_TOOL, read_net


@dataclass
class LayerInfo:
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    params: int | None = None
    shapes: list[list[int]] | None = None  # one per top


@dataclass
class Summary:
    path: str
    target: str
    layers: list[LayerInfo]
    counts: dict[str, int]
    unsupported: list[tuple[str, str]]
    num_params: int | None = None
    inputs: dict[str, list[int]] = field(default_factory=dict)
    outputs: dict[str, list[int]] = field(default_factory=dict)
    caffe_error: str | None = None  # why shapes/params are missing
    format: str = "V2"  # what the file was: V0/V1 are upgraded the way Caffe does before anything is checked
    refusals: list[str] = field(default_factory=list)  # whole-file refusals by the target (e.g. omg and V1)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # not in the TEST net (include/exclude rules)
    unknown_fields: str | None = None  # the first field BVLC's caffe.proto lacks (skipped when read)

    def to_dict(self) -> dict:
        return asdict(self)


# layers that open their data source when the net is built: a TEST net with one cannot load without the data
DATA_SOURCE_LAYERS = ("Data", "ImageData", "HDF5Data", "WindowData", "AnnotatedData")


def summarize(path: str | Path, target: str = "bvlc") -> Summary:
    """What `matteconv inspect` reports (module docstring). Raises MatteconvError for a file that is not a
    prototxt or has no layers. On target bvlc, a net whose every layer type is accepted but that pycaffe cannot
    build is a refusal (`refusals`); on the Ascend targets it only leaves shapes unavailable (their parsers
    take layers our pycaffe lacks)."""
    path = Path(path)
    tgt = get_target(target)
    nt = read_net(path)
    layers = [LayerInfo(la.name, la.type, list(la.bottom), list(la.top)) for la in nt.test_layers]
    if len(nt.net.input):  # `input:` fields: Caffe's UpgradeNetInput makes them one Input layer named "input"
        layers.insert(0, LayerInfo("input", "Input", [], list(nt.net.input)))
    counts = dict(sorted(Counter(la.type for la in layers).items()))
    unsupported = [(la.name, la.type) for la in layers if not tgt.takes(la.type)]
    summary = Summary(str(path), target, layers, counts, unsupported, format=nt.format,
                      excluded=[(la.name, la.type) for la in nt.excluded], unknown_fields=nt.unknown_fields)
    if nt.upgraded and target == "ddk":
        summary.refusals.append(f"{path}: {nt.format} prototxt (`layers {{ type: ENUM }}`): omg refuses V1 layers "
                                f"(Atlas 200 DK FAQ); upgrade it first with Caffe's {UPGRADE_TOOL} IN OUT, or "
                                "`matteconv inspect --upgrade OUT`")
    caffemodel = path.with_suffix(".caffemodel")
    if nt.info is not None and not caffemodel.is_file():
        info = nt.info  # pycaffe loaded it already to upgrade it
    else:
        try:
            worker = CaffeWorker(path, caffemodel if caffemodel.is_file() else None)
        except MatteconvError as e:
            summary.caffe_error = str(e)
            sources = [la.name for la in nt.test_layers if la.type in DATA_SOURCE_LAYERS]
            if sources:
                summary.caffe_error += (f" (the TEST net reads a data source at load: {', '.join(sources)}; shapes "
                                        "need it)")
            elif target == "bvlc" and not unsupported:
                # every layer type is BVLC's, yet BVLC Caffe (our pycaffe) cannot build the net: a refusal
                # (blob sizes past INT_MAX, a .caffemodel that does not fit, a bottom nobody makes...)
                why = str(e).removeprefix(f"{path}: ")
                summary.refusals.append(f"{path}: pycaffe cannot build this net: {why}")
            return summary
        try:
            info = worker.info
        finally:
            worker.close()
    shapes, params = info["shapes"], info["params"]
    for la in layers:
        la.shapes = [list(shapes[t]) for t in la.tops if t in shapes]
        la.params = sum(_prod(s) for s in params.get(la.name, []))
    summary.num_params = sum(la.params or 0 for la in layers)
    summary.inputs = {n: list(s) for n, s in info["inputs"]}
    summary.outputs = {n: list(shapes[n]) for n in info["outputs"]}
    return summary


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
