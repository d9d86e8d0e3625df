#!/usr/bin/python3
"""Writes fixture.safetensors: a tiny GPT-2-style model as nanoGPT's GPT defines it, for the
parity test in tests/unit/test_gpt.cpp (which does not need PyTorch to run).

The module below follows nanoGPT's architecture (token and position embeddings, pre-LayerNorm
blocks of causal self-attention with a fused q/k/v projection and a GELU MLP, a final LayerNorm,
an output head tied to the token embedding) and its parameter names. The file holds:

  - the weights under nanoGPT's state_dict names; the tied head is stored once, as
    transformer.wte.weight (nanoGPT's state_dict repeats it as lm_head.weight);
  - a batch: "tokens" [B, T] and "targets" [B, T], one target -1 (nanoGPT's ignore index);
  - what PyTorch computes from them in float64: "logits" [B, T, V], "loss" (the mean
    cross-entropy over the counted positions) and "grad.<name>" for every tensor, the tied one
    with both uses summed.

The weights are drawn wider than GPT-2's initialisation so that every nonlinearity matters, then
rounded to float32; the reference computes in float64 from those float32 values, so it differs
from an exact float32 computation only by the latter's rounding. T is below block_size, so the
last rows of wpe get no gradient. safetensors holds float32 only here: token ids are stored as
floats (exact for these small integers), the float64 results rounded to float32.

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/gpt/make_fixture.py
"""
import json
import math
import os
import struct

import torch
from torch import nn
from torch.nn import functional as F

N_LAYER, N_HEAD, N_EMBD, BLOCK_SIZE, VOCAB = 2, 2, 16, 8, 24
BATCH, T = 3, 7
IGNORE = -1
SPEC = (f"gpt(n_layer={N_LAYER}, n_head={N_HEAD}, n_embd={N_EMBD}, block_size={BLOCK_SIZE}, "
        f"vocab_size={VOCAB})")


class LayerNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD)

    def forward(self, x):
        b, t, c = x.shape
        hs = c // N_HEAD
        q, k, v = self.c_attn(x).split(c, dim=2)
        # [b, t, c] -> [b, heads, t, hs]
        q, k, v = (z.view(b, t, N_HEAD, hs).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        y = scores.softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD)
        self.c_proj = nn.Linear(4 * N_EMBD, N_EMBD)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = LayerNorm(N_EMBD)
        self.attn = CausalSelfAttention()
        self.ln_2 = LayerNorm(N_EMBD)
        self.mlp = MLP()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(VOCAB, N_EMBD),
            wpe=nn.Embedding(BLOCK_SIZE, N_EMBD),
            h=nn.ModuleList([Block() for _ in range(N_LAYER)]),
            ln_f=LayerNorm(N_EMBD),
        ))
        self.lm_head = nn.Linear(N_EMBD, VOCAB, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # one tensor, two uses

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1), ignore_index=IGNORE)
        return logits, loss


def random_weights(model, gen):
    """float32 values, wide enough that attention, GELU and LayerNorm are far from linear."""
    weights = {}
    for name, p in model.named_parameters():  # the tied tensor once, as transformer.wte.weight
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith(
                "ln_f.weight"):
            w = 1 + 0.2 * torch.randn(p.shape, generator=gen)
        elif name.endswith(".bias"):
            w = 0.1 * torch.randn(p.shape, generator=gen)
        elif ".wte." in name or ".wpe." in name:
            w = 0.5 * torch.randn(p.shape, generator=gen)
        else:
            w = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
        weights[name] = w.float()
    return weights


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
    gen = torch.Generator().manual_seed(20241202)
    model = GPT().double()
    weights = random_weights(model, gen)
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(weights[name].double())

    tokens = torch.randint(0, VOCAB, (BATCH, T), generator=gen)
    targets = torch.randint(0, VOCAB, (BATCH, T), generator=gen)
    targets[1, 3] = IGNORE
    logits, loss = model(tokens, targets)
    loss.backward()

    tensors = dict(weights)
    tensors["tokens"] = tokens.float()
    tensors["targets"] = targets.float()
    tensors["logits"] = logits
    tensors["loss"] = loss.reshape(1)
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad
    here = os.path.dirname(os.path.abspath(__file__))
    write_safetensors(os.path.join(here, "fixture.safetensors"), tensors,
                      {"spec": SPEC, "ignore_index": str(IGNORE), "torch": torch.__version__})
    print(f"loss {loss.item():.6f}")
    print("\n".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))


if __name__ == "__main__":
    main()
