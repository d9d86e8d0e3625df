#!/usr/bin/python3
"""Writes fixture.safetensors: a tiny GPT-2-style model as nanoGPT's GPT defines it, for the
parity test in tests/unit/test_gpt_parity.cpp (which does not need PyTorch to run).

The model (nanogpt.py, shared with make_training_fixture.py) follows nanoGPT's architecture and
parameter names. The file holds:

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
import os

import torch

from nanogpt import GPT, GPTConfig, load_weights, random_weights, write_safetensors

CONFIG = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=24, ignore_index=-1)
BATCH, T = 3, 7
IGNORE = CONFIG.ignore_index
VOCAB = CONFIG.vocab_size
SPEC = CONFIG.spec()


def main():
    gen = torch.Generator().manual_seed(20241202)
    model = GPT(CONFIG).double()
    weights = random_weights(model, gen)
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names
    load_weights(model, weights)

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
