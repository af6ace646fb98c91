#!/usr/bin/env bash
# `make demo`: the whole job on built-in data, from nothing: a few training steps; the official MODNet (brought by
# `make install`) imported -> ONNX and Caffe -> AIPP config -> `om` (stand-in atc without CANN) -> verify on real
# photos (every stage this machine can run, HTML report with the cut-outs) -> real photos matted; the temporal
# model grown from the official weights on the golden clip and in the generated HiLens app.
set -euo pipefail
OUT=${1:-build/demo}
MC=${MC:-.venv/bin/matteconv}
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "train: 4 steps on the built-in synthetic set (the references were trained by scripts/train-references.sh)"
$MC train --steps 4 --size 128 --optimizer adam --lr 1e-3 --threads 2 -o "$OUT/train_demo.safetensors"

step "the official MODNet: its ONNX (from make install, sha256-checked) imported back into a checkpoint"
OFFICIAL=${XDG_CACHE_HOME:-$HOME/.cache}/matteconv/official
if [ ! -f "$OFFICIAL/modnet.onnx" ]; then
  echo "error: $OFFICIAL/modnet.onnx: the official MODNet is not installed: run make install" >&2
  exit 2
fi
$MC import "$OFFICIAL/modnet.onnx" -o "$OUT/modnet_official.safetensors"

step "the temporal model (4 channels: image + previous alpha), grown from the official weights"
# make install rebuilt it from the official checkpoint and the committed 147 KB delta (docs/temporal.md)
TEMPORAL="$OFFICIAL/modnet_temporal.safetensors"
if [ ! -f "$TEMPORAL" ]; then
  echo "error: $TEMPORAL: the temporal model is not built: run make install" >&2
  exit 2
fi

step "export: ONNX and Caffe (Ascend target)"
$MC export "$OUT/modnet_official.safetensors" --to onnx -o "$OUT/modnet_official.onnx" --size 384
$MC export "$OUT/modnet_official.safetensors" --to caffe --target ascend -o "$OUT/modnet_official" --size 384
$MC export "$TEMPORAL" --to onnx --split-inputs -o "$OUT/modnet_temporal.onnx" --size 320

step "AIPP config for NV21 camera frames, and the .om build command"
$MC aipp --input-format nv21 --size 384 -o "$OUT/aipp_nv21_384.cfg"
$MC om "$OUT/modnet_official.onnx" --aipp "$OUT/aipp_nv21_384.cfg" --soc-version Ascend310 --dry-run -o "$OUT/modnet_official"
# No CANN toolkit can exist here: the real `atc` runs only where `matteconv doctor` finds one. The .om itself is
# built by the stand-in atc (tests/fakes/atc: it checks the arguments and writes a placeholder .om), so the steps
# after it run; verify's om stage then says "skipped: no Ascend runtime found" (no msame/ais_bench here), and the
# .om is judged by its host prediction instead (the fp16-* stages: the fp16 device model).
PY=${PY:-$(dirname "$MC")/python}
rm -rf "$OUT/stand-in-atc"
$PY -c 'import sys; from pathlib import Path; sys.path.insert(0, "tests"); import fakes; fakes.install("atc", Path(sys.argv[1]))' \
  "$OUT/stand-in-atc"
if command -v atc >/dev/null 2>&1; then
  echo "atc found on PATH: the real atc builds $OUT/modnet_official.om"
  $MC om "$OUT/modnet_official.onnx" --aipp "$OUT/aipp_nv21_384.cfg" --soc-version Ascend310 -o "$OUT/modnet_official"
else
  echo "atc: skipped: no CANN toolkit here; $OUT/modnet_official.om is built by the stand-in atc (a placeholder, not a model)"
  PATH="$OUT/stand-in-atc:$PATH" $MC om "$OUT/modnet_official.onnx" --aipp "$OUT/aipp_nv21_384.cfg" --soc-version Ascend310 \
    -o "$OUT/modnet_official"
fi

step "the .om's speed on the Ascend 310, predicted on this host (matteconv profile: a cost model, not a board)"
$MC profile "$OUT/modnet_official.onnx" --aipp "$OUT/aipp_nv21_384.cfg" --fps 25 --top 5

step "verify every stage against the golden alpha mattes (the .om: on a device if one is here, else predicted)"
$MC verify --golden golden/real/384 --onnx "$OUT/modnet_official.onnx" --caffe "$OUT/modnet_official.prototxt" \
  --aipp "$OUT/aipp_nv21_384.cfg" --om "$OUT/modnet_official.om" --fp16 \
  --html "$OUT/verify.html" --json "$OUT/verify.json" | tee "$OUT/verify.txt"

step "matte real photos with the official model (background replacement)"
rm -rf "$OUT/photos_matted"
$MC matte golden/real/official/inputs --model "$OUT/modnet_official.onnx" --background "#2e8b57" --side-by-side \
  -o "$OUT/photos_matted"

step "matte the golden clip with the temporal model (background replacement, side by side)"
rm -rf "$OUT/clip_matted"
$MC matte golden/clip/inputs --model "$OUT/modnet_temporal.onnx" --background "#2e8b57" --side-by-side \
  -o "$OUT/clip_matted"

# --- deploy (issue 11): the HiLens skill for the temporal model, run on this host against stand-in devices ----
step "deploy: HiLens skill for the temporal model, simulated on the clip (stand-in atc + HiLens; no device here)"
rm -rf "$OUT/hilens_skill" "$OUT/hilens_skill.zip" "$OUT/hilens_sim.mp4"
PATH="$OUT/stand-in-atc:$PATH" $MC om "$OUT/modnet_temporal.onnx" --aipp aipp/nv21_320.cfg -o "$OUT/modnet_temporal_320"
$MC deploy "$OUT/modnet_temporal_320.om" --runtime hilens --background "#2e8b57" --side-by-side -o "$OUT/hilens_skill" \
  --simulate golden/clip/inputs --sim-output "$OUT/hilens_sim.mp4" --report-every 5

step "verify table"
cat "$OUT/verify.txt"

step "artifacts"
for f in modnet_official.safetensors modnet_official.onnx modnet_official.prototxt modnet_official.caffemodel aipp_nv21_384.cfg \
         modnet_official.om verify.html verify.json photos_matted clip_matted modnet_temporal.onnx modnet_temporal_320.om; do
  printf '  %-26s %s\n' "$f" "$OUT/$f"
done
printf '  %-26s %s\n' "HiLens skill" "$OUT/hilens_skill (archive $OUT/hilens_skill.zip)" "simulated" "$OUT/hilens_sim.mp4"
echo "  (the .om files come from the stand-in atc unless a CANN toolkit was found: see above)"
