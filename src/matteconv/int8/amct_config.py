"""AMCT's simplified calibration configuration (protobuf text format, message AMCTConfig), rendered from a
quantization record, and checked against the documented schema.

What it holds ([CFG] in rules.py): `batch_num` (calibration batches: one input each), `activation_offset`
(asymmetric activations), `skip_layers` (every layer the record keeps fp16: AMCT restrictions, layers matteconv
does not emulate, the automatic skip), `skip_layer_types`, and `common_config` with the calibration algorithms:
`arq_quantize { channel_wise: true }` for weights and `ifmr_quantize { ... }` with the IFMR parameters used.
Fully connected layers (Gemm, MatMul, InnerProduct) get `override_layer_types` with `channel_wise: false`: ARQ
reports an error for channel_wise on a channel-irrelevant layer ([ARQ]).

The schema is proto/calibration_config.proto, reconstructed from Huawei's pages (sources in the file). Checking
compiles it with `protoc` (Debian protobuf-compiler, installed with the project) into a descriptor set and parses
the text with google.protobuf.text_format: an unknown field, a wrong type or a missing required field fails.
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import MatteconvError
from .record import QuantRecord

PROTO = Path(__file__).with_name("proto") / "calibration_config.proto"
MESSAGE = "matteconv.amct.AMCTConfig"
FC_TYPES = {"onnx": ("Gemm", "MatMul"), "caffe": ("InnerProduct",)}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ifmr_block(ifmr: dict, indent: str) -> list[str]:
    keys = ("search_range_start", "search_range_end", "search_step", "max_percentile", "min_percentile")
    return [f"{indent}ifmr_quantize {{"] + [f"{indent}  {k}: {ifmr[k]:g}" for k in keys] + [f"{indent}}}"]


def render_config(record: QuantRecord, skip_layer_types: list[str] = ()) -> str:
    """The simplified configuration file for amct_onnx / amct_caffe that reproduces `record`."""
    lines = [f"# matteconv quantize: AMCT simplified PTQ configuration (AMCTConfig) for {Path(record.model).name}",
             f"# {len(record.quantized)} layer(s) INT8, {len(record.skipped)} kept fp16; "
             f"{100 * record.int8_share():.1f}% of the MACs in INT8",
             f"batch_num: {len(record.inputs)}",
             f"activation_offset: {'true' if record.activation_offset else 'false'}"]
    for r in record.skipped:
        lines.append(f"# {r.name}: {r.skip}")
        lines.append(f"skip_layers: {_q(r.name)}")
    lines += [f"skip_layer_types: {_q(t)}" for t in skip_layer_types]
    lines += ["common_config {", "  arq_quantize {", "    channel_wise: true", "  }"]
    lines += _ifmr_block(record.ifmr, "  ") + ["}"]
    present = {r.op for r in record.layers}
    for t in FC_TYPES[record.framework]:
        if t in present:
            lines += ["override_layer_types {", f"  layer_type: {_q(t)}", "  calibration_config {",
                      "    arq_quantize {", "      channel_wise: false", "    }"]
            lines += _ifmr_block(record.ifmr, "    ") + ["  }", "}"]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=1)
def schema_class():
    """The AMCTConfig message class, compiled from PROTO with protoc. MatteconvError if protoc is missing."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    protoc = shutil.which("protoc")
    if protoc is None:
        raise MatteconvError("protoc not found (apt install protobuf-compiler): cannot check the AMCT config schema")
    with tempfile.TemporaryDirectory(prefix="matteconv-proto-") as tmp:
        out = Path(tmp) / "schema.pb"
        proc = subprocess.run([protoc, f"--proto_path={PROTO.parent}", f"--descriptor_set_out={out}", PROTO.name],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise MatteconvError(f"{PROTO}: protoc failed: {proc.stderr.strip()}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(MESSAGE))


def parse_config(text: str, where: str = "config"):
    """Parse AMCT simplified-config text against the schema; returns the message. MatteconvError names the line."""
    from google.protobuf import text_format

    msg = schema_class()()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        raise MatteconvError(f"{where}: not a valid AMCT simplified configuration: {e}") from None
    missing = msg.FindInitializationErrors()
    if missing:
        raise MatteconvError(f"{where}: required field(s) missing: {', '.join(missing)}")
    return msg
