"""The NCHWc block of onnxruntime's CPU provider in this process (what the `ort-*` passes tune for)."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@functools.lru_cache(maxsize=1)
def nchwc_block_size() -> int:
    """The NCHWc block, in channels, that onnxruntime's CPU provider uses in this process: 16 with AVX-512F, 8 with
    AVX or AVX2, 1 where it keeps every convolution in NCHW (MLAS `MlasNchwcGetBlockSize`, which Python cannot
    call). Read off a probe: a 1x1 Conv to one channel, optimised and saved, stores its weight padded to one
    whole block. Asked of onnxruntime itself rather than of /proc/cpuinfo, because what the process is shown
    (a CPUID mask, a VM's CPU model) is what MLAS dispatches on."""
    import onnxruntime as ort

    w = numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], [w])
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(Path(tmp) / "probe.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
        optimised = onnx.load(so.optimized_model_filepath)
    if not any(n.domain == "com.microsoft.nchwc" for n in optimised.graph.node):
        return 1
    return max(int(i.dims[0]) for i in optimised.graph.initializer if len(i.dims) == 4)
