"""The AIPP config schema as GraphEngine reads it: every field of `domi.AippOpParams`, its type, GraphEngine's
default, the switch that enables it, the range the tools check, and where each rule comes from.

Sources (cited by key in `Field.source` and in the rules of `check.py`):
- [proto]  GraphEngine `insert_op.proto` (`InsertNewOps`, `AippOpParams`; proto3, so an absent scalar is 0/false
           and the matrix, biases and var_reci are `repeated` so GE can tell "absent" from 0), e.g.
           Huawei-Ascend/tensorflow inc/common/proto/insert_op.proto; `related_input_name` and `padding_value`
           from the current GE (gitcode cann/ge `ge_aipp_op.cc` `ConvertRelatedInputNameToRank`, `SetPaddingData`).
- [ge]     GraphEngine `ge_aipp_op.cc`: `SetDefaultParams` (csc defaults, var_reci 1.0, crop/resize/padding fields
           zeroed when their switch is off), `SetCscDefaultValue` (YUV420SP_U8: YUV->RGB matrix in B,G,R row
           order; other formats: RGB->YUV), `ValidateParams` (aipp_mode, input_format, repeated values, >= 0).
- [tbe]    The AIPP operator's compile-time checks, `aipp_comm.py::check_aipp_static_config` (Ascend opp,
           gekowa/ascend-opp op_impl/built-in/ai_core/tbe/impl/aipp_comm.py).
- [atc]    CANN ATC guide, "Configuration File Template": in static mode only input_format is required; an
           absent parameter takes the template's default; order swap -> crop -> CSC -> normalise -> padding.
"""
from __future__ import annotations

from dataclasses import dataclass

# [proto] AippOpParams.InputFormat, in enum order (the number is the index)
INPUT_FORMATS = (
    "UNDEFINED", "YUV420SP_U8", "XRGB8888_U8", "RGB888_U8", "YUV400_U8", "NC1HWC0DI_FP16", "NC1HWC0DI_S8",
    "ARGB8888_U8", "YUYV_U8", "YUV422SP_U8", "AYUV444_U8", "RAW10", "RAW12", "RAW16", "RAW24", "RGB16", "RGB20",
    "RGB24", "RGB8_IR", "RGB16_IR", "RGB24_IR",
)
AIPP_MODES = ("undefined", "static", "dynamic")  # [proto] AippOpParams.AippMode
# [tbe] formats Ascend 310/610/710 accept
ASCEND310_FORMATS = ("YUV420SP_U8", "XRGB8888_U8", "NC1HWC0DI_FP16", "NC1HWC0DI_S8", "RGB888_U8", "YUV400_U8")
YUV_FORMATS = ("YUV420SP_U8", "YUYV_U8", "YUV422SP_U8", "AYUV444_U8", "YUV400_U8")  # [tbe] take input_bias

MATRIX_KEYS = tuple(f"matrix_r{r}c{c}" for r in range(3) for c in range(3))
_B, _I, _U, _F, _E, _S = "bool", "int32", "uint32", "float", "enum", "string"


@dataclass(frozen=True)
class Field:
    """One field of AippOpParams."""

    name: str
    number: int  # [proto] field number
    kind: str  # bool | int32 | uint32 | float | enum | string
    repeated: bool = False  # [proto] `repeated` (GE refuses more than one value: [ge] ValidateParams)
    switch: str | None = None  # the bool that enables it; GE ignores it when that is off ([ge] SetDefaultParams)
    mode: str = "static"  # static | dynamic | both: the fields of the other mode are ignored ([proto] comments)
    lo: float | None = None  # range the tools refuse outside of (source in `source`)
    hi: float | None = None
    source: str = "proto"
    doc: str = ""


def _f(*a, **k) -> Field:
    return Field(*a, **k)


