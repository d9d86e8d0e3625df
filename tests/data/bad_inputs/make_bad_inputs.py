#!/usr/bin/env python3
"""Writes the bad-input fixtures of this folder (run it to recreate them; Python 3 stdlib only).

Each bad file is broken in exactly one way, so the error it gets is known; expected.tsv (written
by hand, checked by tests/e2e/bad_input.sh folder/CASE) lists the message for each. The good_* files
are valid partners: a bad labels file needs good images beside it, and so on. Every file stays
under 4 KiB; that is why the 28x28 good images are gzipped (the readers inflate gzip).
"""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
files = {}


def idx(type_code, dims, data=b""):
    """IDX: 00 00 TYPE NDIM, each dim as big-endian uint32, then the data."""
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def npy(descr, shape, data=b"", fortran=False, header=None):
    """A version 1.0 .npy padded as numpy pads it; header= replaces the dict text."""
    text = header if header is not None else (
        "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape))
    pad = (64 - (10 + len(text) + 1) % 64) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1") + data


def st(header, data=b"", length=None):
    """safetensors: little-endian uint64 header length, JSON header, data; header may be bytes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def gz(data):
    return gzip.compress(data, mtime=0)  # mtime 0 keeps the bytes the same on every run


def images(n):
    # A bright column that moves with the index, so images differ and still gzip well.
    return b"".join(bytes(255 if p % 28 == i % 28 else 0 for p in range(784)) for i in range(n))


def labels(n, mod=10):
    return bytes(i % mod for i in range(n))


def tensor(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


# --- valid partners: 40 training and 10 test samples (2 ranks x batch 4 fit) ----------------
files["good_images.idx.gz"] = gz(idx(0x08, [40, 28, 28], images(40)))
files["good_labels.idx"] = idx(0x08, [40], labels(40))
files["good_test_images.idx.gz"] = gz(idx(0x08, [10, 28, 28], images(10)))
files["good_test_labels.idx"] = idx(0x08, [10], labels(10))

# --- IDX ---------------------------------------------------------------------------------------
good_idx = idx(0x08, [3, 28, 28], images(3))
files["idx_empty.idx"] = b""
files["idx_wrong_magic.idx"] = b"\x01\x02\x08\x03" + good_idx[4:]
files["idx_truncated_header.idx"] = good_idx[:10]  # cut inside the dims
files["idx_truncated_data.idx"] = good_idx[:16 + 2 * 784 + 100]
files["idx_trailing_bytes.idx"] = good_idx + b"\0" * 7
files["idx_type_0x0b.idx"] = idx(0x0B, [3, 28, 28], images(3))  # 0x0b is int16: unsupported
files["idx_zero_dims.idx"] = idx(0x08, [])
files["idx_huge_dim.idx"] = idx(0x08, [0xFFFFFFFF, 28, 28])  # 3.4 TB declared, none there
files["idx_dims_overflow.idx"] = idx(0x08, [0xFFFFFFFF] * 4)  # product overflows 64 bits
files["idx_gzip_cut_short.idx.gz"] = gz(good_idx)[:len(gz(good_idx)) // 2]  # inside the deflate data
files["idx_gzip_corrupt.idx.gz"] = gz(good_idx)[:10] + b"\xff" * 40  # 0xff: reserved block type
files["idx_labels_int32_negative.idx"] = idx(0x0C, [40], struct.pack(">40i", *([-1] + [0] * 39)))

# --- .npy --------------------------------------------------------------------------------------
files["npy_wrong_magic.npy"] = b"\x93NUMPX" + npy("|u1", "(3, 28, 28)", images(3))[6:]
files["npy_truncated_header.npy"] = npy("|u1", "(3, 28, 28)", images(3))[:40]
files["npy_truncated_data.npy"] = npy("|u1", "(3, 28, 28)", images(3))[:-100]
files["npy_dtype_f8.npy"] = npy("<f8", "(3, 28, 28)", b"\0" * 8 * 100)  # dtype is checked first
files["npy_dtype_big_endian_i4.npy"] = npy(">i4", "(40,)", struct.pack(">40i", *labels(40)))
files["npy_fortran_order.npy"] = npy("|u1", "(3, 28, 28)", images(3), fortran=True)
files["npy_header_not_dict.npy"] = npy(None, None, header="[('descr', '|u1'), ('shape', (3,))]")
files["npy_shape_negative.npy"] = npy("|u1", "(-1, 28, 28)")
files["npy_shape_huge.npy"] = npy("|u1", "(%d, %d)" % (10**12, 10**12))  # 10**24 elements
files["npy_shape_bytes_overflow.npy"] = npy("<f4", "(%d, 2)" % 2**61)  # 2**62 floats = 2**64 B
files["npy_dim_overflows_int64.npy"] = npy("|u1", "(%d,)" % 10**20)
files["npy_labels_float32.npy"] = npy("<f4", "(40,)", struct.pack("<40f", *labels(40)))
files["npy_labels_2d.npy"] = npy("|u1", "(40, 1)", labels(40))

# --- counts and label values (each against the good partner, and one 3-vs-4 pair) -------------
files["count_3_images.idx"] = good_idx
files["count_4_labels.idx"] = idx(0x08, [4], labels(4))
files["count_39_labels.idx"] = idx(0x08, [39], labels(39))
files["labels_10.idx"] = idx(0x08, [40], labels(39) + bytes([10]))  # 10 outputs: 0..9 only
files["labels_255.idx"] = idx(0x08, [40], bytes([255]) + labels(39))

# --- safetensors (--init-weights) --------------------------------------------------------------
floats = b"\0" * 16  # room for four floats
files["st_empty.safetensors"] = b""
files["st_too_short.safetensors"] = b"\x10\0\0\0"
files["st_not_safetensors.safetensors"] = files["npy_labels_2d.npy"]  # .npy bytes: absurd length
files["st_header_len_2_60.safetensors"] = st({"a": tensor()}, floats, length=2**60)
files["st_header_cut_short.safetensors"] = st({"a": tensor()}, floats)[:20]
files["st_header_not_json.safetensors"] = st(b"{\"a\": ")
files["st_header_not_utf8.safetensors"] = st(b'{"w\xff\xfe": ' + json.dumps(tensor()).encode() +
                                             b"}", floats)
files["st_header_not_object.safetensors"] = st([1, 2, 3])
files["st_dtype_f16.safetensors"] = st({"a": tensor("F16", (4,), (0, 8))}, floats)
files["st_shape_negative.safetensors"] = st({"a": tensor(shape=(-1, 3), offsets=(0, 12))}, floats)
files["st_shape_overflow.safetensors"] = st({"a": tensor(shape=(2**32, 2**32), offsets=(0, 16))},
                                            floats)  # 2**64 elements
files["st_shape_over_int64.safetensors"] = st({"a": tensor(shape=(2**31, 2**32), offsets=(0, 16))},
                                              floats)  # 2**63 elements: fits uint64, not int64
files["st_offsets_beyond_data.safetensors"] = st({"a": tensor(shape=(100,), offsets=(0, 400))},
                                                 floats)
files["st_offsets_overlap.safetensors"] = st({"a": tensor(shape=(3,), offsets=(0, 12)),
                                              "b": tensor(shape=(2,), offsets=(8, 16))}, floats)
files["st_offsets_reversed.safetensors"] = st({"a": tensor(shape=(0,), offsets=(8, 4))}, floats)
files["st_shape_offsets_disagree.safetensors"] = st({"a": tensor(shape=(3,), offsets=(0, 16))},
                                                    floats)

for name, data in files.items():
    assert len(data) < 4096, (name, len(data))
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
print("wrote %d files to %s" % (len(files), HERE))
