#!/usr/bin/env python3
"""compare_safetensors.py A B TOL: exit 0 when A and B hold the same F32 tensors (names and
shapes) whose values agree to ||a - b|| / ||b|| <= TOL for each tensor; prints the worst."""
import json
import math
import struct
import sys
from array import array


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        assert v["dtype"] == "F32", (path, name, v["dtype"])
        b, e = v["data_offsets"]
        a = array("f")
        a.frombytes(data[b:e])
        out[name] = (v["shape"], a)
    return out


def main():
    a_path, b_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a, b = load(a_path), load(b_path)
    if sorted(a) != sorted(b):
        sys.exit(f"compare_safetensors.py: tensor names differ: {sorted(a)} vs {sorted(b)}")
    worst, worst_name = 0.0, ""
    for name in sorted(a):
        (sa, va), (sb, vb) = a[name], b[name]
        if sa != sb:
            sys.exit(f"compare_safetensors.py: {name}: shape {sa} vs {sb}")
        diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(va, vb)))
        norm = math.sqrt(sum(y * y for y in vb)) or 1.0
        rel = diff / norm
        if not rel <= tol:  # NaN fails too
            worst, worst_name = rel, name
            break
        if rel > worst:
            worst, worst_name = rel, name
    print(f"largest relative difference {worst:.3g} ({worst_name}), tolerance {tol:g}")
    sys.exit(0 if worst <= tol else 1)


if __name__ == "__main__":
    main()
