"""A GPT-2-style model as nanoGPT's GPT defines it, for the scripts that write the gpt fixtures
(make_fixture.py: one forward and backward; make_training_fixture.py: ten optimizer steps).

Token and position embeddings, pre-LayerNorm blocks of causal self-attention with a fused q/k/v
projection and a GELU MLP, a final LayerNorm, an output head tied to the token embedding; the
parameters carry nanoGPT's state_dict names. Also: wide random weights and a safetensors writer.
"""
import json
import math
import struct
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int
    ignore_index: int = -1

    def spec(self):
        """The same model as a dptrain spec string."""
        return (f"gpt(n_layer={self.n_layer}, n_head={self.n_head}, n_embd={self.n_embd}, "
                f"block_size={self.block_size}, vocab_size={self.vocab_size})")


class LayerNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    # True: PyTorch 2's fused F.scaled_dot_product_attention, as nanoGPT uses where it exists
    # (the GPU speed peer sets it); False: the explicit masked softmax, for the fixtures.
    use_sdpa = False

    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        b, t, c = x.shape
        hs = c // self.n_head
        q, k, v = self.c_attn(x).split(c, dim=2)
        # [b, t, c] -> [b, heads, t, hs]
        q, k, v = (z.view(b, t, self.n_head, hs).transpose(1, 2) for z in (q, k, v))
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        y = scores.softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=LayerNorm(cfg.n_embd),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # one tensor, two uses

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t, device=idx.device))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, self.cfg.vocab_size), targets.view(-1),
                               ignore_index=self.cfg.ignore_index)
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


def load_weights(model, weights):
    """Copies `weights` (by name) into the model, in the model's own dtype."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(weights[name].to(p.dtype))


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
