#!/usr/bin/env python3
"""Checkpoints in every format lcnet reads, each with its own library's logits.

Writes lcnet-zoo/tests/formats/ (read by lcnet-zoo/tests/formats.rs and
tests/verify.rs; this script is not needed at test time):

* `x0_25_c10.pdparams`, `x0_35_c4.pdparams`: PaddleClas's own PPLCNet
  (`pp_lcnet.py` of PaddleClas 2.6.0, randomised BN/SE/FC as the fixture
  generator does) written by PaddlePaddle's `paddle.save(model.state_dict())`:
  a protocol-4 pickle of numpy arrays, with Paddle's
  `StructuredToParameterName@@` entry; `x0_25_c10.protocol2.pdparams` is the
  same model with `protocol=2`.
* `timm_lcnet_035_c5.safetensors`: timm's `lcnet_035` (5 classes; timm's
  names, `conv_head` with a bias, `classifier` stored [out, in], no dropout
  scaling at inference), `safetensors.torch.save_file(model.state_dict())`,
  i.e. what timm's hub checkpoints hold.
* `hf_pp_lcnet_x0_25_c3/`: transformers' `PPLCNetForImageClassification`
  (scale 0.25, 3 labels) written by `save_pretrained` (model.safetensors +
  config.json).

and for each `<name>.io.safetensors` with `input` (NCHW) and `logits` computed
by the library that owns the format. BatchNorm statistics and biases are
randomised so that a wrong mapping (a transposed FC, a missing bias, the wrong
dropout scale, mixed-up BN tensors) changes the logits.

    pip install paddlepaddle==3.3.1 torch==2.15.0 torchvision timm==1.0.31 \
        transformers==5.24.0 safetensors numpy
    python tools/gen_checkpoints.py
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools", "ref"))
import pplcnet_ref as R  # noqa: E402

OUT = os.path.join(HERE, "..", "lcnet-zoo", "tests", "formats")


def paddle_checkpoints():
    import paddle

    mod = R.load_pp_lcnet()
    for scale, classes, (h, w), seed in [(0.25, 10, (64, 64), 11), (0.35, 4, (48, 80), 12)]:
        paddle.seed(seed)
        model = mod.PPLCNet(scale=scale, class_num=classes)
        model.eval()
        rng = np.random.default_rng(seed)
        R.randomize_(model, rng, rng.standard_normal((4, 3, h, w)).astype(np.float32))
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        with paddle.no_grad():
            logits = model(paddle.to_tensor(x)).numpy()
        name = os.path.join(OUT, f"x{str(scale).replace('.', '_')}_c{classes}")
        paddle.save(model.state_dict(), name + ".pdparams")
        if scale == 0.25:
            # Protocol 2, as older Paddle releases wrote: text GLOBAL and BINPUT opcodes.
            paddle.save(model.state_dict(), name + ".protocol2.pdparams", protocol=2)
        R.save_safetensors({"input": x, "logits": logits}, name + ".io.safetensors",
                           {"source": "PaddleClas PPLCNet", "paddle": paddle.__version__})
        print(name, logits.shape, float(np.abs(logits).max()))


def randomize_torch_(model, seed):
    """Random BN statistics and affine terms, random biases (torch modules)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)


def timm_checkpoint():
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(21)
    model = timm.create_model("lcnet_035", pretrained=False, num_classes=5).eval()
    randomize_torch_(model, 21)
    x = np.random.default_rng(21).standard_normal((2, 3, 56, 72)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    name = os.path.join(OUT, "timm_lcnet_035_c5")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, name + ".safetensors")
    R.save_safetensors({"input": x, "logits": logits}, name + ".io.safetensors",
                       {"source": "timm lcnet_035", "timm": timm.__version__, "torch": torch.__version__})
    print(name, logits.shape, float(np.abs(logits).max()))


def hf_checkpoint():
    import torch
    import transformers
    from transformers import PPLCNetConfig, PPLCNetForImageClassification

    torch.manual_seed(31)
    config = PPLCNetConfig(scale=0.25, num_labels=3)
    model = PPLCNetForImageClassification(config).eval()
    randomize_torch_(model, 31)
    x = np.random.default_rng(31).standard_normal((2, 3, 64, 48)).astype(np.float32)
    with torch.no_grad():
        logits = model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    name = os.path.join(OUT, "hf_pp_lcnet_x0_25_c3")
    model.save_pretrained(name)
    R.save_safetensors({"input": x, "logits": logits}, name + ".io.safetensors",
                       {"source": "transformers PPLCNetForImageClassification",
                        "transformers": transformers.__version__, "torch": torch.__version__})
    print(name, logits.shape, float(np.abs(logits).max()))


def main():
    os.makedirs(OUT, exist_ok=True)
    paddle_checkpoints()
    timm_checkpoint()
    hf_checkpoint()


if __name__ == "__main__":
    main()
