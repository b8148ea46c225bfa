#!/usr/bin/env python3
"""Small files for the CLI tests in tests/data/ (deterministic).

- not_pplcnet.onnx: a valid ONNX classifier that is not a PP-LCNet
  (Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm), for the importer's
  "which node did not match" error.
- page_exif6.jpg: examples/pages/page_0.png stored turned 90 degrees
  counter-clockwise with EXIF Orientation = 6 ("rotate 90 clockwise to
  display"): upright once EXIF is applied, "270" when it is ignored.

    pip install onnx Pillow numpy
    python tools/make_test_data.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "data")


def not_pplcnet():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "fc")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [w, fc, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="lcnet-tests")
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, "not_pplcnet.onnx"))


def exif_page():
    page = Image.open(os.path.join(ROOT, "examples", "pages", "page_0.png")).convert("RGB")
    page = page.resize((page.width // 2, page.height // 2), Image.BILINEAR)
    stored = page.rotate(90, expand=True)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(os.path.join(OUT, "page_exif6.jpg"), quality=90, exif=exif.tobytes())


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    not_pplcnet()
    exif_page()
