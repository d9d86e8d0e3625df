#!/usr/bin/env python3
"""Where a traced step's time goes, from a dptrain --trace timeline (rank 0):

    trace_summary.py TRACE.json

One line per layer kind and pass (the layers of one kind added up: all the transformer blocks
together, say), then the optimizer, and the rest of the step (the loss, waiting for the gradients'
collectives, the host's own work), each as microseconds per traced step and as a share of the
step. The spans are the trainer's own markers (forward and backward of each top-level layer,
the optimizer, the step); on a GPU they are timed by device events, so they are the GPU's time.

Then, from the ops lane, the step's named ranges as a tree: its phases (forward, loss, backward,
the optimizer, ...), the layers in each, and the parts of each composite layer (a transformer
block's ln_1, attn with c_attn, attention and c_proj, residual, ...), layers of one kind added
up (transformer.h.0 to transformer.h.11 as transformer.h.*), per traced step and as a share of
the step. A range's time includes its parts'.
"""
import collections
import json
import re
import sys


def fail(message):
    print(f"trace_summary.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def kind(name):
    """'forward 3 Block(LayerNorm(...), ...)' -> 'forward Block'."""
    m = re.match(r"(forward|backward) \d+ ([A-Za-z0-9_]+)", name)
    return f"{m.group(1)} {m.group(2)}" if m else name


def summarize(events):
    # Rank 0's compute lane (lane 1 holds the allreduce buckets).
    spans = [e for e in events
             if e.get("ph") == "X" and e.get("pid", 0) == 0 and e.get("tid", 0) == 0]
    steps = [e for e in spans if e["name"] == "step"]
    if not steps:
        fail("no step span in the trace")
    per_kind = collections.defaultdict(float)
    for e in spans:
        if e["name"] != "step":
            per_kind[kind(e["name"])] += e["dur"]
    n = len(steps)
    step_us = sum(e["dur"] for e in steps) / n
    rows = sorted(((k, v / n) for k, v in per_kind.items()), key=lambda kv: -kv[1])
    rows.append(("rest of the step", step_us - sum(v for _, v in rows)))
    lines = [f"{n} traced steps, {step_us:.0f} us each"]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        lines.append(f"  {k:<{width}}  {v:10.0f} us  {100 * v / step_us:5.1f}%")
    lines += op_tree(events, n, step_us)
    return "\n".join(lines)


def op_tree(events, n, step_us):
    """The ops lane (tid 2) as an indented tree, numbered layers folded together."""
    ops = [e for e in events
           if e.get("ph") == "X" and e.get("pid", 0) == 0 and e.get("tid", 0) == 2]
    if not ops:
        return []
    total = collections.defaultdict(float)
    first = {}
    for e in sorted(ops, key=lambda e: e["ts"]):
        path = tuple(re.sub(r"\.\d+$", ".*", part) for part in e["name"].split("/"))
        total[path] += e["dur"]
        first.setdefault(path, len(first))
    # Depth first, each level in the order it first ran.
    def key(path):
        return tuple(first[path[:i + 1]] if path[:i + 1] in first else -1
                     for i in range(len(path)))
    paths = sorted(total, key=key)
    labels = ["  " * (len(p) - 1) + p[-1] for p in paths]
    width = max(len(label) for label in labels)
    lines = ["named ranges (ops lane), per step; each includes the ranges under it:"]
    for label, p in zip(labels, paths):
        v = total[p] / n
        lines.append(f"  {label:<{width}}  {v:10.0f} us  {100 * v / step_us:5.1f}%")
    return lines


def main():
    if len(sys.argv) != 2:
        print("usage: trace_summary.py TRACE.json", file=sys.stderr)
        sys.exit(2)
    try:
        with open(sys.argv[1]) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{sys.argv[1]}: {e}")
    events = data.get("traceEvents", []) if isinstance(data, dict) else data
    if not isinstance(events, list):
        fail(f"{sys.argv[1]}: not a trace-event timeline")
    print(summarize(events))


if __name__ == "__main__":
    main()