_FIELD_LIST = [
    _f("aipp_mode", 1, _E, mode="both", doc="static or dynamic; required ([ge] ValidateParams)"),
    _f("related_input_rank", 2, _U, mode="both", doc="0-based model input AIPP feeds"),
    _f("input_edge_idx", 3, _U, repeated=True, mode="both", doc="which out-edges of that input get AIPP"),
    _f("max_src_image_size", 4, _U, mode="dynamic", doc="dynamic AIPP: largest input in bytes (> 0)"),
    _f("support_rotation", 5, _B, mode="dynamic", doc="dynamic AIPP: allow rotation"),
    _f("related_input_name", 6, _S, mode="both", doc="model input top name instead of the rank"),
    _f("input_format", 51, _E, doc="raw input layout; the only required static field ([atc] template)"),
    _f("csc_switch", 52, _B, doc="colour-space conversion"),
    _f("cpadding_value", 53, _F, doc="value of the channel padding up to C0"),
    _f("rbuv_swap_switch", 54, _B, doc="swap R/B (RGB) or U/V (YUV) before everything else"),
    _f("ax_swap_switch", 55, _B, doc="XRGB/ARGB: move the 4th channel"),
    _f("single_line_mode", 56, _B, doc="process one line only"),
    _f("src_image_size_w", 57, _I, lo=0, hi=4096, source="tbe", doc="raw width; 0 = the model's"),
    _f("src_image_size_h", 58, _I, lo=0, hi=4096, source="tbe", doc="raw height; 0 = the model's"),
    _f("crop", 59, _B, doc="crop switch"),
    _f("load_start_pos_w", 60, _I, switch="crop", lo=0, hi=4095, source="ge", doc="crop x"),
    _f("load_start_pos_h", 61, _I, switch="crop", lo=0, hi=4095, source="ge", doc="crop y"),
    _f("crop_size_w", 62, _I, switch="crop", lo=0, hi=4096, source="ge", doc="crop width (0 = model width)"),
    _f("crop_size_h", 63, _I, switch="crop", lo=0, hi=4096, source="ge", doc="crop height (0 = model height)"),
    _f("resize", 64, _B, doc="resize switch (Hi3796CV300 only: [tbe])"),
    _f("resize_output_w", 65, _I, switch="resize", lo=0, source="ge"),
    _f("resize_output_h", 66, _I, switch="resize", lo=0, source="ge"),
    _f("padding", 67, _B, doc="padding switch"),
    _f("left_padding_size", 68, _I, switch="padding", lo=0, hi=32, source="tbe"),
    _f("right_padding_size", 69, _I, switch="padding", lo=0, hi=32, source="tbe"),
    _f("top_padding_size", 70, _I, switch="padding", lo=0, hi=32, source="tbe"),
    _f("bottom_padding_size", 71, _I, switch="padding", lo=0, hi=32, source="tbe"),
    _f("padding_value", 72, _F, switch="padding", doc="value written into the padded border"),
    *[_f(f"mean_chn_{i}", n, _I, lo=0, hi=255, source="tbe", doc="integer mean") for i, n in
      enumerate((10, 11, 12, 19))],
    *[_f(f"min_chn_{i}", n, _F, lo=0, hi=255, source="tbe", doc="fractional mean") for i, n in
      enumerate((13, 14, 15, 20))],
    *[_f(f"var_reci_chn_{i}", n, _F, repeated=True, lo=-65504, hi=65504, source="tbe", doc="1/std, default 1.0")
      for i, n in enumerate((16, 17, 18, 21))],
    *[_f(k, 30 + j, _I, repeated=True, switch="csc_switch", lo=-32768, hi=32767, source="tbe")
      for j, k in enumerate(MATRIX_KEYS)],
    *[_f(f"output_bias_{i}", 39 + i, _I, repeated=True, switch="csc_switch", lo=0, hi=255, source="tbe")
      for i in range(3)],
    *[_f(f"input_bias_{i}", 42 + i, _I, repeated=True, switch="csc_switch", lo=0, hi=255, source="tbe")
      for i in range(3)],
    _f("raw_rgbir_to_f16_n", 45, _U, lo=0, hi=31, source="tbe", doc="RAW/RGBIR: x / 2^n"),
]
FIELDS: dict[str, Field] = {f.name: f for f in _FIELD_LIST}
SWITCHES = ("crop", "resize", "padding", "csc_switch")

# [ge] SetCscDefaultValue: YUV420SP_U8 gets BT.601 video-range YUV->RGB with its rows in B, G, R order
# (GE writes DEFAULT_MATRIX_R2* into row 0 and R0* into row 2); every other format gets RGB->YUV.
GE_DEFAULT_MATRIX_YUV420SP = ((298, 516, 0), (298, -100, -208), (298, 0, 409))
GE_DEFAULT_MATRIX_OTHER = ((66, 129, 25), (-38, -74, 112), (112, -94, -18))
GE_DEFAULT_INPUT_BIAS = (16, 128, 128)
GE_DEFAULT_OUTPUT_BIAS = (16, 128, 128)
GE_DEFAULT_VAR_RECI = 1.0  # [ge] SetDtcDefaultValue

# BT.601 YUV -> RGB, rows in R, G, B order ([atc] "CSC Configuration", BT-601NARROW / BT-601WIDE(JPEG)).
CSC_YUV2RGB = {
    "video": ((298, 0, 409), (298, -100, -208), (298, 516, 0)),
    "full": ((256, 0, 359), (256, -88, -183), (256, 454, 0)),
}
CSC_INPUT_BIAS = {"video": (16, 128, 128), "full": (0, 128, 128)}


