"""The generated device app's files, copied verbatim by `matteconv deploy` (this __init__ is not copied: on the
board they are top-level modules beside main.py). Python 3.7, numpy and OpenCV only."""
