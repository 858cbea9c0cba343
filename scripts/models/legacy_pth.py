"""Reads a legacy (pre-1.6, non-zip) PyTorch checkpoint with numpy alone, no torch.

Layout: pickled magic number, protocol version and system info; the pickled object whose
tensors reference storages through persistent ids; a pickled list of storage keys; then each
storage as an 8-byte little-endian element count followed by its raw little-endian data.
"""
import collections
import pickle
import struct

import numpy as np

DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
}


class _Tensor:
    def __init__(self, key, offset, size, stride):
        self.key, self.offset, self.size, self.stride = key, offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, size, stride)


def load(path):
    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        storage_types = {}

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor_v2
                if module == "torch" and name in DTYPES:
                    return name
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

            def persistent_load(self, pid):
                _, storage_type, key, _location, _size, _view = pid
                storage_types[key] = storage_type
                return key

        state = Unpickler(f).load()
        keys = pickle.load(f)
        storages = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            dtype = np.dtype(DTYPES[storage_types[key]])
            storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)

    def materialize(t):
        data = storages[t.key]
        item = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[t.offset:], shape=t.size, strides=[s * item for s in t.stride]
        )
        return np.array(view, copy=True)

    return collections.OrderedDict((name, materialize(t)) for name, t in state.items())


if __name__ == "__main__":
    import sys

    for name, array in load(sys.argv[1]).items():
        print(name, array.shape, array.dtype)
