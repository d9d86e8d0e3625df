#!/usr/bin/env python3
"""The peer in the same run: dptrain's presets in PyTorch, trained with DistributedDataParallel
(gloo, CPU) on the same data, per-rank batch, optimizer, learning rate and thread count.

    peer_pytorch_ddp.py --nproc P --model mlp|cnn --batch-size B --max-steps N
                        [--lr 0.01] [--momentum 0] [--threads 1] [--data DIR] --out peer.json

Writes {"samples_per_second", "median_step_seconds", "test_accuracy", ...} to --out, with
samples/s computed as dptrain computes it: global batch / median step wall time on rank 0.
Processes talk over loopback only. Needs Debian's python3-torch.
"""
import argparse
import gzip
import json
import os
import socket
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def build(model):
    if model == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                             nn.ReLU(), nn.Linear(256, 10))
    if model == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    raise SystemExit(f"peer_pytorch_ddp.py: error: --model {model}: only the mlp and cnn presets")


def load_idx(path, offset, shape):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    raise SystemExit(f"peer_pytorch_ddp.py: error: --data {data_dir}: no {stem}[.gz]")


def worker(rank, args, port):
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.nproc)
    x = torch.from_numpy(load_idx(find(args.data, "train-images-idx3-ubyte"), 16,
                                  (-1, 1, 28, 28)).astype(np.float32) / 255)
    y = torch.from_numpy(load_idx(find(args.data, "train-labels-idx1-ubyte"), 8, (-1,))
                         .astype(np.int64))
    torch.manual_seed(args.seed)
    net = nn.parallel.DistributedDataParallel(build(args.model))
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum)
    g = torch.Generator().manual_seed(args.seed)
    times = []
    step = 0
    while step < args.max_steps:
        perm = torch.randperm(len(x), generator=g)
        global_batch = args.batch_size * args.nproc
        for s in range(len(x) // global_batch):
            if step >= args.max_steps:
                break
            start = time.perf_counter()
            idx = perm[s * global_batch + rank:(s + 1) * global_batch:args.nproc]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
            step += 1
    accuracy = None
    if rank == 0:
        xt = torch.from_numpy(load_idx(find(args.data, "t10k-images-idx3-ubyte"), 16,
                                       (-1, 1, 28, 28)).astype(np.float32) / 255)
        yt = torch.from_numpy(load_idx(find(args.data, "t10k-labels-idx1-ubyte"), 8, (-1,))
                              .astype(np.int64))
        with torch.no_grad():
            accuracy = (net.module(xt).argmax(1) == yt).float().mean().item()
        median = statistics.median(times)
        result = {"peer": f"PyTorch {torch.__version__} DDP gloo", "model": args.model,
                  "world_size": args.nproc, "per_rank_batch": args.batch_size,
                  "steps": step, "median_step_seconds": median,
                  "samples_per_second": args.batch_size * args.nproc / median,
                  "test_accuracy": accuracy, "threads": args.threads}
        with open(args.out, "w") as f:
            json.dump(result, f)
        print(json.dumps(result))
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--model", default="mlp")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.nproc < 1 or args.batch_size < 1 or args.max_steps < 1:
        p.error("--nproc, --batch-size and --max-steps must be positive")
    build(args.model)  # fail early on an unknown model
    with socket.socket() as s:  # a free loopback port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port), nprocs=args.nproc, join=True)


if __name__ == "__main__":
    main()
