"""The local models under onnxruntime (the reference engine), inference only, one thread, on
the same photos and input shapes as the tract benchmark (benches/models.rs).

usage: ort_reference.py MODELS_DIR PHOTO... > local-models-ort.json
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

ROUNDS = 10


def lite0_input(image):
    w, h = image.size
    side = round(min(w, h) * 0.875)
    left, top = (w - side) // 2, (h - side) // 2
    crop = image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BILINEAR)
    x = (np.asarray(crop, np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)[None]


def nanodet_input(image):
    x = np.asarray(image.resize((416, 416), Image.BILINEAR), np.float32)[:, :, ::-1]
    x = (x - np.array([103.53, 116.28, 123.675], np.float32)) / np.array([57.375, 57.12, 58.395], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def measure(sess, inputs):
    name = sess.get_inputs()[0].name
    samples = []
    for round_ in range(ROUNDS + 2):
        for x in inputs:
            start = time.perf_counter()
            sess.run(None, {name: x})
            if round_ >= 2:
                samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    median = statistics.median(samples)
    p95 = samples[round((len(samples) - 1) * 0.95)]
    return {"median_ms": round(median, 3), "p95_ms": round(p95, 3),
            "images_per_sec_per_core": round(1000 / median, 2)}


def main(models_dir, photos):
    images = []
    for path in photos:
        image = Image.open(path).convert("RGB")
        image.thumbnail((832, 832))
        images.append(image)
    results = [
        {"model": "efficientnet-lite0",
         **measure(session(f"{models_dir}/efficientnet-lite0.onnx"), [lite0_input(i) for i in images])},
        {"model": "nanodet-m",
         **measure(session(f"{models_dir}/nanodet-m.onnx"), [nanodet_input(i) for i in images])},
    ]
    json.dump({"engine": f"onnxruntime {ort.__version__}", "results": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
