"""matteconv: MODNet from a PyTorch checkpoint to ONNX, Caffe and Ascend .om, verified at every hop."""
__version__ = "0.1.0"
