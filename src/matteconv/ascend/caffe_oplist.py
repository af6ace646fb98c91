"""What each Ascend compiler's Caffe parser does with a layer type, as data: one row per `type:` string a
prototxt writes, with the verdict and where it is written.

Verdicts:
- `takes`:   the parser maps the layer onto a CANN operator (`op`).
- `drops`:   the parser takes it and a graph pass removes it (an inference no-op: Dropout).
- `refuses`: the parser stops on it; `note` says what atc/omg answers and what to write instead.
A type with no row is refused as unlisted (`verdict`).

How atc's Caffe parser decides (Ascend/parser, `parser/caffe/caffe_parser.cc` `CaffeModelParser::AddNode`, the
same at 2021-02 fc02ad76 and 2023-12 master a87083b2): a `Python` layer is refused (E11006 without
python_param, E11031 for py-faster-rcnn's ProposalLayer, which must be rewritten as the Proposal layer, E11007
otherwise); any other type must be in `caffe_op_map`, which holds the parser's own five (op_map.cc: Input,
DummyData, Reshape, Dropout, NetOutput) and every type a framework plugin registers with
`REGISTER_CUSTOM_OP(...).FrameworkType(CAFFE).OriginOpType(...)`; else `DetectionOutput` gets E11008 ("use
FSRDetectionOutput or SSDDetectionOutput") and every other type E11009 ("Unsupport op ..., you should
customize the op at first"). Layers with `include { phase: TRAIN }` are skipped (CheckValidLayer). Dropout
becomes a DROPOUT node that GraphEngine's DropOutPass deletes (graphengine `ge/graph/passes/dropout_pass.cc`).

The rows: the CANN 8.0 "supported Caffe operators" page (`CANN80`), the parser's own map (`PARSER`), plugin
registrations of the open operator sources that the page does not list (`PLUGINS`, canndev mirror 2022-06), and
the refusals above with CANN's extension-operator guide (`EXT_LIST`, `SSD_GUIDE`). omg (the old DDK) has its own,
shorter list (`OMG`); only its documented entries and the 2019 copy of its built-in list are known, so what is
not there is refused as unlisted, as omg accepts only listed operators.
"""
from __future__ import annotations

from dataclasses import dataclass

# --- sources -------------------------------------------------------------------------------------------------
CANN80 = "https://www.hiascend.com/doc_center/source/zh/canncommercial/800/apiref/aolapi/operatorlist_00098.html"
PARSER = "Ascend/parser parser/common/op_map.cc and parser/caffe/caffe_parser.cc (AddNode), master a87083b2"
DROPOUT_PASS = "mindspore-ai/graphengine ge/graph/passes/dropout_pass.cc (DropOutPass: IsolateAndDeleteNode)"
PLUGINS = ("canndev ops/built-in/framework/caffe_plugin/*.cc OriginOpType (mirror dengguojie/vue-element-admin "
           "715107d8, 2022-06)")
EXT_LIST = ("https://www.hiascend.com/document/detail/zh/canncommercial/latest/devaids/atctool/atlasatc_16_0044.html"
            " (扩展算子列表)")
SSD_GUIDE = "https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/atc/atlasatc_16_0050.html"
E11008 = ("https://www.hiascend.com/document/detail/zh/canncommercial/900/maintenref/troubleshooting/"
          "atlaserrorcode_15_0067.html")
SEGNET = "alexgkendall/caffe-segnet (src/caffe/layers/bn_layer.cpp, type \"BN\")"
ENET = "TimoSaemann/caffe-enet (its own \"BN\" layer; ENet's prototxts use it)"
HILENS = "https://support.huaweicloud.com/intl/en-us/usermanual-hilens/hilens_02_0059.html"
ATLAS500 = "https://support.huaweicloud.com/intl/en-us/opl-atlas500app/atlasoperator_09_0004.html"
DDK_2019 = "https://blog.csdn.net/jacke121/article/details/100554867"
DDK_ONLY_LISTED = "https://support.huaweicloud.com/intl/ar-mena/mcg-atlas300app3000/atlasmcg_05_c30_0004.html"

TAKES, DROPS, REFUSES = "takes", "drops", "refuses"


@dataclass(frozen=True)
class LayerRow:
    type: str  # the `type:` string in a prototxt
    verdict: str  # takes | drops | refuses
    op: str  # the CANN operator it becomes (the page's name), or "" when refused
    source: str
    note: str = ""  # refuses: what the compiler answers and what to write instead


def _rows(names: str, op: str | None, source: str, verdict: str = TAKES, note: str = "") -> list[LayerRow]:
    return [LayerRow(n, verdict, n if op is None else op, source, note) for n in names.split()]


