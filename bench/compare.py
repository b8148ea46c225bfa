#!/usr/bin/env python3
"""lcnet vs ONNX Runtime, side by side on this machine, same weights.

For every width, the ONNX model comes from the reference tools
(`../shared/tools/ref/to_onnx.py bench`: PaddleClas PPLCNet, 1000 classes,
224x224, BatchNorm folded); `lcnet import` converts that very file, so both
engines run identical weights. Then, in each of --rounds rounds, every
configuration (width x batch x threads) is timed with ONNX Runtime (in this
process, `InferenceSession.run`, intra-op threads = T) and with
`lcnet bench --json` (a child process, rayon threads = T), back to back.
The ratio lcnet/ORT of the two medians is taken per round; the table reports
the median over rounds (absolute times drift on a shared VM, ratios hold).

    pip install onnxruntime==1.32.0 numpy onnx paddlepaddle==3.3.1 safetensors
    cargo build --release
    python bench/compare.py                        # all widths, b1/b8, 1/2 threads -> bench/results/
    python bench/compare.py --widths 1.0 --batches 1 --threads 1 --rounds 3   # quick

paddlepaddle is only needed once, to build the ONNX models in --onnx-dir
(PaddleClas's own network makes them); later runs reuse them. Writes
bench/results/compare.json, compare.md and latency.svg (ms/image per
width, batch 1, one thread, like the paper's latency figure).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF = os.path.join(ROOT, "..", "shared", "tools", "ref")
WIDTHS = ["0.25", "0.35", "0.5", "0.75", "1.0", "1.5", "2.0", "2.5"]


def tag(width):
    return "x" + width.replace(".", "_")


def ensure_models(args):
    os.makedirs(args.work, exist_ok=True)
    missing = [w for w in args.widths if not os.path.exists(onnx_path(args, w))]
    if missing:
        script = os.path.join(REF, "to_onnx.py")
        if not os.path.exists(script):
            sys.exit(
                f"compare.py: no ONNX models for widths {', '.join(missing)} in {args.onnx_dir}, and no "
                f"{os.path.normpath(script)} to build them (the reference tools sit in ../shared next to "
                "this repository); pass --onnx-dir with pplcnet_x*_c1000_224.onnx files"
            )
        print(f"building ONNX models with {REF}/to_onnx.py bench ...", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(REF, "to_onnx.py"), "bench", "--out", args.onnx_dir], check=True)
    for w in args.widths:
        st = os.path.join(args.work, f"pplcnet_{tag(w)}.safetensors")
        if not os.path.exists(st):
            subprocess.run([args.lcnet, "import", onnx_path(args, w), "-o", st], check=True, stdout=subprocess.DEVNULL)


def onnx_path(args, w):
    return os.path.join(args.onnx_dir, f"pplcnet_{tag(w)}_c1000_224.onnx")


def ort_time(sess, x, iters):
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    t = []
    for _ in range(iters):
        s = time.perf_counter()
        sess.run(None, {name: x})
        t.append((time.perf_counter() - s) * 1e3)
    return statistics.median(t), min(t)


def lcnet_time(args, w, batch, threads, iters):
    st = os.path.join(args.work, f"pplcnet_{tag(w)}.safetensors")
    out = subprocess.run(
        [args.lcnet, "bench", "--weights", st, "--batch", str(batch), "--threads", str(threads),
         "--iters", str(iters), "--warmup", "3", "--json"],
        check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    return r["median_ms"], r["min_ms"], r["isa"]


def svg_chart(rows, path):
    """ms/image vs width, batch 1, 1 thread, both engines (hand-written SVG)."""
    pts = [(float(r["width"]), r["ort_ms"] / r["batch"], r["lcnet_ms"] / r["batch"]) for r in rows
           if r["batch"] == 1 and r["threads"] == 1]
    if not pts:
        return
    W, H, L, B, T, R = 640, 400, 60, 50, 30, 150
    xmax = max(p[0] for p in pts) * 1.05
    ymax = max(max(p[1], p[2]) for p in pts) * 1.1
    X = lambda v: L + v / xmax * (W - L - R)
    Y = lambda v: H - B - v / ymax * (H - B - T)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
             f'<text x="{(W-R+L)/2}" y="{H-12}" text-anchor="middle">width multiplier</text>',
             f'<text x="16" y="{(H-B+T)/2}" transform="rotate(-90 16 {(H-B+T)/2})" text-anchor="middle">ms / image (batch 1, 1 thread)</text>']
    for i in range(6):
        v = ymax * i / 5
        parts.append(f'<text x="{L-6}" y="{Y(v)+4}" text-anchor="end">{v:.1f}</text>')
        parts.append(f'<line x1="{L}" y1="{Y(v)}" x2="{W-R}" y2="{Y(v)}" stroke="#ddd"/>')
    for p in pts:
        parts.append(f'<text x="{X(p[0])}" y="{H-B+16}" text-anchor="middle">{p[0]:g}</text>')
    for idx, (name, color) in enumerate([("ONNX Runtime", "#d62728"), ("lcnet", "#1f77b4")]):
        line = " ".join(f"{X(p[0]):.1f},{Y(p[1+idx]):.1f}" for p in pts)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for p in pts:
            parts.append(f'<circle cx="{X(p[0]):.1f}" cy="{Y(p[1+idx]):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<rect x="{W-R+15}" y="{T+idx*20}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{W-R+32}" y="{T+idx*20+11}">{name}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", nargs="+", default=WIDTHS)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    # Many short rounds rather than a few long ones: the median over rounds
    # then shrugs off the minutes when a neighbour loads this shared VM.
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iters", type=int, default=15, help="timed runs per engine, configuration and round")
    ap.add_argument("--lcnet", default=os.path.join(ROOT, "target", "release", "lcnet"))
    ap.add_argument("--onnx-dir", default=os.path.join("/tmp", "onnx_bench"))
    ap.add_argument("--work", default=os.path.join("/tmp", "lcnet_bench"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort

    ensure_models(args)
    configs = [(w, b, t) for w in args.widths for b in args.batches for t in args.threads]
    sessions = {}
    for w in args.widths:
        for t in args.threads:
            so = ort.SessionOptions()
            so.intra_op_num_threads = t
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sessions[(w, t)] = ort.InferenceSession(onnx_path(args, w), so, providers=["CPUExecutionProvider"])
    inputs = {b: np.random.default_rng(b).standard_normal((b, 3, 224, 224)).astype(np.float32) for b in args.batches}
    per = {c: [] for c in configs}
    isa = "?"
    for rnd in range(args.rounds):
        for c in configs:
            w, b, t = c
            iters = max(5, args.iters // b)
            o_med, o_min = ort_time(sessions[(w, t)], inputs[b], iters)
            l_med, l_min, isa = lcnet_time(args, w, b, t, iters)
            per[c].append((o_med, l_med, o_min, l_min))
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)

    rows = []
    for c, runs in per.items():
        w, b, t = c
        ratios = [l / o for o, l, _, _ in runs]
        rows.append({"width": w, "batch": b, "threads": t,
                     "ort_ms": statistics.median(r[0] for r in runs), "lcnet_ms": statistics.median(r[1] for r in runs),
                     "ort_best_ms": min(r[2] for r in runs), "lcnet_best_ms": min(r[3] for r in runs),
                     "ratio": statistics.median(ratios), "ratio_best_round": min(ratios)})

    # Peak memory (VmHWM), x1.0 batch 1: `lcnet bench` vs a Python process
    # that only loads ONNX Runtime and runs the same model.
    rss = None
    if "1.0" in args.widths:
        st = os.path.join(args.work, "pplcnet_x1_0.safetensors")
        out = subprocess.run([args.lcnet, "bench", "--weights", st, "--threads", "1", "--iters", "5", "--json"],
                             check=True, capture_output=True, text=True)
        probe = ("import onnxruntime as ort, numpy as np\n"
                 f"s = ort.InferenceSession({onnx_path(args, '1.0')!r}, providers=['CPUExecutionProvider'])\n"
                 "x = np.zeros((1, 3, 224, 224), np.float32)\n"
                 "[s.run(None, {s.get_inputs()[0].name: x}) for _ in range(5)]\n"
                 "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n")
        ort_kib = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
        rss = {"lcnet_bench_x1_0_b1_kib": json.loads(out.stdout).get("peak_rss_kib"), "ort_python_x1_0_b1_kib": int(ort_kib)}

    os.makedirs(args.out, exist_ok=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "cores": os.cpu_count(),
            "simd": [f for f in ("avx2", "fma", "avx512f") if f in flags], "lcnet_isa": isa,
            "onnxruntime": ort.__version__, "python": platform.python_version(), "rounds": args.rounds,
            "rss": rss}
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = [f"Side by side on {meta['cpu']} ({meta['cores']} vCPUs, {', '.join(meta['simd'])}; lcnet ISA {isa}), "
             f"{meta['date']}, ONNX Runtime {meta['onnxruntime']}, {args.rounds} rounds; 224x224, 1000 classes, same weights.",
             "", "| width | batch | threads | ORT ms/batch | lcnet ms/batch | lcnet / ORT (median of rounds) | best round |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['width']} | {r['batch']} | {r['threads']} | {r['ort_ms']:.3f} | {r['lcnet_ms']:.3f} | "
                     f"**{r['ratio']:.2f}** | {r['ratio_best_round']:.2f} |")
    if rss:
        lines += ["", f"Peak RSS (VmHWM), x1.0 batch 1: `lcnet bench` {rss['lcnet_bench_x1_0_b1_kib'] / 1024:.1f} MiB; "
                      f"a Python process running the same model in ONNX Runtime {rss['ort_python_x1_0_b1_kib'] / 1024:.1f} MiB."]
    with open(os.path.join(args.out, "compare.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg_chart(rows, os.path.join(args.out, "latency.svg"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
