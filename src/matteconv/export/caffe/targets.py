"""Which Caffe layer types each deployment target accepts, as data. Lowering picks exact forms from these
tables (for example `ReLU6` where accepted, an exact ReLU/Power/Eltwise composition elsewhere) and
`unsupported_layers` checks any prototxt against them.

Every set is also limited to layers our pycaffe (brocolli-caffe 9.0.2, a BVLC fork) registers, so whatever we
write can be run and verified here; tests check that against `caffe.layer_type_list()`.

Sources:
- bvlc: BVLC/caffe master (`src/caffe/layers/`), minus `Clip` and `Swish`, which this fork lacks
  (DESIGN.md section 3). `ReLU6` is a fork addition, not BVLC, so it is not listed.
- ascend: the CANN "supported Caffe operators" list (支持Caffe算子清单, CANN 8.0.0,
  https://www.hiascend.com/doc_center/source/zh/canncommercial/800/apiref/aolapi/operatorlist_00098.html,
  which pins Caffe master at 9b891540), cross-checked with HiLens' "Caffe Operator Boundaries" for omg
  (https://support.huaweicloud.com/intl/en-us/usermanual-hilens/hilens_02_0059.html). Layers there that our
  fork cannot run (Interp, Normalize, Permute, PriorBox, detection heads...) are left out: we could not
  verify them. Per-operator pages checked so far: Scale with a second bottom broadcasts from `axis` as in
  BVLC (CANN 8.0.RC3 operatorlist_0352.html). Not yet confirmed on a device: MVN, Reduction MEAN from axis 2 and
  Power with power -0.5 as we use them (the om stage on real hardware is what settles it).
  `Upsample` is left out on purpose: in this fork it is nearest-only and on Ascend its `scale`
  multiplies values, so it can never be an exact bilinear resize.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import MatteconvError

_BVLC = frozenset({
    "Input", "Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "PReLU", "ELU", "Sigmoid",
    "TanH", "AbsVal", "Exp", "Log", "Power", "Threshold", "BatchNorm", "Scale", "Bias", "Eltwise", "Concat",
    "Slice", "Split", "Flatten", "Reshape", "Crop", "Tile", "Reduction", "MVN", "LRN", "Softmax", "ArgMax",
    "Dropout", "BNLL",
})

_ASCEND = frozenset({
    "Input", "Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "ReLU6", "PReLU", "ELU",
    "Sigmoid", "TanH", "AbsVal", "Exp", "Log", "Power", "Threshold", "BatchNorm", "Scale", "Bias", "Eltwise",
    "Concat", "Slice", "Split", "Flatten", "Reshape", "Crop", "Tile", "Reduction", "MVN", "LRN", "Softmax",
    "ArgMax",
})


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    layers: frozenset[str]

    def accepts(self, layer_type: str) -> bool:
        return layer_type in self.layers


TARGETS: dict[str, Target] = {
    "bvlc": Target("bvlc", "BVLC Caffe master (layers our pycaffe also runs)", _BVLC),
    "ascend": Target("ascend", "Huawei Ascend omg/atc Caffe parser (layers our pycaffe also runs)", _ASCEND),
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise MatteconvError(f"unknown Caffe target {name!r} (choose from {', '.join(TARGETS)})") from None


def unsupported_layers(prototxt_path: str | Path, target: str) -> list[tuple[str, str]]:
    """(layer name, layer type) for every layer of the prototxt the target does not accept, in file order."""
    from .writer import read_prototxt

    tgt = get_target(target)
    net = read_prototxt(prototxt_path)
    return [(layer.name, layer.type) for layer in net.layer if not tgt.accepts(layer.type)]
