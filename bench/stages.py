#!/usr/bin/env python3
"""Where lcnet loses or wins against ONNX Runtime, stage by stage.

ONNX Runtime's own profiler (`SessionOptions.enable_profiling`) times every
node of the model; the node names keep PaddleClas's layer names
(`blocks5.2.pw_conv...`), so the nodes are summed per stage (conv1,
blocks2 .. blocks6, head = everything after blocks6). `lcnet bench --stages`
times the same stages of the same weights. Both run back to back, --rounds
times; each round prints lcnet / ORT per stage (below 1 = lcnet faster).
The whole-model ratio here is of summed stage times (ORT's profile leaves out
its session overhead), so it reads a little higher than compare.py's.

This is how the SE modules' matrix-vector products were found to run at a
third of ORT's speed (blocks6 at 1.37 for x2.5, the other stages 0.95-1.15).

    python bench/stages.py --width 2.5 --rounds 3
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from compare import ensure_models, onnx_path, tag  # noqa: E402

STAGES = ["conv1", "blocks2", "blocks3", "blocks4", "blocks5", "blocks6", "head"]


def ort_stages(path, runs, profile_dir):
    """Median ms per stage over `runs` profiled runs (after 10 warm-up runs)."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(profile_dir, "ort")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    for _ in range(10 + runs):
        sess.run(None, {name: x})
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    per_node = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"]].append(e["dur"])
    stages = collections.defaultdict(float)
    for node, durs in per_node.items():
        durs = sorted(durs[10:])
        stage = re.match(r"(conv1|blocks\d)", node)
        stages[stage.group(1) if stage else "head"] += durs[len(durs) // 2] / 1000
    return stages


def lcnet_stages(lcnet, weights, runs):
    out = subprocess.run([lcnet, "bench", "--weights", weights, "--threads", "1", "--iters", str(runs), "--stages"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines()[1:] if line.startswith("  ")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", default="1.0")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=50, help="timed runs per engine and round")
    ap.add_argument("--lcnet", default=os.path.join(ROOT, "target", "release", "lcnet"))
    ap.add_argument("--onnx-dir", default=os.path.join("/tmp", "onnx_bench"))
    ap.add_argument("--work", default=os.path.join("/tmp", "lcnet_bench"))
    args = ap.parse_args()
    args.widths = [args.width]
    ensure_models(args)
    weights = os.path.join(args.work, f"pplcnet_{tag(args.width)}.safetensors")
    print(f"x{args.width}, batch 1, one thread: lcnet / ORT per stage")
    print(" ".join(f"{s:>8}" for s in STAGES + ["total"]))
    with tempfile.TemporaryDirectory() as profile_dir:
        for _ in range(args.rounds):
            o = ort_stages(onnx_path(args, args.width), args.runs, profile_dir)
            l = lcnet_stages(args.lcnet, weights, args.runs)
            ratios = [l[s] / o[s] for s in STAGES] + [sum(l.values()) / sum(o.values())]
            print(" ".join(f"{r:8.2f}" for r in ratios))


if __name__ == "__main__":
    main()
