#!/usr/bin/python3
"""The peer in the same run for the gpt benchmarks and the language-model run: nanoGPT's model
(tests/data/gpt/nanogpt.py) trained with DistributedDataParallel (gloo, CPU) on the same token
shards, per-rank batch, recipe and thread count as a dptrain run.

    peer_pytorch_gpt.py --nproc P --model "gpt(n_layer=4, ...)" --train-tokens GLOB
        [--val-tokens GLOB] --batch-size B --max-steps N [--lr 1e-3] [--beta1 0.9] [--beta2 0.95]
        [--weight-decay 0.1] [--warmup-steps W --lr-decay-steps D --min-lr M] [--grad-clip X]
        [--eval-every N] [--val-steps N] [--threads 1] [--seed 0] [--no-shuffle] --out peer.json

The recipe is nanoGPT's train.py: AdamW with weight decay on the tensors of two or more
dimensions only, the learning rate set before each step from the 0-based step (linear warmup,
cosine decay to --min-lr), the gradients clipped by their global norm. The initial weights are
nanoGPT's (normal 0.02, and 0.02/sqrt(2 n_layer) for every c_proj weight), from torch's RNG.
The data is windowed as dptrain windows it: window i of a shard is its tokens [i*T, i*T + T], the
windows numbered shard by shard; global step s of an epoch takes positions s*P*B ... (s+1)*P*B - 1
of the epoch's order and rank r every P-th of them from r; an epoch drops the windows that do not
fill a step. The order is the windows in order with --no-shuffle (then the batches are dptrain's
exactly), else a permutation from (seed, epoch) drawn by torch (not dptrain's permutation).

Writes {"tokens_per_second", "median_step_seconds", "val_loss", "train_loss", "log": [...]} to
--out, tokens/s computed as dptrain computes it: global batch tokens / median step wall time
on rank 0. Processes talk over loopback only. Needs Debian's python3-torch.
"""
import argparse
import glob
import json
import math
import os
import re
import socket
import statistics
import sys
import time