_FORK_BN = ("is the `BN` layer of SegNet's and ENet's Caffe forks (caffe-segnet, caffe-enet), not BVLC Caffe's "
            "and not in CANN's list: atc stops with E11009. Rewrite it as BatchNorm (use_global_stats) + Scale "
            "(bias_term), with the fork's scale/shift/mean/var blobs split between them")
_PYTHON = ("is a Python layer: atc refuses every one (E11006 without python_param; E11031 for py-faster-rcnn's "
           "ProposalLayer, which must be rewritten as the `Proposal` layer of CANN's list; E11007 otherwise)")

# atc (CANN), --framework=0. Page entries with several spellings are one row per spelling.
ATC: tuple[LayerRow, ...] = tuple(
    # CANN 8.0 page, in its order
    _rows("AbsVal ArgMax Atan2 BatchedMatMul BatchNorm Bias BNLL ClassCal Clip Concat", None, CANN80)
    + _rows("Convolution DepthwiseConv ConvolutionDepthwise DepthwiseConvolution", "Convolution", CANN80)
    + _rows("Crop Deconvolution DeconvolutionV1 DFMBPSROIAlign Eltwise ELU Exp FilterGreaterThan Flatten "
            "FlownetResample FSRDetectionOutput L2Normalize Interp Log LRN LSTM InnerProduct", None, CANN80)
    + _rows("Input", "INPUT", CANN80)
    + _rows("MVN Normalize", None, CANN80)
    + _rows("PassThrough", None, CANN80, note="the page's name; prototxts write `Reorg` (see that row)")
    + _rows("Permute ROIPooling PointPillarDecodeBox Pooling Power PointPillarDetection PriorBox", None, CANN80)
    + _rows("PReLU", "PRelu", CANN80)
    + _rows("Proposal PSROIPooling RCNNProposal Reduction", None, CANN80)
    + _rows("ReLU6", "Relu6", CANN80)
    + _rows("ReLU LeakyReLU RReLU", "ReLU/LeakyReLU/RReLU", CANN80)
    + _rows("Reshape Reverse RNN ROIAlign RPNProposalSSD", None, CANN80)
    + _rows("Scale", "scale", CANN80)
    + _rows("ScatterNdV2 ShuffleChannel Similar Sigmoid Slice Softmax SpatialTransformer Split SPP SReLU "
            "SSDDetectionOutput TanH Threshold Tile", None, CANN80)
    + _rows("Upsample", "Upsample(darknet)", CANN80,
            note="Ascend's Upsample multiplies the values by `scale`; `stride` sets the size (CANN's YOLOv3 guide: "
                 "write scale: 1 stride: 2)")
    + _rows("Yolo Yolo3D Yolo3dNMS YoloNms YoloV2DetectionOutput YoloV3DetectionOutput Yolov5FourInputDecodeBox "
            "PointPillarDecodeMultiBox", None, CANN80)
    # atc's parser itself (op_map.cc), and the pass that removes Dropout
    + _rows("DummyData", "Data", PARSER)
    + _rows("NetOutput", "NetOutput", PARSER)
    + _rows("Dropout", "Dropout", f"{PARSER} ; {DROPOUT_PASS}", DROPS,
            note="an inference no-op: parsed, then deleted by GraphEngine's DropOutPass")
    # registered by operator plugins, not on the page
    + _rows("Reorg", "PassThrough", f"{PLUGINS} (pass_through_plugin.cc) ; {EXT_LIST} (Reorg = PassThrough)")
    + _rows("Mish Correlation CondTake MatrixInverse WarpPerspective BasicRNNCell ContinuationIndicator "
            "YoloV3DetectionOutputV2", None, PLUGINS)
    # AMCT's deploy model (what `amct` writes for INT8, compiled by atc)
    + _rows("Quant", "AscendQuant", PLUGINS) + _rows("DeQuant", "AscendDequant", PLUGINS)
    + _rows("AntiQuant", "AscendAntiQuant", PLUGINS) + _rows("Requant", "AscendRequant", PLUGINS)
    + _rows("RequantS16", "AscendRequantS16", PLUGINS) + _rows("DequantS16", "AscendDequantS16", PLUGINS)
    # refusals with a named cause
    + _rows("DetectionOutput", "", f"{PARSER} ; {E11008} ; {SSD_GUIDE}", REFUSES,
            "is SSD's DetectionOutput: atc stops with E11008 (\"Op type 'DetectionOutput' is confused\"); write "
            "type \"SSDDetectionOutput\" (SSD, ssddetectionoutput_param) or \"FSRDetectionOutput\" (Faster R-CNN)")
    + _rows("Region Detection", "", EXT_LIST, REFUSES,
            "is darknet's YOLO output layer: CANN's extension-operator list says Yolo/Detection/Region layers must "
            "be replaced by a `Yolo` layer (then YoloV2DetectionOutput / YoloV3DetectionOutput)")
    + _rows("Silence", "", f"{PARSER} ; {CANN80}", REFUSES,
            "is Caffe's Silence layer (it swallows unused blobs): not in CANN's list nor in atc's parser, so atc "
            "stops with E11009; delete it, and the layers whose only consumer it is")
    + _rows("Python", "", PARSER, REFUSES, _PYTHON)
    + _rows("BN", "", f"{SEGNET} ; {ENET}", REFUSES, _FORK_BN)
    + _rows("DenseImageData", "", f"{SEGNET} ; {PARSER}", REFUSES,
            "is SegNet's fork data layer (it reads images from a list file): not in CANN's list, so atc stops with "
            "E11009; declare the input with an Input layer (or `input:` / `input_shape`) instead")
)