def proto_default(name: str):
    """The proto3 zero value of a field (what GE sees when the field is absent, before its own defaults)."""
    kind = FIELDS[name].kind
    if kind == _B:
        return False
    if kind == _E:
        return AIPP_MODES[0] if name == "aipp_mode" else INPUT_FORMATS[0]
    if kind == _S:
        return ""
    return 0.0 if kind == _F else 0


def ge_defaults(values: dict[str, object]) -> dict[str, object]:
    """Every field's value as GraphEngine uses it for a static op: explicit values over proto zeros, then
    [ge] SetDefaultParams: CSC matrix/biases per input format when csc_switch is on, var_reci 1.0, and the
    crop / resize / padding fields zeroed when their switch is off. `values` holds the explicit fields."""
    eff = {name: proto_default(name) for name in FIELDS}
    eff.update(values)
    if eff["aipp_mode"] != "static":
        return eff
    if eff["csc_switch"]:
        m = GE_DEFAULT_MATRIX_YUV420SP if eff["input_format"] == "YUV420SP_U8" else GE_DEFAULT_MATRIX_OTHER
        for r in range(3):
            for c in range(3):
                if f"matrix_r{r}c{c}" not in values:
                    eff[f"matrix_r{r}c{c}"] = m[r][c]
        for i in range(3):
            if f"input_bias_{i}" not in values:
                eff[f"input_bias_{i}"] = GE_DEFAULT_INPUT_BIAS[i]
            if f"output_bias_{i}" not in values:
                eff[f"output_bias_{i}"] = GE_DEFAULT_OUTPUT_BIAS[i]
    for i in range(4):
        if f"var_reci_chn_{i}" not in values:
            eff[f"var_reci_chn_{i}"] = GE_DEFAULT_VAR_RECI
    for name, f in FIELDS.items():
        if f.switch in ("crop", "resize", "padding") and not eff[f.switch]:
            eff[name] = proto_default(name)
    return eff


def descriptor_proto():
    """A FileDescriptorProto of `domi.InsertNewOps` built from FIELDS, so google.protobuf's text_format parses a
    config exactly as GE's C++ TextFormat does (same field names, types, enums and repeated-ness)."""
    from google.protobuf import descriptor_pb2

    T = descriptor_pb2.FieldDescriptorProto
    types = {_B: T.TYPE_BOOL, _I: T.TYPE_INT32, _U: T.TYPE_UINT32, _F: T.TYPE_FLOAT, _E: T.TYPE_ENUM,
             _S: T.TYPE_STRING}
    fd = descriptor_pb2.FileDescriptorProto(name="matteconv_insert_op.proto", package="domi", syntax="proto3")
    root = fd.message_type.add(name="InsertNewOps")
    params = fd.message_type.add(name="AippOpParams")
    for ename, vals in (("InputFormat", INPUT_FORMATS), ("AippMode", AIPP_MODES)):
        e = params.enum_type.add(name=ename)
        for i, v in enumerate(vals):
            e.value.add(name=v, number=i)
    for f in _FIELD_LIST:
        fp = params.field.add(name=f.name, number=f.number, type=types[f.kind],
                              label=T.LABEL_REPEATED if f.repeated else T.LABEL_OPTIONAL)
        if f.kind == _E:
            fp.type_name = ".domi.AippOpParams." + ("AippMode" if f.name == "aipp_mode" else "InputFormat")
    multi = fd.message_type.add(name="MultiShapeOpParams")
    me = multi.enum_type.add(name="MultiShapeMode")
    me.value.add(name="batch", number=0)
    me.value.add(name="resolution", number=1)
    multi.field.add(name="mode", number=1, type=T.TYPE_ENUM, type_name=".domi.MultiShapeOpParams.MultiShapeMode",
                    label=T.LABEL_OPTIONAL)
    multi.field.add(name="related_input_rank", number=2, type=T.TYPE_UINT32, label=T.LABEL_OPTIONAL)
    multi.field.add(name="batch_list", number=11, type=T.TYPE_UINT32, label=T.LABEL_REPEATED)
    root.field.add(name="aipp_op", number=1, type=T.TYPE_MESSAGE, type_name=".domi.AippOpParams",
                   label=T.LABEL_REPEATED)
    root.field.add(name="multi_shape_op", number=2, type=T.TYPE_MESSAGE, type_name=".domi.MultiShapeOpParams",
                   label=T.LABEL_REPEATED)
    return fd
