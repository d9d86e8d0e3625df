#!/usr/bin/env python3
"""The GPU peer for gpt in the same run: nanoGPT's model (tests/data/gpt/nanogpt.py) in PyTorch
on one GPU, eager or compiled, float32 with TF32 off or bf16 mixed precision, with the same token
shards, batch, optimizer and number of steps as the dptrain run beside it.

    peer_gpt_cuda.py --model "gpt2" | "gpt(n_layer=..., ...)" --train-tokens GLOB
                     --batch-size B --max-steps N [--lr 6e-4] [--attention sdpa|manual]
                     [--precision fp32|bf16] [--compile] [--peak-tflops 989]
                     [--device cuda] --out peer.json

Attention is PyTorch 2's fused scaled_dot_product_attention by default, as nanoGPT runs it
(`--attention manual`: the explicit masked softmax). Each step copies its batch of windows (the
windows in order, as dptrain's --no-shuffle takes them) to the GPU, runs forward, loss, backward
and AdamW (nanoGPT's two groups, weight decay 0.1), and reads the loss, as dptrain does every
step; tokens/s is B * T / median step time, as dptrain computes it. `--device cpu` runs the same
code on the CPU (a check of the script where there is no GPU).

`--precision bf16` is PyTorch's standard mixed precision, as nanoGPT trains: forward and loss
under torch.autocast to bfloat16, float32 parameters, gradients and AdamW, no GradScaler (bf16
has float32's exponent range). `--compile` wraps the model in torch.compile (PyTorch 2), as
nanoGPT does. The first step then includes compiling the forward and the backward; no step is
dropped, since the median over the steps already leaves a slow first step out. The output's
"mfu" is model FLOPs utilisation against `--peak-tflops` (default 989, the dense bf16 peak of an
H100 or H200 SXM), FLOPs counted as nanoGPT's estimate_mfu counts them (see mfu()).
"""
import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
from peer_pytorch_gpt import Windows, init_nanogpt, load_shards, parse_model  # noqa: E402
from nanogpt import CausalSelfAttention, GPT  # noqa: E402

PRESETS = {"gpt2": "gpt(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257)"}


def mfu(cfg, tokens_per_second, peak_tflops):
    """Model FLOPs utilisation as nanoGPT's estimate_mfu counts it: 6 N + 12 L H Q T FLOPs per
    token (Q the head size, T the block size), N the parameters as get_num_params() counts them
    by default: all of them, the head tied to wte counted once, less the position embedding wpe
    (non_embedding=True subtracts wpe only). gpt2: N = 123,653,376."""
    L, H, C, T, V = cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.vocab_size
    # ln_1 and ln_2, c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj: weights and biases
    block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    n = V * C + L * block + 2 * C  # wte (= lm_head), the blocks, ln_f; no wpe
    flops_per_token = 6 * n + 12 * L * H * (C // H) * T
    return tokens_per_second * flops_per_token / (peak_tflops * 1e12)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--train-tokens", required=True)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--attention", choices=("sdpa", "manual"), default="sdpa")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.batch_size < 1 or args.max_steps < 1:
        p.error("--batch-size and --max-steps must be positive")
    if args.peak_tflops <= 0:
        p.error("--peak-tflops must be positive")
    if args.compile and not hasattr(torch, "compile"):
        p.exit(2, f"peer_gpt_cuda.py: error: --compile: PyTorch {torch.__version__} has no "
                  "torch.compile (it needs PyTorch 2)\n")
    cfg = parse_model(PRESETS.get(args.model, args.model))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("peer_gpt_cuda.py: error: PyTorch sees no CUDA device")
    if args.attention == "sdpa" and not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        raise SystemExit("peer_gpt_cuda.py: error: this PyTorch has no scaled_dot_product_attention")
    # float32 as dptrain computes it: no TF32 in matrix products (under bf16 autocast the matrix
    # products are bf16, so bf16 runs leave PyTorch's settings alone).
    if args.precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    CausalSelfAttention.use_sdpa = args.attention == "sdpa"
    dev = torch.device(args.device)
    windows = Windows(load_shards(args.train_tokens), cfg.block_size)
    if len(windows) < args.batch_size:
        raise SystemExit(f"peer_gpt_cuda.py: error: {args.train_tokens}: fewer windows than a batch")
    torch.manual_seed(args.seed)
    if dev.type == "cuda":  # built and initialised on the GPU, not on the CPU and then copied
        with dev:
            model = GPT(cfg)
            init_nanogpt(model, cfg)
    else:
        model = GPT(cfg)
        init_nanogpt(model, cfg)
    model.to(dev)
    params = list(model.parameters())
    run = torch.compile(model) if args.compile else model
    autocast = (functools.partial(torch.autocast, device_type=dev.type, dtype=torch.bfloat16)
                if args.precision == "bf16" else contextlib.nullcontext)
    groups = [{"params": [q for q in params if q.dim() >= 2], "weight_decay": 0.1},
              {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0}]
    # nanoGPT's choice: the fused AdamW (one kernel for all tensors) on a GPU.
    fused = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, **fused)
    steps_per_epoch = len(windows) // args.batch_size
    times, losses = [], []
    for step in range(args.max_steps):
        start = time.perf_counter()
        first = (step % steps_per_epoch) * args.batch_size
        x, y = windows.batch(range(first, first + args.batch_size))
        x = x.pin_memory().to(dev, non_blocking=True) if args.device == "cuda" else x
        y = y.pin_memory().to(dev, non_blocking=True) if args.device == "cuda" else y
        with autocast():
            _, loss = run(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())  # waits for the step, as dptrain's loss read does
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    mode = "torch.compile" if args.compile else "eager"
    tokens_per_second = args.batch_size * cfg.block_size / median
    result = {"peer": f"PyTorch {torch.__version__} {mode}, {args.precision}, {name}, "
                      f"attention {args.attention}",
              "model": args.model, "precision": args.precision, "compile": args.compile,
              "batch_size": args.batch_size, "steps": args.max_steps,
              "median_step_seconds": median, "tokens_per_second": tokens_per_second,
              "mfu": mfu(cfg, tokens_per_second, args.peak_tflops),
              "peak_tflops": args.peak_tflops,
              "first_loss": losses[0], "last_loss": losses[-1]}
    if args.device == "cuda":
        result["max_memory_bytes"] = torch.cuda.max_memory_allocated()
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