# omg (the old DDK of the HiLens Kit / Atlas 200 DK), which accepts only listed operators (DDK_ONLY_LISTED).
OMG: tuple[LayerRow, ...] = tuple(
    _rows("AbsVal ArgMax BatchNorm Concat DepthwiseConvolution Convolution", None, HILENS)
    + _rows("ConvolutionDepthwise", "ConvolutionDepthwise", f"{ATLAS500} ; {DDK_2019}")
    + _rows("Pooling Eltwise", None, "https://support.huaweicloud.com/ti-atc-A200dk_3000/altasatc_16_021.html")
    + _rows("Deconvolution Power Scale ReLU InnerProduct Sigmoid Correlation Correlation_V2 TanH PReLU Softmax "
            "Reshape ROIPooling FSRDetectionOutput Detectpostprocess LRN Proposal Flatten PriorBox Normalize "
            "Permute SSDDetectionOutput ChannelAxpy PSROIPooling ROIAlign FreespaceExtract SpatialTransform "
            "ProposalSigmoid Slice Region Yolo YoloDetectionOutput Reorg Reverse Crop", None, DDK_2019)
    + _rows("Dropout", "Dropout", DDK_2019, DROPS, note="listed; an inference no-op")
    + _rows("Input", "Data", "every DDK sample declares its input with an Input layer or `input:` fields")
    + _rows("Python", "", DDK_ONLY_LISTED, REFUSES, "is a Python layer: not on the DDK's list (omg accepts only "
            "listed operators); py-faster-rcnn's ProposalLayer is the listed `Proposal` layer")
    + _rows("BN", "", f"{SEGNET} ; {ENET}", REFUSES, _FORK_BN.replace(
        "CANN's list: atc stops with E11009", "the DDK's list (omg accepts only listed operators)"))
)

TABLES: dict[str, tuple[LayerRow, ...]] = {"atc-caffe": ATC, "omg": OMG}
LIST_PAGE = {"atc-caffe": CANN80, "omg": f"{HILENS} ; {DDK_2019} ; {DDK_ONLY_LISTED}"}
_INDEX = {c: {r.type: r for r in rows} for c, rows in TABLES.items()}


def lookup(compiler: str, layer_type: str) -> LayerRow | None:
    """The row for `layer_type` (case-sensitive, as the parsers match it) in `compiler`'s table, or None."""
    return _INDEX[compiler].get(layer_type)


def takes(compiler: str, layer_type: str) -> bool:
    """Whether the compiler's Caffe parser goes on past this layer type (takes it, or takes and drops it)."""
    row = lookup(compiler, layer_type)
    return row is not None and row.verdict != REFUSES


def refusal(compiler: str, layer_type: str) -> tuple[str, str] | None:
    """(what is wrong, source) when the compiler refuses this layer type, else None. The phrase follows
    "layer 'x' (Type)" in a report line."""
    row = lookup(compiler, layer_type)
    if row is not None:
        return (row.note, row.source) if row.verdict == REFUSES else None
    if compiler == "atc-caffe":
        near = next((r.type for r in ATC if r.type.lower() == layer_type.lower() and r.verdict != REFUSES), None)
        hint = f" (did you mean {near!r}? atc matches the type case-sensitively)" if near else ""
        return (f"is not in CANN 8.0's supported Caffe operator list nor registered by atc's Caffe parser: atc "
                f"stops with E11009 (\"Unsupport op ..., you should customize the op at first\"){hint}",
                f"{CANN80} ; {PARSER}")
    return ("is not in the old DDK's Caffe operator list: omg accepts only listed operators", LIST_PAGE["omg"])


def unsupported(layers, compiler: str) -> list[tuple[str, str]]:
    """(name, type) of each layer (objects with .name and .type, in order) that `compiler` refuses."""
    return [(la.name, la.type) for la in layers if not takes(compiler, la.type)]
