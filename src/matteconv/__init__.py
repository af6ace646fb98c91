"""matteconv: MODNet from a PyTorch checkpoint to ONNX, Caffe and Ascend .om, verified at every hop."""
import os as _os

__version__ = "0.1.0"

# onnxruntime 1.32 writes a telemetry session file ($TMPDIR/.ses) and a device id (~/.cache/Microsoft/) from every
# process that creates a session, unless this is set before it is imported; matteconv leaves nothing behind.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
