#!/usr/bin/env bash
# The trained reference checkpoints in src/matteconv/references/, made with exactly these commands on the
# project's machine (2 cores). They are references for numerics and demos, trained on the built-in synthetic
# set only: not a production matting model. Adam instead of the official SGD because there is no ImageNet-
# pretrained backbone here and the budget is about an hour per model; the schedule is StepLR as in the official
# trainer. Weights are stored as float16 (both files together must stay under 30 MB); they load exactly.
#   ref3: 1500 steps, batch 4 at 256x256       ref4: widened from ref3 (zero weights for the previous alpha),
#                                                     600 steps with the seed's temporal augmentations
set -euo pipefail
OUT=${1:-src/matteconv/references}
MC=${MC:-.venv/bin/matteconv}
mkdir -p "$OUT"
COMMON=(--batch-size 4 --size 256 --optimizer adam --lr 1e-3 --lr-step 0.35 --lr-gamma 0.3 --threads 2 --half
        --save-every 100 --json)
time $MC train --in-channels 3 --steps 1500 --seed 0 "${COMMON[@]}" -o "$OUT/modnet_ref3.safetensors"
time $MC train --in-channels 4 --init "$OUT/modnet_ref3.safetensors" --steps 600 --seed 1 "${COMMON[@]}" \
  -o "$OUT/modnet_ref4.safetensors"
