"""Ascend tooling: find atc/omg (discover), build their exact argv after checking the model for known traps
(rules, command), run them with a kept log and an atomic .om (build), run .om files on the device through msame or
ais_bench (runners), and predict the .om's speed (profile). The compilers' operator lists (caffe_oplist,
onnx_oplist) and what a model holds (ops) are data the lower layers read too, so this package's __init__ imports
nothing: `import matteconv.ascend.caffe_oplist` runs no atc driver (tests/test_layers.py)."""
