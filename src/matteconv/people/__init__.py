"""Clips of real people for the temporal model: package photos (photos.py), people cut out by a matting model
(cutout.py), moved over real backgrounds (clips.py); the held-out measurement (evaluate.py).
Imports one way: train/ uses this package, this package never imports train/."""
