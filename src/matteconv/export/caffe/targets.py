"""Which Caffe layer types each deployment target accepts, as data. Lowering picks exact forms from these
tables (for example `ReLU6` where accepted, an exact ReLU/Power/Eltwise composition elsewhere) and
`unsupported_layers` checks any prototxt against them.

Every set is also limited to layers our pycaffe (brocolli-caffe 9.0.2, a BVLC fork) registers, so whatever we
write can be run and verified here; tests check that against `caffe.layer_type_list()`.

Sources:
- bvlc: BVLC/caffe master (`src/caffe/layers/`), minus `Clip` and `Swish`, which this fork lacks
  (docs/design.md section 3). `ReLU6` is a fork addition, not BVLC, so it is not listed.
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
- ddk: the old DDK `omg` compiler of the HiLens Kit / Atlas 200 DK era (the seed's compiler), which accepts
  only operators on its own list
  (https://support.huaweicloud.com/intl/ar-mena/mcg-atlas300app3000/atlasmcg_05_c30_0004.html).
  Sources: HiLens user guide "Caffe Operator Boundaries" (Caffe算子边界,
  https://support.huaweicloud.com/intl/en-us/usermanual-hilens/hilens_02_0059.html; its readable entries:
  Absval, Argmax, BatchNorm, Concat, DepthwiseConvolution), the Atlas 200 DK "Caffe算子规格" page of the same
  era (https://support.huaweicloud.com/ti-atc-A200dk_3000/altasatc_16_021.html; readable entries: Pooling,
  Eltwise), and a 2019 copy of the Atlas 200 DK DDK built-in operator list
  (https://blog.csdn.net/jacke121/article/details/100554867: Convolution, Deconvolution, Power, Scale,
  Eltwise, Pooling, ReLU, Concat, InnerProduct, Sigmoid, BatchNorm; no MVN, Reduction or ReLU6).
  Unconfirmed: only the first entries of the two Huawei tables could be read, so each layer here except those
  named above rests on the 2019 copy alone; Input is how every DDK sample declares its input (not an operator);
  MVN, Reduction and ReLU6 are left out because no DDK list found names them. Layer *parameters* (Power with
  a non-integer exponent, Scale with two bottoms, group Deconvolution) are not confirmed for omg either.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import MatteconvError
from ...ascend import caffe_oplist

_BVLC = frozenset({
    "Input", "Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "PReLU", "ELU", "Sigmoid",
    "TanH", "AbsVal", "Exp", "Log", "Power", "Threshold", "BatchNorm", "Scale", "Bias", "Eltwise", "Concat",
    "Slice", "Split", "Flatten", "Reshape", "Crop", "Tile", "Reduction", "MVN", "LRN", "Softmax", "ArgMax",
    "Dropout", "BNLL",
    # the rest of BVLC master's layers that our fork registers: data, loss, recurrent and utility layers. A
    # user's net may hold them (`inspect`); lowering never writes them, and OpenCV DNN lacks several.
    "Data", "DummyData", "HDF5Data", "HDF5Output", "MemoryData", "Accuracy", "SoftmaxWithLoss", "EuclideanLoss",
    "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss", "Embed",
    "LSTM", "LSTMUnit", "RNN", "Silence", "Im2col", "SPP", "Filter", "Parameter", "BatchReindex",
})

_ASCEND = frozenset({
    "Input", "Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "ReLU6", "PReLU", "ELU",
    "Sigmoid", "TanH", "AbsVal", "Exp", "Log", "Power", "Threshold", "BatchNorm", "Scale", "Bias", "Eltwise",
    "Concat", "Slice", "Split", "Flatten", "Reshape", "Crop", "Tile", "Reduction", "MVN", "LRN", "Softmax",
    "ArgMax",
})

_DDK = frozenset({
    "Input", "Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU", "Sigmoid", "Power", "BatchNorm",
    "Scale", "Eltwise", "Concat", "AbsVal", "ArgMax",
})


@dataclass(frozen=True)
class Target:
    """A deployment target's Caffe layers: `layers`, what our export may write (each runs in our pycaffe, so
    exports are verified); `compiler`, the key of the target's own tool in `ascend.caffe_oplist.TABLES` (atc's or
    omg's whole Caffe layer table, each row with its source), which is what a user's prototxt is checked against
    (`takes`)."""

    name: str
    description: str
    layers: frozenset[str]
    # Also loads in OpenCV DNN 4.x (the usual second consumer of a BVLC Caffe model): lowering then avoids the
    # Reduction layer (OpenCV has none) and a Scale over (H, W) right after a Deconvolution (OpenCV fuses it
    # as if it were per channel and aborts: "numOutput == w.total()" in fuseWeights, measured with 4.14).
    opencv_dnn: bool = False

    compiler: str | None = None

    def accepts(self, layer_type: str) -> bool:
        """Whether our export may write this layer type for the target."""
        return layer_type in self.layers

    def takes(self, layer_type: str) -> bool:
        """Whether the target's tool takes this layer type in a user's file (or takes and drops it, as atc does
        Dropout): its compiler's whole table, or for bvlc the layers our pycaffe runs."""
        if self.compiler is None:
            return layer_type in self.layers
        return caffe_oplist.takes(self.compiler, layer_type)


TARGETS: dict[str, Target] = {
    "bvlc": Target("bvlc", "BVLC Caffe master and OpenCV DNN 4.x (layers our pycaffe also runs)", _BVLC,
                   opencv_dnn=True),
    "ascend": Target("ascend", "Huawei CANN atc Caffe parser: CANN 8.0's supported Caffe operator list", _ASCEND,
                     compiler="atc-caffe"),
    "ddk": Target("ddk", "old Huawei DDK omg (HiLens Kit / Atlas 200 DK): its built-in Caffe operator list", _DDK,
                  compiler="omg"),
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise MatteconvError(f"unknown Caffe target {name!r} (choose from {', '.join(TARGETS)})") from None


def unsupported_layers(prototxt_path: str | Path, target: str) -> list[tuple[str, str]]:
    """(layer name, layer type) for every layer of the prototxt the target's tool does not take, in file order."""
    from .writer import read_prototxt

    tgt = get_target(target)
    net = read_prototxt(prototxt_path)
    return [(layer.name, layer.type) for layer in net.layer if not tgt.takes(layer.type)]
