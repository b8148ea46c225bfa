#!/usr/bin/env python3
"""PaddleClas reference for a head without its 1x1 conv (use_last_conv=False).

Writes lcnet-zoo/tests/heads/x0_25_c3_64x64_nolastconv.{weights,io}.safetensors:
PaddleClas's own PPLCNet(scale=0.25, class_num=3, use_last_conv=False) with
randomised BN/SE/FC (as the fixture generator does), and its logits on a
2x3x64x64 input. `lcnet-zoo/tests/custom_heads.rs` builds the same network
from an inline table with `[head] conv = false` and compares.

    pip install paddlepaddle==3.3.1 numpy safetensors
    python tools/gen_head_ref.py
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools", "ref"))
import pplcnet_ref as R  # noqa: E402

OUT = os.path.join(HERE, "..", "lcnet-zoo", "tests", "heads")


def main():
    import paddle

    mod = R.load_pp_lcnet()
    paddle.seed(77)
    model = mod.PPLCNet(scale=0.25, class_num=3, use_last_conv=False)
    model.eval()
    rng = np.random.default_rng(77)
    R.randomize_(model, rng, rng.standard_normal((4, 3, 64, 64)).astype(np.float32))
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x)).numpy()
    counts = R.count_params_macs(model, 64, 64)
    meta = {"use_last_conv": "False", "params": str(counts["params_trainable"]), "macs": str(counts["macs"]),
            "paddle": paddle.__version__}
    os.makedirs(OUT, exist_ok=True)
    name = os.path.join(OUT, "x0_25_c3_64x64_nolastconv")
    R.save_safetensors(R.state_dict_numpy(model), name + ".weights.safetensors", meta)
    R.save_safetensors({"input": x, "logits": logits}, name + ".io.safetensors", meta)
    print(meta, logits)


if __name__ == "__main__":
    main()
