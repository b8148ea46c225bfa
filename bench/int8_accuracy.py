#!/usr/bin/env python3
"""int8 against f32 on images the int8 model was not calibrated on: doc_ori and textline_ori.

doc_ori: renders two disjoint sets of synthetic pages at the four
orientations (tools/render_pages.py, different seeds): a calibration set,
and an evaluation set to which a scan-like copy of every page is added
(tilted by up to 2 degrees, grey paper, noise, blur, JPEG quality 60), plus
the four example pages. textline_ori: two disjoint sets of synthetic text
lines, upright and turned 180 degrees (tools/textline_reference.py render,
different seeds; fonts, sizes, dark and light, blur, noise, JPEG), plus the
32 lines of tests/data/textlines. Each embedded model is quantised with
`lcnet quantize --calib` on its first set; `lcnet run --json` with f32 and
int8 on the second gives: top-1 agreement overall and where f32's top-1
probability is at least 0.6, mean and max |prob difference| over all
classes, top-1 accuracy of each against the orientation the file was made
at.

    pip install pillow numpy        # and Debian's fonts-dejavu-core
    cargo build --release
    python bench/int8_accuracy.py   # writes bench/results/int8_accuracy.{md,json}
    python bench/int8_accuracy.py --reduce-range   # 7-bit pointwise weights: int8_accuracy_reduce_range.*
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


def render_lines(out, count, seed):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "textline_reference.py"), "render", out,
                    "--count", str(count), "--seed", str(seed)], check=True)
    return sorted(glob.glob(os.path.join(out, "line*")))


def run(lcnet, model, weights, images):
    cmd = [lcnet, "run", "--json", "--top", "4", *(["--weights", weights] if weights else ["--model", model]), *images]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        row = json.loads(line)
        rows[row["file"]] = {c["label"].split("_")[0]: c["prob"] for c in row["top"]}
    return rows


def truth(path):
    return os.path.splitext(os.path.basename(path))[0].rsplit("_", 1)[1]


def evaluate(args, model, work):
    """Quantises `model`, compares int8 with f32; returns the result row."""
    if model == "doc_ori":
        calib = render(os.path.join(work, "calib"), args.calib_pages, seed=100)
        rendered = render(os.path.join(work, "eval"), args.eval_pages, seed=500)
        rng = random.Random(42)
        extra = [scan_like(p, os.path.join(work, "eval"), rng) for p in rendered]
        examples = sorted(glob.glob(os.path.join(ROOT, "examples", "pages", "*.png")))
        what = f"{len(rendered)} rendered pages, {len(extra)} scan-like copies, {len(examples)} example pages"
    else:
        calib = render_lines(os.path.join(work, "calib"), args.calib_lines, seed=100)
        rendered = render_lines(os.path.join(work, "eval"), args.eval_lines, seed=500)
        extra = []
        examples = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "textlines", "line*")))
        what = f"{len(rendered)} rendered lines, {len(examples)} lines of tests/data/textlines"
    images = rendered + extra + examples
    int8 = os.path.join(work, f"{model}.int8.safetensors")
    subprocess.run([args.lcnet, "quantize", "--model", model, "--calib", os.path.join(work, "calib"), "-o", int8,
                    *(["--reduce-range"] if args.reduce_range else [])], check=True)
    f32, q8 = run(args.lcnet, model, None, images), run(args.lcnet, model, int8, images)
    top = lambda probs: max(probs, key=probs.get)
    same = [top(f32[i]) == top(q8[i]) for i in images]
    confident = [i for i in images if max(f32[i].values()) >= 0.6]
    diffs = [abs(f32[i][k] - q8[i][k]) for i in images for k in f32[i]]
    return {
        "model": model,
        "calibration_images": len(calib),
        "evaluation_images": len(images),
        "evaluation_set": what,
        "top1_agreement": sum(same) / len(images),
        "agree": sum(same),
        "confident_images": len(confident),
        "confident_agree": sum(top(f32[i]) == top(q8[i]) for i in confident),
        "mean_abs_prob_diff": float(np.mean(diffs)),
        "max_abs_prob_diff": float(np.max(diffs)),
        "f32_accuracy": sum(top(f32[i]) == truth(i) for i in images) / len(images),
        "int8_accuracy": sum(top(q8[i]) == truth(i) for i in images) / len(images),
        "int8_bytes": os.path.getsize(int8),
        "f32_bytes": os.path.getsize(os.path.join(ROOT, "lcnet-zoo", "models", f"{model}.safetensors")),
        "disagreements": [os.path.basename(i) for i, s in zip(images, same) if not s],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lcnet", default=os.path.join(ROOT, "target", "release", "lcnet"))
    ap.add_argument("--models", nargs="+", default=["doc_ori", "textline_ori"], choices=["doc_ori", "textline_ori"])
    ap.add_argument("--calib-pages", type=int, default=8, help="pages rendered for calibration (x4 rotations)")
    ap.add_argument("--eval-pages", type=int, default=25, help="pages rendered for evaluation (x4 rotations, x2 with scans)")
    ap.add_argument("--calib-lines", type=int, default=16, help="text lines rendered for calibration (x2 orientations)")
    ap.add_argument("--eval-lines", type=int, default=60, help="text lines rendered for evaluation (x2 orientations)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--reduce-range", action="store_true",
                    help="quantise with --reduce-range (7-bit pointwise weights); writes int8_accuracy_reduce_range.{md,json}")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="lcnet-int8-")
    results = [evaluate(args, m, os.path.join(work, m)) for m in args.models]
    command = "python bench/int8_accuracy.py" + (" --reduce-range" if args.reduce_range else "")
    lines = [f"`{command}`, {cpu_name()}: each model quantised on its calibration images"
             + (" (`lcnet quantize --reduce-range`: pointwise weights in -64..=64)" if args.reduce_range else "")
             + ", evaluated on others.", "",
             "| model | calibration | evaluation | top-1 agreement | where f32 top-1 >= 0.6 | mean abs prob diff | "
             "max abs prob diff | f32 accuracy | int8 accuracy | int8 file / f32 file |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        n = r["evaluation_images"]
        lines.append(
            f"| {r['model']} | {r['calibration_images']} | {n}: {r['evaluation_set']} | {r['agree']}/{n} "
            f"({100 * r['top1_agreement']:.1f} %) | {r['confident_agree']}/{r['confident_images']} | "
            f"{r['mean_abs_prob_diff']:.4f} | {r['max_abs_prob_diff']:.4f} | {100 * r['f32_accuracy']:.1f} % | "
            f"{100 * r['int8_accuracy']:.1f} % | {100 * r['int8_bytes'] / r['f32_bytes']:.0f} % |")
    lines.append("")
    text = "\n".join(lines)
    os.makedirs(args.out, exist_ok=True)
    stem = "int8_accuracy" + ("_reduce_range" if args.reduce_range else "")
    with open(os.path.join(args.out, stem + ".json"), "w") as f:
        json.dump({"cpu": cpu_name(), "reduce_range": args.reduce_range, "results": results}, f, indent=1)
    with open(os.path.join(args.out, stem + ".md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
