#!/usr/bin/env python3
"""The GPU peer in the same run: dptrain's presets in PyTorch eager on one GPU, with the same
data, batch, optimizer and number of steps as the dptrain run beside it.

    peer_pytorch_cuda.py --model mlp|cnn --batch-size B --max-steps N [--lr 0.05]
                         [--momentum 0.9] [--data DIR] --out peer.json

Each step draws its batch from a permutation of the training set held in pinned host memory,
copies it to the GPU, runs forward, loss, backward and SGD, and reads the loss (as dptrain does
every step); samples/s is batch / median step time, as dptrain computes it.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

# The presets and the IDX reader of the CPU peer: one definition of each model.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from peer_pytorch_ddp import build, find, load_idx  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.batch_size < 1 or args.max_steps < 1:
        p.error("--batch-size and --max-steps must be positive")
    build(args.model)  # fail early on an unknown model
    if not torch.cuda.is_available():
        raise SystemExit("peer_pytorch_cuda.py: error: PyTorch sees no CUDA device")
    # float32 as dptrain computes it: no TF32 in matrix products or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # algorithms chosen once per shape, as dptrain does
    dev = torch.device("cuda")
    x = torch.from_numpy(load_idx(find(args.data, "train-images-idx3-ubyte"), 16,
                                  (-1, 1, 28, 28)).astype(np.float32) / 255).pin_memory()
    y = torch.from_numpy(load_idx(find(args.data, "train-labels-idx1-ubyte"), 8, (-1,))
                         .astype(np.int64)).pin_memory()
    torch.manual_seed(args.seed)
    net = build(args.model).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum)
    g = torch.Generator().manual_seed(args.seed)
    times, step = [], 0
    while step < args.max_steps:
        perm = torch.randperm(len(x), generator=g)
        for s in range(len(x) // args.batch_size):
            if step >= args.max_steps:
                break
            start = time.perf_counter()
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            xb = x[idx].pin_memory().to(dev, non_blocking=True)
            yb = y[idx].pin_memory().to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
            loss.item()  # waits for the step, as dptrain's loss read does
            times.append(time.perf_counter() - start)
            step += 1
    xt = torch.from_numpy(load_idx(find(args.data, "t10k-images-idx3-ubyte"), 16,
                                   (-1, 1, 28, 28)).astype(np.float32) / 255).to(dev)
    yt = torch.from_numpy(load_idx(find(args.data, "t10k-labels-idx1-ubyte"), 8, (-1,))
                          .astype(np.int64)).to(dev)
    with torch.no_grad():
        accuracy = (net(xt).argmax(1) == yt).float().mean().item()
    median = statistics.median(times)
    result = {"peer": f"PyTorch {torch.__version__} eager, {torch.cuda.get_device_name()}",
              "model": args.model, "batch_size": args.batch_size, "steps": step,
              "median_step_seconds": median, "samples_per_second": args.batch_size / median,
              "test_accuracy": accuracy}
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
