#!/usr/bin/python3
"""Writes training_fixture.safetensors: ten optimizer steps of a tiny nanoGPT-style model
(nanogpt.py) trained as nanoGPT's train.py trains, for tests/unit/test_gpt_training_parity.cpp
(which does not need PyTorch to run).

The training: AdamW with nanoGPT's two parameter groups (weight decay 0.1 on tensors of two or
more dimensions, none on biases and LayerNorm gains), betas (0.9, 0.95), eps 1e-8; nanoGPT's
learning rate (linear warmup over 3 steps to LR, cosine decay to LR / 10 at step 10, set before
each step from the 0-based step); the gradients clipped to norm 1.0 before each step. The data is
one token sequence cut into windows of T + 1 tokens (window w: tokens[w*T : w*T + T + 1], its
first T the inputs, its last T the targets), taken in order: step s trains on windows s*B to
s*B + B - 1, as dptrain's sampler does without shuffling on one rank.

The file holds:
  - the initial weights under nanoGPT's names (the tied head once, as transformer.wte.weight);
  - "tokens": the sequence (as floats, exact for these small integers);
  - from float64 training, started from the float32 initial weights: "loss" [10] (each step's
    mean cross-entropy on its batch, before its update), "grad_norm" [10] (each step's gradient
    norm before clipping) and "final.<name>", the weights after the ten steps; each float64
    tensor as two float32 ones (safetensors holds F32 only here), X rounded and X.low, the rest;
  - the same from float32 training in PyTorch: "f32.loss", "f32.grad_norm", "f32.final.<name>",
    so a test can say how far PyTorch's own float32 run is from float64.

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/gpt/make_training_fixture.py
"""
import math
import os

import torch

from nanogpt import GPT, GPTConfig, load_weights, random_weights, write_safetensors

CONFIG = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=11)
BATCH, T, STEPS = 4, CONFIG.block_size, 10
LR, MIN_LR, WARMUP, DECAY = 1e-2, 1e-3, 3, 10
BETAS, EPS, WEIGHT_DECAY, GRAD_CLIP = (0.9, 0.95), 1e-8, 0.1, 1.0


def lr_at(it):
    """nanoGPT's get_lr."""
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    if it > DECAY:
        return MIN_LR
    ratio = (it - WARMUP) / (DECAY - WARMUP)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def batch(tokens, step):
    windows = [tokens[w * T:w * T + T + 1] for w in range(step * BATCH, step * BATCH + BATCH)]
    w = torch.stack(windows)
    return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def train(weights, tokens, dtype):
    model = GPT(CONFIG).to(dtype)
    load_weights(model, weights)
    params = [p for _, p in model.named_parameters()]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)
    losses, norms = [], []
    for step in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        x, y = batch(tokens, step)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP).item())
        optimizer.step()
        losses.append(loss.item())
    final = {name: p.detach().clone() for name, p in model.named_parameters()}
    return torch.tensor(losses, dtype=torch.float64), torch.tensor(norms, dtype=torch.float64), final


def split_float64(name, x):
    """A float64 tensor as two float32 ones, `name` (x rounded) and `name`.low (the rest): their
    sum in double is x to about 1e-14, so the fixture's rounding does not blur the comparison."""
    high = x.float()
    return {name: high, name + ".low": (x - high.double()).float()}


def main():
    torch.manual_seed(20250114)
    gen = torch.Generator().manual_seed(20250114)
    weights = random_weights(GPT(CONFIG), gen)
    tokens = torch.randint(0, CONFIG.vocab_size, (STEPS * BATCH * T + 1,), generator=gen)

    loss64, norm64, final64 = train(weights, tokens, torch.float64)
    loss32, norm32, final32 = train(weights, tokens, torch.float32)

    tensors = dict(weights)
    tensors["tokens"] = tokens.float()
    for key, value in (("loss", loss64), ("grad_norm", norm64)):
        tensors.update(split_float64(key, value))
    tensors["f32.loss"], tensors["f32.grad_norm"] = loss32, norm32
    for name in weights:
        tensors.update(split_float64("final." + name, final64[name]))
        tensors["f32.final." + name] = final32[name]
    metadata = {"spec": CONFIG.spec(), "window": str(T), "batch_size": str(BATCH),
                "steps": str(STEPS), "lr": repr(LR), "min_lr": repr(MIN_LR), "warmup_steps": str(WARMUP),
                "decay_steps": str(DECAY), "beta1": repr(BETAS[0]), "beta2": repr(BETAS[1]),
                "eps": repr(EPS), "weight_decay": repr(WEIGHT_DECAY),
                "grad_clip": repr(GRAD_CLIP), "torch": torch.__version__}
    here = os.path.dirname(os.path.abspath(__file__))
    write_safetensors(os.path.join(here, "training_fixture.safetensors"), tensors, metadata)

    print("step  lr        loss(f64)  loss(f32-f64)  grad_norm(f64)  norm(f32-f64)")
    for s in range(STEPS):
        print(f"{s:4d}  {lr_at(s):.6f}  {loss64[s]:.6f}   {loss32[s] - loss64[s]:+.2e}      "
              f"{norm64[s]:.6f}        {norm32[s] - norm64[s]:+.2e}")
    print("PyTorch float32 against float64, final weights (largest error / tensor's largest):")
    for name in weights:
        scale = final64[name].abs().max().item()
        err = (final32[name].double() - final64[name]).abs().max().item()
        moved = (final64[name] - weights[name].double()).abs().max().item()
        print(f"  {name:40s} {err / scale:.2e}  (moved by up to {moved:.3f}, largest {scale:.3f})")


if __name__ == "__main__":
    main()