def _threads_from_argv():
    """--threads, read before torch loads: Debian's torch does its GEMMs in OpenBLAS, whose own
    thread pool torch.set_num_threads does not size, so one thread per rank needs the variables
    below set before the library starts (unset, it spins a thread per core)."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "1"


os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _threads_from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "data", "gpt"))
from nanogpt import GPT, GPTConfig  # noqa: E402


def parse_model(spec):
    m = re.fullmatch(r"\s*gpt\s*\((.*)\)\s*", spec)
    if not m:
        raise SystemExit(f"peer_pytorch_gpt.py: error: --model {spec}: expected gpt(key=value, ...)")
    kw = {}
    for part in m.group(1).split(","):
        key, _, value = part.partition("=")
        kw[key.strip()] = int(value)
    return GPTConfig(**kw)


def load_shards(pattern):
    """The shards a glob names, in name order, each as a read-only memory map of its tokens."""
    paths = sorted(glob.glob(pattern)) or ([pattern] if os.path.exists(pattern) else [])
    if not paths:
        raise SystemExit(f"peer_pytorch_gpt.py: error: {pattern}: no such file")
    shards = []
    for path in paths:
        header = np.fromfile(path, dtype="<i4", count=256)
        if header[0] == 20240520 and header[1] == 1:
            dtype = np.uint16
        elif header[0] == 20240801 and header[1] == 7:
            dtype = np.uint32
        else:
            raise SystemExit(f"peer_pytorch_gpt.py: error: {path}: not an llm.c token shard")
        shards.append(np.memmap(path, dtype=dtype, mode="r", offset=1024, shape=(int(header[2]),)))
    return shards


class Windows:
    def __init__(self, shards, t):
        self.t = t
        self.index = []  # (shard, first token) of every window, shard by shard
        for s, tokens in enumerate(shards):
            self.index += [(s, i * t) for i in range((len(tokens) - 1) // t)]
        self.shards = shards

    def __len__(self):
        return len(self.index)

    def batch(self, windows):
        rows = [np.asarray(self.shards[s][o:o + self.t + 1], dtype=np.int64)
                for s, o in (self.index[w] for w in windows)]
        x = torch.from_numpy(np.stack(rows))
        return x[:, :-1].contiguous(), x[:, 1:].contiguous()


def init_nanogpt(model, cfg):
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            torch.nn.init.zeros_(p)
        elif ".ln_" in name:
            torch.nn.init.ones_(p)
        else:
            std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith("c_proj.weight") else 0.02
            torch.nn.init.normal_(p, 0.0, std)


def lr_at(args, it):
    if args.warmup_steps is None:
        return args.lr
    if it < args.warmup_steps:
        return args.lr * (it + 1) / (args.warmup_steps + 1)
    if it > args.lr_decay_steps:
        return args.min_lr
    ratio = (it - args.warmup_steps) / (args.lr_decay_steps - args.warmup_steps)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (args.lr - args.min_lr)


def evaluate(model, windows, args, rank):
    """The mean loss per token over the val windows (or --val-steps global batches), all ranks."""
    global_batch = args.batch_size * args.nproc
    n = len(windows)
    if args.val_steps:
        n = min(n, args.val_steps * global_batch)
    total = torch.zeros(2, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        mine = list(range(rank, n, args.nproc))
        for i in range(0, len(mine), args.batch_size):
            x, y = windows.batch(mine[i:i + args.batch_size])
            _, loss = model(x, y)
            total += torch.tensor([loss.item() * y.numel(), y.numel()], dtype=torch.float64)
    model.train()
    dist.all_reduce(total)
    return (total[0] / total[1]).item()


def worker(rank, args, port):
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.nproc)
    cfg = parse_model(args.model)
    train = Windows(load_shards(args.train_tokens), cfg.block_size)
    val = Windows(load_shards(args.val_tokens), cfg.block_size) if args.val_tokens else None
    torch.manual_seed(args.seed)
    model = GPT(cfg)
    init_nanogpt(model, cfg)
    net = torch.nn.parallel.DistributedDataParallel(model)
    params = [p for p in net.parameters()]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=1e-8)
    global_batch = args.batch_size * args.nproc
    steps_per_epoch = len(train) // global_batch
    if steps_per_epoch == 0:
        raise SystemExit("peer_pytorch_gpt.py: error: fewer train windows than one global batch")
    times, log, window_losses = [], [], []
    for step in range(args.max_steps):
        start = time.perf_counter()
        epoch, s = divmod(step, steps_per_epoch)
        if s == 0:  # the epoch's order: in order, or a permutation from (seed, epoch)
            order = (torch.arange(len(train)) if args.no_shuffle else torch.randperm(
                len(train), generator=torch.Generator().manual_seed(args.seed * 1000003 + epoch)))
        first = s * global_batch
        x, y = train.batch(order[first + rank:first + global_batch:args.nproc].tolist())
        for group in opt.param_groups:
            group["lr"] = lr_at(args, step)
        _, loss = net(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = None
        if args.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip).item()
        opt.step()
        times.append(time.perf_counter() - start)
        window_losses.append(loss.item())
        done = step + 1
        if args.eval_every and val and (done % args.eval_every == 0 or done == args.max_steps):
            mean = torch.tensor(window_losses, dtype=torch.float64).mean().reshape(1)
            dist.all_reduce(mean)
            entry = {"step": done, "train_loss": mean.item() / args.nproc, "lr": lr_at(args, step),
                     "grad_norm": norm, "val_loss": evaluate(net.module, val, args, rank)}
            window_losses = []
            log.append(entry)
            if rank == 0:
                print(json.dumps(entry), flush=True)
    if rank == 0:
        median = statistics.median(times)
        result = {"peer": f"PyTorch {torch.__version__} DDP gloo", "model": args.model,
                  "world_size": args.nproc, "per_rank_batch": args.batch_size,
                  "threads": args.threads, "steps": args.max_steps,
                  "median_step_seconds": median,
                  "tokens_per_second": global_batch * cfg.block_size / median,
                  "train_loss": log[-1]["train_loss"] if log else None,
                  "val_loss": log[-1]["val_loss"] if log else None, "log": log}
        with open(args.out, "w") as f:
            json.dump(result, f)
    # Every rank past its last collective before any leaves: a rank that tore gloo down while its
    # peer was still in the final evaluation's allreduce left that peer spinning.
    dist.barrier()
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--model", required=True)
    p.add_argument("--train-tokens", required=True)
    p.add_argument("--val-tokens")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--lr-decay-steps", type=int)
    p.add_argument("--min-lr", type=float)
    p.add_argument("--grad-clip", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--val-steps", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-shuffle", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.nproc < 1 or args.batch_size < 1 or args.max_steps < 1:
        p.error("--nproc, --batch-size and --max-steps must be positive")
    if (args.warmup_steps is None) != (args.lr_decay_steps is None) or (
            args.warmup_steps is not None and args.min_lr is None):
        p.error("--warmup-steps, --lr-decay-steps and --min-lr go together")
    parse_model(args.model)  # fail early on a bad spec
    with socket.socket() as s:  # a free loopback port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port), nprocs=args.nproc, join=True)


if __name__ == "__main__":
    main()
