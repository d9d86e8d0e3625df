#!/usr/bin/python3
"""Writes fixture.safetensors: a small model with residual blocks as PyTorch builds it, for the
parity test tests/unit/test_residual.cpp (which does not need PyTorch to run).

The model is the PyTorch twin of the dptrain spec SPEC below: nn.Sequential with a Residual
module, an nn.Sequential whose output is its input plus its children's. The file holds its
state_dict under PyTorch's own names, a batch ("input", "labels"), and what PyTorch computes
from them in float64: the logits ("logits"), the mean cross-entropy ("loss") and its gradient
for every parameter ("grad.<name>").

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/residual/make_fixture.py
"""
import json
import os
import struct

import torch
from torch import nn

SPEC = ("conv2d(4,3,pad=1) residual(conv2d(4,3,pad=1) relu conv2d(4,3,pad=1)) relu flatten "
        "linear(16) residual(linear(8) relu residual(relu linear(8)) linear(16)) linear(5)")
INPUT_SHAPE = (2, 5, 5)
BATCH = 4


class Residual(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


def build():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        Residual(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(100, 16),
        Residual(nn.Linear(16, 8), nn.ReLU(), Residual(nn.ReLU(), nn.Linear(8, 8)),
                 nn.Linear(8, 16)),
        nn.Linear(16, 5),
    )


def write_safetensors(path, tensors, metadata):
    """safetensors by hand: little-endian u64 header size, JSON header, raw F32 data."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    torch.manual_seed(20240611)
    net = build()  # PyTorch's own initialisation
    x = torch.randn(BATCH, *INPUT_SHAPE)
    labels = torch.tensor([3, 0, 4, 1])

    # float64 from the float32 values: a reference that float32 rounding differs from by ~1e-7.
    net64 = build().double()
    net64.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    relu_inputs = []
    for m in net64.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(lambda _m, inp, _out: relu_inputs.append(inp[0]))
    logits = net64(x.double())
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    # No ReLU input so close to zero that float32 rounding (below 1e-6 here) could put it on the
    # other side (exact zeros, from a ReLU before, are zeros in float32 too).
    closest = min(float(t[t != 0].abs().min()) for t in relu_inputs)
    assert closest > 1e-5, f"a ReLU input is {closest} from zero: pick another seed"

    tensors = dict(net.state_dict())
    tensors["input"] = x
    tensors["labels"] = labels.float()
    tensors["logits"] = logits
    tensors["loss"] = loss.reshape(1)
    for name, p in net64.named_parameters():
        tensors["grad." + name] = p.grad
    here = os.path.dirname(os.path.abspath(__file__))
    write_safetensors(os.path.join(here, "fixture.safetensors"), tensors,
                      {"spec": SPEC, "input_shape": json.dumps(list(INPUT_SHAPE)),
                       "torch": torch.__version__})
    print("\n".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))


if __name__ == "__main__":
    main()
