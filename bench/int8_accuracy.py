#!/usr/bin/env python3
"""int8 doc_ori against f32 doc_ori on document pages it was not calibrated on.

Renders two disjoint sets of synthetic pages at the four orientations
(tools/render_pages.py, different seeds): a calibration set, and an
evaluation set to which a scan-like copy of every page is added (tilted by
up to 2 degrees, grey paper, noise, blur, JPEG quality 60), plus the four
example pages. Quantises the embedded doc_ori with `lcnet quantize --calib`
on the first set, runs `lcnet run --json --top 4` with f32 and int8 on the
second and compares: top-1 agreement overall and where f32's top-1
probability is at least 0.6, mean and max |prob difference| over all
classes, top-1 accuracy of each against the rotation the file was made at.

    pip install pillow numpy        # and Debian's fonts-dejavu-core
    cargo build --release
    python bench/int8_accuracy.py   # writes bench/results/int8_accuracy.{md,json}
"""
import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from serve_compare import cpu_name  # noqa: E402  (bench/ is this script's folder)


def render(out, pages, seed):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "render_pages.py"), "--out", out,
                    "--pages", str(pages), "--seed", str(seed)], check=True)
    return sorted(glob.glob(os.path.join(out, "*.png")))


def scan_like(path, out_dir, rng):
    """A copy that looks scanned: small tilt, grey paper, noise, blur, JPEG."""
    page = Image.open(path).convert("L")
    page = page.rotate(rng.uniform(-2, 2), resample=Image.BILINEAR, expand=True, fillcolor=255)
    pixels = np.asarray(page, dtype=np.float32) * rng.uniform(0.8, 0.95) + rng.uniform(0, 25)
    pixels += np.random.default_rng(rng.randrange(1 << 30)).normal(0, 8, pixels.shape)
    page = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    name = os.path.join(out_dir, "scan_" + os.path.splitext(os.path.basename(path))[0] + ".jpg")
    page.convert("RGB").save(name, quality=60)
    return name


def run(lcnet, weights, images):
    cmd = [lcnet, "run", "--json", "--top", "4", *(["--weights", weights] if weights else []), *images]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        row = json.loads(line)
        rows[row["file"]] = {c["label"]: c["prob"] for c in row["top"]}
    return rows


def truth(path):
    return os.path.splitext(os.path.basename(path))[0].rsplit("_", 1)[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lcnet", default=os.path.join(ROOT, "target", "release", "lcnet"))
    ap.add_argument("--calib-pages", type=int, default=8, help="pages rendered for calibration (x4 rotations)")
    ap.add_argument("--eval-pages", type=int, default=25, help="pages rendered for evaluation (x4 rotations, x2 with scans)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="lcnet-int8-")
    calib = render(os.path.join(work, "calib"), args.calib_pages, seed=100)
    rendered = render(os.path.join(work, "eval"), args.eval_pages, seed=500)
    rng = random.Random(42)
    scans = [scan_like(p, os.path.join(work, "eval"), rng) for p in rendered]
    examples = sorted(glob.glob(os.path.join(ROOT, "examples", "pages", "*.png")))
    images = rendered + scans + examples
    int8 = os.path.join(work, "doc_ori.int8.safetensors")
    subprocess.run([args.lcnet, "quantize", "--model", "doc_ori", "--calib", os.path.join(work, "calib"), "-o", int8],
                   check=True)
    f32, q8 = run(args.lcnet, None, images), run(args.lcnet, int8, images)
    top = lambda probs: max(probs, key=probs.get)
    same = [top(f32[i]) == top(q8[i]) for i in images]
    confident = [i for i in images if max(f32[i].values()) >= 0.6]
    diffs = [abs(f32[i][k] - q8[i][k]) for i in images for k in f32[i]]
    result = {
        "cpu": cpu_name(),
        "calibration_images": len(calib),
        "evaluation_images": len(images),
        "scan_like": len(scans),
        "top1_agreement": sum(same) / len(images),
        "confident_images": len(confident),
        "confident_agreement": sum(top(f32[i]) == top(q8[i]) for i in confident) / max(1, len(confident)),
        "mean_abs_prob_diff": float(np.mean(diffs)),
        "max_abs_prob_diff": float(np.max(diffs)),
        "f32_accuracy": sum(top(f32[i]) == truth(i) for i in images) / len(images),
        "int8_accuracy": sum(top(q8[i]) == truth(i) for i in images) / len(images),
        "int8_bytes": os.path.getsize(int8),
        "f32_bytes": os.path.getsize(os.path.join(ROOT, "lcnet-zoo", "models", "doc_ori.safetensors")),
        "disagreements": [os.path.basename(i) for i, s in zip(images, same) if not s],
    }
    text = "\n".join([
        f"`python bench/int8_accuracy.py`, {result['cpu']}: doc_ori quantised on {len(calib)} rendered pages, "
        f"evaluated on {len(images)} others ({len(rendered)} rendered, {len(scans)} scan-like copies, "
        f"{len(examples)} example pages).",
        "",
        "| top-1 agreement | where f32 top-1 >= 0.6 | mean abs prob diff | max abs prob diff | f32 accuracy | int8 accuracy | int8 file / f32 file |",
        "|---|---|---|---|---|---|---|",
        f"| {sum(same)}/{len(images)} ({100 * result['top1_agreement']:.1f} %) | "
        f"{sum(top(f32[i]) == top(q8[i]) for i in confident)}/{len(confident)} | {result['mean_abs_prob_diff']:.4f} | "
        f"{result['max_abs_prob_diff']:.4f} | {100 * result['f32_accuracy']:.1f} % | {100 * result['int8_accuracy']:.1f} % | "
        f"{100 * result['int8_bytes'] / result['f32_bytes']:.0f} % |",
        "",
    ])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "int8_accuracy.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "int8_accuracy.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
