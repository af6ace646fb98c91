"""Net -> prototxt (text, with a provenance header) and caffemodel (binary, with the weights), through the
caffe_pb2 that ships with our pycaffe. caffe_pb2 is loaded from its file, without importing the `caffe`
package: that would load the C++ library, whose glog CHECKs abort the process; only the worker does that."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from ...errors import MatteconvError
from .ir import Net

_PB2 = "caffe.proto.caffe_pb2"


def caffe_pb2():
    """The protobuf module for caffe.proto (shared with pycaffe if it is already imported)."""
    if _PB2 in sys.modules:
        return sys.modules[_PB2]
    spec = importlib.util.find_spec("caffe")
    if spec is None or not spec.submodule_search_locations:
        raise MatteconvError("pycaffe is not installed in this environment (run scripts/install-caffe.sh)")
    path = Path(list(spec.submodule_search_locations)[0]) / "proto" / "caffe_pb2.py"
    mod_spec = importlib.util.spec_from_file_location(_PB2, path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[_PB2] = module  # the name pycaffe itself uses, so the descriptors are registered once
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[_PB2]
        raise MatteconvError(f"{path}: cannot load Caffe's protobuf module: {e}") from None
    return module


def _fill(msg, values: dict) -> None:
    """Set protobuf fields from a nested dict; enum values may be given by name ("AVE")."""
    for key, value in values.items():
        field = msg.DESCRIPTOR.fields_by_name[key]
        repeated = field.is_repeated
        if field.message_type is not None:
            if repeated:
                for item in value:
                    _fill(getattr(msg, key).add(), item)
            else:
                _fill(getattr(msg, key), value)
            continue
        if field.enum_type is not None:
            value = [_enum(field, v) for v in value] if repeated else _enum(field, value)
        if repeated:
            getattr(msg, key).extend(value)
        else:
            setattr(msg, key, value)


def _enum(field, value):
    return field.enum_type.values_by_name[value].number if isinstance(value, str) else value


def to_proto(net: Net, with_weights: bool):
    pb = caffe_pb2()
    proto = pb.NetParameter(name=net.name)
    for layer in net.layers:
        lp = proto.layer.add(name=layer.name, type=layer.type)
        lp.bottom.extend(layer.bottoms)
        lp.top.extend(layer.tops)
        _fill(lp, layer.params)
        if with_weights:
            for blob in layer.blobs:
                bp = lp.blobs.add()
                bp.shape.dim.extend(int(d) for d in blob.shape)
                bp.MergeFromString(_packed_floats(_BLOB_DATA, blob))
    return proto


_BLOB_DATA = 5  # caffe.proto: message BlobProto { repeated float data = 5 [packed = true]; }


def _packed_floats(field: int, values: np.ndarray) -> bytes:
    """A packed `repeated float` field in protobuf's wire format (tag, byte length, little-endian float32s:
    protobuf.dev/programming-guides/encoding/#packed). Merged into a message this is exactly what
    `data.extend(values)` gives, without a Python float per weight (seconds at 6.5 M weights)."""
    raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def spatial_pair(param, repeated: str, prefix: str, default: int) -> tuple[int, int]:
    """Caffe's spatial parameter convention: `<prefix>_h`/`_w` if set (HasField: some forks give them a default
    of 1), else the repeated field (one value = both sides, two = h, w), else the default."""
    if param.HasField(f"{prefix}_h") or param.HasField(f"{prefix}_w"):
        return int(getattr(param, f"{prefix}_h")), int(getattr(param, f"{prefix}_w"))
    values = list(getattr(param, repeated))
    if not values:
        return default, default
    return (int(values[0]), int(values[0])) if len(values) == 1 else (int(values[0]), int(values[1]))


def write_prototxt(path: str | Path, net: Net, header: list[str]) -> None:
    from google.protobuf import text_format

    text = text_format.MessageToString(to_proto(net, with_weights=False))
    lines = "".join(f"# {h}\n" for h in header)
    Path(path).write_text(lines + text)


def write_caffemodel(path: str | Path, net: Net) -> None:
    Path(path).write_bytes(to_proto(net, with_weights=True).SerializeToString())


def read_prototxt(path: str | Path, unknown: list[str] | None = None):
    """Parse a prototxt in Python (never aborts); a syntax error is a MatteconvError. With a list as `unknown`,
    fields that BVLC's caffe.proto lacks (a vendor's extensions: Ascend's caffe.proto adds fields to Proposal,
    ROIPooling...) are skipped instead of refused, and the first such error is appended to the list."""
    from google.protobuf import text_format

    path = Path(path)
    if path.is_dir():
        raise MatteconvError(f"{path}: is a folder, not a prototxt")
    if not path.is_file():
        raise MatteconvError(f"{path}: prototxt not found")
    proto = caffe_pb2().NetParameter()
    data = path.read_bytes()
    if b"\0" in data:
        hint = " (this looks like a .caffemodel: pass the .prototxt beside it)" if path.suffix == ".caffemodel" else ""
        raise MatteconvError(f"{path}: not a Caffe prototxt: binary data, not text{hint}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Caffe's C++ text parser reads bytes: comments in another encoding (GBK is common) are skipped, and
        # proto2 strings are not checked for UTF-8. Latin-1 maps every byte to one character, so the file parses
        # as Caffe parses it; only non-ASCII names would show as other characters.
        text = data.decode("latin-1")
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as e:
        if unknown is None or "has no field named" not in str(e):
            raise MatteconvError(f"{path}: not a valid Caffe prototxt: {e}") from None
        proto = caffe_pb2().NetParameter()
        try:
            text_format.Parse(text, proto, allow_unknown_field=True)
        except text_format.ParseError as e2:
            raise MatteconvError(f"{path}: not a valid Caffe prototxt: {e2}") from None
        unknown.append(str(e))
    return proto
