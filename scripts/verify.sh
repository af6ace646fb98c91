#!/usr/bin/env bash
# `make verify`: export the reference checkpoints to every format this machine can check, then run
# `matteconv verify --require ...` on the committed golden sets. Exits non-zero on any regression.
set -euo pipefail
OUT=${1:-build}
MC=${MC:-.venv/bin/matteconv}
mkdir -p "$OUT"

# 3-channel photos at 512x512: torch, onnx, caffe (both targets), aipp (NV21 camera frames)
$MC golden checkpoint --in-channels 3 -o "$OUT/ref3.ckpt"
$MC export "$OUT/ref3.ckpt" --to onnx -o "$OUT/ref3.onnx" --size 512
$MC export "$OUT/ref3.ckpt" --to caffe --target ascend -o "$OUT/ref3_ascend" --size 512
$MC export "$OUT/ref3.ckpt" --to caffe --target bvlc -o "$OUT/ref3_bvlc" --size 512
$MC verify --golden golden/photos --onnx "$OUT/ref3.onnx" --caffe "$OUT/ref3_ascend.prototxt" \
  --aipp aipp/nv21_512.cfg --fp16 --require torch --require onnx --require caffe --require aipp \
  --json "$OUT/verify_photos.json" --junit "$OUT/verify_photos.xml"
$MC verify --golden golden/photos --caffe "$OUT/ref3_bvlc.prototxt" --require caffe

# 4-channel temporal clip at 320x320: split inputs (image through AIPP, prev_alpha plain)
$MC golden checkpoint --in-channels 4 -o "$OUT/ref4.ckpt"
$MC export "$OUT/ref4.ckpt" --to onnx --split-inputs -o "$OUT/ref4.onnx" --size 320
$MC export "$OUT/ref4.ckpt" --to caffe --target ascend --split-inputs -o "$OUT/ref4_ascend" --size 320
$MC verify --golden golden/clip --onnx "$OUT/ref4.onnx" --caffe "$OUT/ref4_ascend.prototxt" \
  --aipp aipp/nv21_320.cfg --fp16 --require torch --require onnx --require caffe --require aipp \
  --json "$OUT/verify_clip.json" --junit "$OUT/verify_clip.xml"

# golden/hard (hard camera frames, 288x512; `matteconv golden hard` makes it): flat, dark, bright, low-contrast
# and empty stills with the 3-channel reference, every Caffe target; the enter-stay-leave-empty clip with the
# 4-channel reference. aipp on both, at the mean the two decoders' rounding allows (verify/golden.py HARD_AIPP:
# AIPP floors where OpenCV rounds, 1 LSB on clipped white).
$MC export "$OUT/ref3.ckpt" --to onnx -o "$OUT/ref3_hard.onnx" --size 288x512
for t in ascend bvlc ddk; do
  $MC export "$OUT/ref3.ckpt" --to caffe --target $t -o "$OUT/ref3_hard_$t" --size 288x512
done
$MC verify --golden golden/hard/stills --onnx "$OUT/ref3_hard.onnx" --caffe "$OUT/ref3_hard_ascend.prototxt" \
  --aipp aipp/nv21_288x512.cfg --fp16 --require torch --require onnx --require caffe --require aipp \
  --json "$OUT/verify_hard.json" --junit "$OUT/verify_hard.xml"
for t in bvlc ddk; do
  $MC verify --golden golden/hard/stills --caffe "$OUT/ref3_hard_$t.prototxt" --require caffe
done
$MC export "$OUT/ref4.ckpt" --to onnx --split-inputs -o "$OUT/ref4_hard.onnx" --size 288x512
$MC export "$OUT/ref4.ckpt" --to caffe --target ascend --split-inputs -o "$OUT/ref4_hard_ascend" --size 288x512
$MC verify --golden golden/hard/clip --onnx "$OUT/ref4_hard.onnx" --caffe "$OUT/ref4_hard_ascend.prototxt" \
  --aipp aipp/nv21_288x512.cfg --fp16 --require torch --require onnx --require caffe --require aipp \
  --json "$OUT/verify_hard_clip.json" --junit "$OUT/verify_hard_clip.xml"
