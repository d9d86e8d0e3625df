#!/usr/bin/env python3
"""Performance model of a data-parallel step: from a measured one-rank timeline (a dptrain
--trace file) and the gradient sizes it records, simulate the bucketed, overlapped schedule
with an alpha-beta cost for ring allreduce, and predict step time and scaling efficiency.

    perf_model.py TRACE.json [--profile NAME | --alpha S --beta BYTES_PER_S] [--ranks 1,2,...]
                  [--bucket-mb 25 --first-bucket-mb 1] [--compute-scale X] [--cores C]

Ring allreduce of n bytes over P ranks:  2(P-1)/P * n / bandwidth  +  2(P-1) * latency.
Buckets are built as dptrain builds them (reverse layer order, a small first bucket, then a
cap); a bucket is ready when backward finishes its lowest layer; buckets go one after another on
one channel; the optimizer starts when backward and the last bucket are done. The rest of the
traced step (its "step" span less the layers and the optimizer) goes before forward. With
--cores, ranks beyond one per core stretch compute by ceil(ranks / cores)
(oversubscription_factor).
"""
import argparse
import json
import statistics
import sys

MIB = 1024 * 1024

# Interconnect profiles: bandwidth as allreduce bus bandwidth per rank (bytes/s) and per-hop
# latency (s). Sources, stated in experiments/README.md: NVLink in an 8-GPU H100 node measures
# about 370-480 GB/s allreduce bus bandwidth (nccl-tests); 400 Gb/s InfiniBand NDR gives about
# 45 GB/s per GPU between nodes. "this-machine" is fitted from `dptrain bench allreduce` here.
PROFILES = {
    "nvlink-h100": {"bandwidth": 400e9, "latency": 5e-6},
    "ib-400g": {"bandwidth": 45e9, "latency": 10e-6},
}


def ring_allreduce_seconds(nbytes, ranks, bandwidth, latency):
    """Alpha-beta time of a ring allreduce: 2(P-1)/P * n / B + 2(P-1) * alpha; 0 for one rank."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    return 2.0 * (ranks - 1) / ranks * nbytes / bandwidth + 2.0 * (ranks - 1) * latency


def oversubscription_factor(ranks, cores):
    """How much longer a rank's compute takes when `ranks` ranks share `cores` cores (None: one
    core or GPU each). Every step waits for the slowest rank, and the most loaded core runs
    ceil(P/C) ranks by turns, so compute stretches by that factor; 1 when P <= C."""
    if not cores or ranks <= cores:
        return 1
    return -(-ranks // cores)


def assign_buckets(layers, first_cap, cap):
    """layers: [(layer index, gradient bytes)] in layer order. Returns [(lowest layer, bytes)] in
    the order the buckets start (reverse layer order), as dptrain's assign_buckets does."""
    buckets, current, current_bytes, limit = [], [], 0, (first_cap if cap > 0 else float("inf"))
    for layer, nbytes in reversed([l for l in layers if l[1] > 0]):
        if current and current_bytes + nbytes > limit:
            buckets.append((current[-1], current_bytes))
            current, current_bytes = [], 0
            limit = cap
        current.append(layer)
        current_bytes += nbytes
    if current:
        buckets.append((current[-1], current_bytes))
    return buckets


def fit_ring(sizes, seconds, ranks):
    """Latency and bandwidth of the ring formula fitted (least squares, t = c0 + c1 * n) to
    measured allreduce times of n bytes among `ranks` ranks: c1 = 2(P-1)/(P*B), c0 = 2(P-1)*alpha."""
    if ranks < 2 or len(sizes) < 2:
        raise ValueError("fitting needs at least 2 ranks and 2 sizes")
    n = len(sizes)
    mx, my = sum(sizes) / n, sum(seconds) / n
    sxx = sum((x - mx) ** 2 for x in sizes)
    slope = sum((x - mx) * (y - my) for x, y in zip(sizes, seconds)) / sxx
    intercept = my - slope * mx
    bandwidth = 2.0 * (ranks - 1) / ranks / slope
    latency = max(0.0, intercept / (2.0 * (ranks - 1)))
    return bandwidth, latency


def read_bench(path):
    """(ranks, [bytes], [seconds]) from the table `dptrain bench allreduce` prints."""
    ranks, sizes, seconds = None, [], []
    for line in open(path):
        if line.startswith("# dptrain bench allreduce:"):
            ranks = int(line.split(":")[1].split()[0])
        elif line.strip() and not line.startswith("#"):
            cols = line.split()
            sizes.append(float(cols[0]))
            seconds.append(float(cols[4]) * 1e-6)
    if ranks is None or not sizes:
        raise SystemExit(f"perf_model.py: error: {path}: not a dptrain bench allreduce table")
    return ranks, sizes, seconds


def simulate_step(forward, backward, optimizer, buckets, ranks, bandwidth, latency):
    """forward, optimizer: seconds. backward: [(layer, seconds)] in execution order (last layer
    first). Returns (step seconds, total comm seconds, exposed comm seconds)."""
    t = forward
    done_at = {}
    for layer, seconds in backward:
        t += seconds
        done_at[layer] = t
    backward_end = t
    channel = 0.0
    total = 0.0
    for lowest_layer, nbytes in buckets:
        ready = done_at.get(lowest_layer, backward_end)
        cost = ring_allreduce_seconds(nbytes, ranks, bandwidth, latency)
        channel = max(channel, ready) + cost
        total += cost
    comm_end = max(backward_end, channel)
    exposed = comm_end - backward_end
    return comm_end + optimizer, total, exposed


