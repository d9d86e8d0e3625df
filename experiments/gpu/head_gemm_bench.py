#!/usr/bin/env python3
"""What the tied head's row stride costs: the three GEMMs of gpt2's head in bf16 (forward
logits = x W^T, backward dX = dlogits W and dW = dlogits^T x), timed with the logits' rows
50,257 elements apart, as PyTorch's peer lays them out (100,514 bytes: not 16-byte aligned), and
50,304 apart (padded to a multiple of 64, as dptrain's tied head and llm.c lay them out), on the
same device.

    head_gemm_bench.py [--rows 8192] [--vocab 50257] [--embd 768] [--device cuda] [--repeats 20]

Both layouts compute the same products over the first `vocab` columns; only the leading
dimension differs. PyTorch hands these to cuBLAS as dptrain does. Prints one JSON line: the
median milliseconds of each GEMM in each layout, and the ratio of the totals (unaligned over
padded). `--device cpu` runs the same code on the CPU (a check of the script).
"""
import argparse
import json
import statistics
import sys
import time

import torch


def timed(fn, device, repeats):
    """The median seconds of fn() over `repeats` runs, after two to warm up."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--embd", type=int, default=768)
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    if min(args.rows, args.vocab, args.embd, args.repeats) < 1:
        p.error("--rows, --vocab, --embd and --repeats must be positive")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("head_gemm_bench.py: error: PyTorch sees no CUDA device")
    torch.manual_seed(0)
    dtype = torch.bfloat16
    m, v, c = args.rows, args.vocab, args.embd
    x = torch.randn(m, c, device=device, dtype=dtype)
    w = torch.randn(v, c, device=device, dtype=dtype) * 0.02
    dx = torch.empty(m, c, device=device, dtype=dtype)
    dw = torch.empty(v, c, device=device, dtype=dtype)
    padded = (v + 63) // 64 * 64
    result = {"rows": m, "vocab": v, "embd": c, "device": str(device)}
    totals = {}
    for name, ld in (("unaligned", v), ("padded", padded)):
        logits_buf = torch.empty(m, ld, device=device, dtype=dtype)
        grad_buf = torch.randn(m, ld, device=device, dtype=dtype)
        logits = logits_buf[:, :v]  # rows `ld` apart
        dlogits = grad_buf[:, :v]
        # out= into a view with a leading dimension: cuBLAS writes the rows where they are (a
        # transposed problem for PyTorch's column-major call, the same strides for cuBLAS).
        fwd = timed(lambda: torch.mm(x, w.t(), out=logits), device, args.repeats)
        bwd_x = timed(lambda: torch.mm(dlogits, w, out=dx), device, args.repeats)
        bwd_w = timed(lambda: torch.mm(dlogits.t(), x, out=dw), device, args.repeats)
        assert logits.stride(0) == ld and dlogits.stride(0) == ld
        result[name] = {"ld": ld, "forward_ms": 1e3 * fwd, "backward_dx_ms": 1e3 * bwd_x,
                        "backward_dw_ms": 1e3 * bwd_w}
        totals[name] = fwd + bwd_x + bwd_w
    result["ratio"] = totals["unaligned"] / totals["padded"]
    flops = 3 * 2.0 * m * v * c
    result["tflops"] = {k: flops / t / 1e12 for k, t in totals.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
