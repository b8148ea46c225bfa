#!/usr/bin/env python3
"""PaddleClas reference for examples/custom-net: a text-line orientation net.

PaddleX's PP-LCNet_x0_25_textline_ori is PaddleClas's PPLCNet with
scale=0.25, class_num=2 and stride_list=[2, [2, 1], [2, 1], [2, 1], [2, 1]]
on 80x160 inputs. This builds exactly that with PaddleClas's own pp_lcnet.py
(via ../shared/tools/ref/pplcnet_ref.py), randomises its BatchNorm/SE/head
like the fixture generator does, and writes

  examples/custom-net/data/textline.weights.safetensors  (state dict)
  examples/custom-net/data/textline.io.safetensors       (input [2,3,80,160], logits)

plus the exact parameter and MAC counts, which the example checks against
its generated PARAMS/MACS.

    pip install paddlepaddle==3.3.1 numpy safetensors
    python tools/gen_textline_ref.py
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools", "ref"))
import pplcnet_ref as R  # noqa: E402

OUT = os.path.join(HERE, "..", "examples", "custom-net", "data")
STRIDES = [2, [2, 1], [2, 1], [2, 1], [2, 1]]


def main():
    import copy
    import paddle

    mod = R.load_pp_lcnet()
    saved = copy.deepcopy(mod.NET_CONFIG)
    paddle.seed(2024)
    try:
        model = mod.PPLCNet(scale=0.25, class_num=2, stride_list=STRIDES)
    finally:
        # PPLCNet writes stride_list into the module-global NET_CONFIG.
        mod.NET_CONFIG.clear()
        mod.NET_CONFIG.update(saved)
    model.eval()
    rng = np.random.default_rng(2024)
    calib = rng.standard_normal((4, 3, 80, 160)).astype(np.float32)
    R.randomize_(model, rng, calib)
    x = rng.standard_normal((2, 3, 80, 160)).astype(np.float32)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x)).numpy()
    counts = R.count_params_macs(model, 80, 160)
    os.makedirs(OUT, exist_ok=True)
    meta = {"scale": "0.25", "class_num": "2", "stride_list": json.dumps(STRIDES),
            "params": str(counts["params_trainable"]), "macs": str(counts["macs"]), "paddle": paddle.__version__,
            "pp_lcnet_py_sha256": mod.__ref_sha256__}
    R.save_safetensors(R.state_dict_numpy(model), os.path.join(OUT, "textline.weights.safetensors"), meta)
    R.save_safetensors({"input": x, "logits": logits}, os.path.join(OUT, "textline.io.safetensors"), meta)
    print(json.dumps({"logits": logits.tolist(), **meta}))


if __name__ == "__main__":
    main()