def read_trace(path, rank=0):
    """Median forward, per-layer backward and optimizer seconds over the traced steps of a rank,
    with each layer's gradient bytes, and the median rest of the step ("other": staging the
    batch, the loss, zeroing the gradients, launch gaps) from the trace's "step" spans (0 in a
    trace without them). Medians, as dptrain's step time is: a stray slow step counts for
    nothing."""
    events = json.load(open(path))["traceEvents"]
    spans = [e for e in events if e.get("ph") == "X" and e.get("pid") == rank and e.get("tid") == 0]
    steps = sorted({e["args"]["step"] for e in spans})
    if not steps:
        raise SystemExit(f"perf_model.py: error: {path}: no compute spans for rank {rank}")
    per_step = lambda pred: statistics.median(
        sum(e["dur"] for e in spans if e["args"]["step"] == s and pred(e)) for s in steps) * 1e-6
    forward = per_step(lambda e: e["name"].startswith("forward "))
    optimizer = per_step(lambda e: e["name"] == "optimizer")
    layers = sorted({int(e["name"].split()[1]) for e in spans if e["name"].startswith("backward ")})
    backward, grads = [], []
    for layer in reversed(layers):
        mine = [e for e in spans if e["name"].startswith(f"backward {layer} ")]
        backward.append((layer, statistics.median(e["dur"] for e in mine) * 1e-6))
        grads.append((layer, mine[0]["args"].get("bytes", 0)))
    other = 0.0
    if any(e["name"] == "step" for e in spans):
        rest = []
        for s in steps:
            mine = [e for e in spans if e["args"]["step"] == s]
            whole = sum(e["dur"] for e in mine if e["name"] == "step")
            rest.append(whole - sum(e["dur"] for e in mine if e["name"] != "step"))
        other = max(0.0, statistics.median(rest) * 1e-6)
    return forward, backward, optimizer, sorted(grads), other


def main(argv=None):
    p = argparse.ArgumentParser(description="Predict data-parallel step time from a trace.")
    p.add_argument("trace")
    p.add_argument("--profile", choices=sorted(PROFILES))
    p.add_argument("--bench", help="fit latency and bandwidth to this `dptrain bench "
                   "allreduce` table (the profile of the machine it ran on)")
    p.add_argument("--alpha", type=float, help="latency per ring hop, seconds")
    p.add_argument("--beta", type=float, help="allreduce bus bandwidth, bytes/s")
    p.add_argument("--ranks", default="1,2,4,8,64,512,1024")
    p.add_argument("--bucket-mb", type=float, default=25)
    p.add_argument("--first-bucket-mb", type=float, default=1)
    p.add_argument("--compute-scale", type=float, default=1.0,
                   help="multiply measured compute times (e.g. to stand for a faster device)")
    p.add_argument("--batch", type=int, default=64, help="per-rank batch of the trace")
    p.add_argument("--cores", type=int,
                   help="cores the ranks share (CPU runs): beyond one rank per core, compute "
                   "stretches by ceil(ranks / cores)")
    a = p.parse_args(argv)
    if a.bench:
        ranks, sizes, seconds = read_bench(a.bench)
        bandwidth, latency = fit_ring(sizes, seconds, ranks)
        print(f"# fitted to {a.bench}: bandwidth {bandwidth / 1e9:.3g} GB/s, "
              f"latency {latency * 1e6:.3g} us per hop", file=sys.stderr)
    elif a.profile:
        bandwidth, latency = PROFILES[a.profile]["bandwidth"], PROFILES[a.profile]["latency"]
    elif a.alpha is not None and a.beta:
        bandwidth, latency = a.beta, a.alpha
    else:
        p.error("give --profile or both --alpha and --beta")
    forward, backward, optimizer, grads, other = read_trace(a.trace)
    print(f"# from {a.trace}: forward {forward * 1e3:.4g} ms, backward "
          f"{sum(s for _, s in backward) * 1e3:.4g} ms, optimizer {optimizer * 1e3:.4g} ms, "
          f"other {other * 1e3:.4g} ms per step", file=sys.stderr)
    k = a.compute_scale
    backward = [(l, s * k) for l, s in backward]
    buckets = assign_buckets(grads, int(a.first_bucket_mb * MIB), int(a.bucket_mb * MIB))
    # The rest of the step comes before forward (the batch is staged, the gradients zeroed).
    one, _, _ = simulate_step(other + forward * k, backward, optimizer * k, buckets, 1, bandwidth,
                              latency)
    print("ranks,step_seconds,samples_per_second,efficiency,comm_seconds,exposed_comm_seconds")
    if a.cores is not None and a.cores < 1:
        p.error("--cores must be at least 1")
    for ranks in [int(r) for r in a.ranks.split(",")]:
        f = oversubscription_factor(ranks, a.cores)
        step, total, exposed = simulate_step((other + forward * k) * f,
                                             [(l, s * f) for l, s in backward], optimizer * k * f,
                                             buckets, ranks, bandwidth, latency)
        print(f"{ranks},{step:.6g},{a.batch * ranks / step:.6g},{one / step:.4f},{total:.6g},"
              f"{exposed:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
