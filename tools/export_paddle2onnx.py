#!/usr/bin/env python3
"""Export a golden PaddleClas case to ONNX with paddle2onnx, as PaddleX does.

Builds PaddleClas's own PPLCNet (via ../shared/tools/ref/pplcnet_ref.py),
loads <case>.weights.safetensors, and writes <case>.onnx through
`paddle.onnx.export` (paddle2onnx), then checks ONNX Runtime on the case's
input against the case's PaddleClas logits. The repo's importer test
(`tests/import.rs`) converts that ONNX with `lcnet import` and compares.

    pip install paddlepaddle==3.3.1 paddle2onnx onnxruntime safetensors
    python tools/export_paddle2onnx.py lcnet-zoo/tests/golden/x0_25_c2_80x160
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools", "ref"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", help="path prefix of <case>.weights.safetensors / <case>.io.safetensors")
    args = ap.parse_args()

    import paddle
    import onnxruntime as ort
    from safetensors.numpy import load_file
    import pplcnet_ref as R

    weights = load_file(args.case + ".weights.safetensors")
    io = load_file(args.case + ".io.safetensors")
    scale = {8: 0.25, 16: 0.5, 24: 0.75, 32: 1.0}.get(weights["conv1.conv.weight"].shape[0])
    if "blocks6.1.pw_conv.conv.weight" in weights and weights["blocks6.1.pw_conv.conv.weight"].shape[0] == 176:
        scale = 0.35
    classes = weights["fc.weight"].shape[1]
    mod = R.load_pp_lcnet()
    model = mod.PPLCNet(scale=scale, class_num=classes)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    model.eval()
    x = io["input"]
    spec = [paddle.static.InputSpec(shape=[None, 3, x.shape[2], x.shape[3]], dtype="float32", name="x")]
    paddle.onnx.export(model, args.case, input_spec=spec, opset_version=15)
    sess = ort.InferenceSession(args.case + ".onnx", providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x})[0]
    err = float(np.abs(got - io["logits"]).max())
    print(f"{args.case}.onnx: ORT vs PaddleClas logits max |d| = {err:.2e}")
    assert err <= 1e-4 * max(1.0, float(np.abs(io["logits"]).max()))


if __name__ == "__main__":
    main()
