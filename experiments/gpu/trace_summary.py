#!/usr/bin/env python3
"""Where a traced step's time goes, from a dptrain --trace timeline (rank 0):

    trace_summary.py TRACE.json

One line per layer kind and pass (the layers of one kind added up: all the transformer blocks
together, say), then the optimizer, and the rest of the step (the loss, waiting for the gradients'
collectives, the host's own work), each as microseconds per traced step and as a share of the
step. The spans are the trainer's own markers (forward and backward of each top-level layer,
the optimizer, the step); on a GPU they are timed by device events, so they are the GPU's time.
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
    return "\n".join(lines)


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
