"""Runs tf2onnx's command line under numpy 2: tf2onnx 1.17 still calls `np.product`, which
numpy 2 removed; `np.prod` is the same function."""
import runpy

import numpy as np

if not hasattr(np, "product"):
    np.product = np.prod
runpy.run_module("tf2onnx.convert", run_name="__main__")
