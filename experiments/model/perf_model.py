#!/usr/bin/env python3
"""Performance model of a data-parallel step: from a measured one-rank timeline (a dptrain
--trace file) or a synthetic one (a GPT-2-style model timed from its FLOPs), and the gradient
sizes, simulate the bucketed, overlapped schedule with alpha-beta costs of the collectives, and
predict step time and scaling efficiency.

    perf_model.py TRACE.json [--profile NAME | --alpha S --beta BYTES_PER_S | --bench TABLE]
                  [--ranks 1,2,...] [--bucket-mb 25 --first-bucket-mb 1] [--compute-scale X]
                  [--cores C]
    perf_model.py --synthetic gpt2|gpt2-medium [--tokens-per-gpu 8192] [--mfu 0.35] ...
    either of them with: [--network h100-ib [--nics-per-node K]]
                         [--algorithm ring|tree|auto|hierarchical] [--zero 0|1]
                         [--grad-comm fp32|bf16] [--accumulate K]

Ring allreduce of n bytes over P ranks:  2(P-1)/P * n / bandwidth  +  2(P-1) * latency.
Ring reduce-scatter or allgather:          (P-1)/P * n / bandwidth  +   (P-1) * latency.
Tree allreduce (NCCL's double binary tree between nodes, a chain inside each):
    2 * ((ranks per node - 1) * intra latency + floor(log2 nodes) * inter latency)
    + 2 n / (0.92 * bandwidth).
"auto" picks, per collective, the algorithm with the smaller predicted time, as NCCL's tuner
does; reduce-scatter and allgather are rings only. "hierarchical" reduce-scatters inside each
node, allreduces 1/(ranks per node) of the bytes between nodes, and allgathers inside the node.
Buckets are built as dptrain builds them (reverse layer order, a small first bucket, then a
cap); a bucket is ready when backward finishes its lowest layer; buckets go one after another on
one channel; the optimizer starts when backward and the last bucket are done. With --zero 1 each
bucket is reduce-scattered instead, the optimizer updates 1/P of the parameters, and every
bucket is then allgathered in float32, exposed. --grad-comm bf16 halves the bytes of the
gradient collective. The rest of the traced step (its "step" span less the layers and the
optimizer) goes before forward. With --cores, ranks beyond one per core stretch compute by
ceil(ranks / cores) (oversubscription_factor).
"""
import argparse
import contextlib
import csv
import io
import json
import statistics
import sys
from collections import Counter

MIB = 1024 * 1024

# Interconnect profiles: bandwidth as allreduce bus bandwidth per rank (bytes/s) and per-hop
# latency (s). Sources, stated in experiments/README.md: NVLink in an 8-GPU H100 node measures
# about 370-480 GB/s allreduce bus bandwidth (nccl-tests); 400 Gb/s InfiniBand NDR gives about
# 45 GB/s per GPU between nodes. "this-machine" is fitted from `dptrain bench allreduce` here.
PROFILES = {
    "nvlink-h100": {"bandwidth": 400e9, "latency": 5e-6},
    "ib-400g": {"bandwidth": 45e9, "latency": 10e-6},
}

# Two-level networks: a profile inside each node, another per NIC between nodes. An HGX H100
# node has 8 GPUs on NVLink and NVSwitch and one 400 Gb/s NIC per GPU (sources: the forecast).
NETWORKS = {
    "h100-ib": {"intra": "nvlink-h100", "inter": "ib-400g", "gpus_per_node": 8,
                "nics_per_node": 8},
}

# NCCL's tuning model (src/graph/tuning.cc) gives the tree 0.92 of the bus bandwidth of the
# channels it runs on, and converts bus to algorithm bandwidth with a factor 0.5 for the tree
# against P / (2(P-1)) for the ring; so the tree's bandwidth term is 2n / (0.92 B).
TREE_BANDWIDTH_FACTOR = 0.92

# ZeRO-1's exposed scalar allreduce (the gradient norm and the non-finite check), bytes.
NORM_BYTES = 8

COLLECTIVES = ("allreduce", "reduce_scatter", "allgather")
ALGORITHMS = ("ring", "tree", "auto", "hierarchical")


def ring_allreduce_seconds(nbytes, ranks, bandwidth, latency):
    """Alpha-beta time of a ring allreduce: 2(P-1)/P * n / B + 2(P-1) * alpha; 0 for one rank."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    return 2.0 * (ranks - 1) / ranks * nbytes / bandwidth + 2.0 * (ranks - 1) * latency


class Network:
    """Ranks fill nodes of `gpus_per_node`. Inside a node, links of `intra_bw` bus bandwidth and
    `intra_lat` latency per hop; between nodes, `nics_per_node` NICs of `inter_bw` each and
    `inter_lat` per hop. Network.flat(B, alpha) is one kind of link for every hop: each rank is a
    node of its own, and the ring costs what ring_allreduce_seconds says."""

    def __init__(self, intra_bw, intra_lat, inter_bw, inter_lat, gpus_per_node=1,
                 nics_per_node=1):
        if gpus_per_node < 1 or nics_per_node < 1:
            raise ValueError("a node needs at least one GPU and one NIC")
        self.intra_bw, self.intra_lat = intra_bw, intra_lat
        self.inter_bw, self.inter_lat = inter_bw, inter_lat
        self.gpus_per_node, self.nics_per_node = gpus_per_node, nics_per_node

    @classmethod
    def flat(cls, bandwidth, latency):
        return cls(bandwidth, latency, bandwidth, latency, 1, 1)

    @classmethod
    def named(cls, name, nics_per_node=None, gpus_per_node=None):
        n = NETWORKS[name]
        intra, inter = PROFILES[n["intra"]], PROFILES[n["inter"]]
        return cls(intra["bandwidth"], intra["latency"], inter["bandwidth"], inter["latency"],
                   gpus_per_node or n["gpus_per_node"], nics_per_node or n["nics_per_node"])

    def layout(self, ranks):
        """(ranks per node, nodes). Fewer ranks than a node's GPUs sit in one node; more must
        fill whole nodes."""
        if ranks <= self.gpus_per_node:
            return ranks, 1
        if ranks % self.gpus_per_node:
            raise ValueError(f"{ranks} ranks do not fill nodes of {self.gpus_per_node} GPUs")
        return self.gpus_per_node, ranks // self.gpus_per_node

    def bus_bandwidth(self, nodes):
        """Bus bandwidth per rank of a ring (or tree) across `nodes`: the intra-node links in
        one node; across nodes, the node's NICs together, as NCCL spreads its channels over
        them, and never more than the intra-node links."""
        if nodes <= 1:
            return self.intra_bw
        return min(self.intra_bw, self.nics_per_node * self.inter_bw)

    def rail(self):
        """The network between nodes as one GPU per node sees it in a hierarchical allreduce:
        the node's GPUs run one inter-node collective each at once, sharing its NICs."""
        share = min(self.nics_per_node, self.gpus_per_node) / self.gpus_per_node
        return Network.flat(self.inter_bw * share, self.inter_lat)

    def inside(self):
        return Network.flat(self.intra_bw, self.intra_lat)


def ring_terms(kind, ranks, net):
    """(latency seconds, seconds per byte) of a ring collective of `kind` over `ranks`. An
    allreduce is 2(P-1) hops, a reduce-scatter or allgather P-1; of them 2(N-1) or N-1 cross
    between N nodes at the inter-node latency, as in NCCL's tuning model (tuning.cc,
    nInterSteps), and the rest take the intra-node latency."""
    per_node, nodes = net.layout(ranks)
    passes = 2 if kind == "allreduce" else 1
    hops, inter_hops = passes * (ranks - 1), passes * (nodes - 1)
    latency = (hops - inter_hops) * net.intra_lat + inter_hops * net.inter_lat
    return latency, passes * (ranks - 1) / ranks / net.bus_bandwidth(nodes)


def tree_terms(ranks, net):
    """(latency seconds, seconds per byte) of NCCL's tree allreduce: a chain through each node's
    GPUs and a double binary tree between nodes, up then down (tuning.cc: 2 * ((ppn - 1) *
    intraLat + log2i(nNodes) * interLat)); 0.92 of the bus bandwidth, converted with 0.5."""
    per_node, nodes = net.layout(ranks)
    depth = nodes.bit_length() - 1  # floor(log2 nodes), NCCL's log2i
    latency = 2.0 * ((per_node - 1) * net.intra_lat + depth * net.inter_lat)
    return latency, 2.0 / (TREE_BANDWIDTH_FACTOR * net.bus_bandwidth(nodes))


def ring_seconds(kind, nbytes, ranks, net):
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    latency, per_byte = ring_terms(kind, ranks, net)
    return latency + per_byte * nbytes


def tree_allreduce_seconds(nbytes, ranks, net):
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    latency, per_byte = tree_terms(ranks, net)
    return latency + per_byte * nbytes


def tree_crossover_bytes(ranks, net):
    """The allreduce size at which ring and tree are predicted to take the same time. The
    tree's bandwidth term is always the larger (2 / 0.92 > 2(P-1)/P), so "auto" picks the tree
    below this size and the ring above it; 0 when the tree's latency is not the smaller (inside
    one node the chain has as many hops as the ring)."""
    if ranks <= 1:
        return 0.0
    ring_lat, ring_per_byte = ring_terms("allreduce", ranks, net)
    tree_lat, tree_per_byte = tree_terms(ranks, net)
    if ring_lat <= tree_lat:
        return 0.0
    return (ring_lat - tree_lat) / (tree_per_byte - ring_per_byte)


def nccl_allreduce(nbytes, ranks, net):
    """(seconds, "tree" or "ring"): the smaller predicted time, as NCCL's topoGetAlgoInfo
    takes the smallest entry of its cost table (tree first, so a tie goes to the tree)."""
    candidates = [("tree", tree_allreduce_seconds(nbytes, ranks, net)),
                  ("ring", ring_seconds("allreduce", nbytes, ranks, net))]
    best = candidates[0]
    for c in candidates[1:]:
        if c[1] < best[1]:
            best = c
    return best[1], best[0]


def hierarchical_seconds(kind, nbytes, ranks, net):
    """(seconds, label) of the two-level collective: inside each node a ring over its GPUs,
    between nodes one collective per GPU position (a rail) on 1/(GPUs per node) of the bytes,
    the rails sharing the node's NICs. allreduce = reduce-scatter inside, allreduce between
    (ring or tree, whichever is faster), allgather inside; reduce-scatter = inside, then
    between; allgather = between, then inside. The stages run one after another."""
    per_node, nodes = net.layout(ranks)
    inside = net.inside()
    if nodes == 1:
        return ring_seconds(kind, nbytes, per_node, inside), "ring"
    rail, part = net.rail(), nbytes / per_node
    if kind == "allreduce":
        between, algo = nccl_allreduce(part, nodes, rail)
        inner = (ring_seconds("reduce_scatter", nbytes, per_node, inside)
                 + ring_seconds("allgather", nbytes, per_node, inside))
        return inner + between, "hier-" + algo
    return (ring_seconds(kind, nbytes, per_node, inside) + ring_seconds(kind, part, nodes, rail),
            "hier-ring")


def collective_seconds(kind, nbytes, ranks, net, algorithm="ring"):
    """(seconds, algorithm used) of one collective. "tree" and "auto" apply to allreduce only:
    NCCL runs reduce-scatter and allgather as rings (tuning.cc skips the tree for them)."""
    if kind not in COLLECTIVES or algorithm not in ALGORITHMS:
        raise ValueError(f"unknown collective {kind} or algorithm {algorithm}")
    if ranks <= 1 or nbytes <= 0:
        return 0.0, "none"
    if algorithm == "hierarchical":
        return hierarchical_seconds(kind, nbytes, ranks, net)
    if kind != "allreduce" or algorithm == "ring":
        return ring_seconds(kind, nbytes, ranks, net), "ring"
    if algorithm == "tree":
        return tree_allreduce_seconds(nbytes, ranks, net), "tree"
    return nccl_allreduce(nbytes, ranks, net)


def oversubscription_factor(ranks, cores):
    """How much longer a rank's compute takes when `ranks` ranks share `cores` cores (None: one
    core or GPU each). Every step waits for the slowest rank, and the most loaded core runs
    ceil(P/C) ranks by turns, so compute stretches by that factor; 1 when P <= C."""
    if not cores or ranks <= cores:
        return 1
    return -(-ranks // cores)


def assign_buckets(layers, first_cap, cap):
    """layers: [(layer index, gradient bytes)] in layer order, one entry per layer or per
    tensor (a tensor's layer being the stage that makes its gradient final). Returns [(lowest
    layer, bytes)] in the order the buckets start (reverse layer order), as dptrain's
    assign_buckets does: a bucket never splits an entry."""
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


def simulate_schedule(forward, backward, optimizer, buckets, reduce_cost, gather_cost=None,
                      sync_seconds=0.0):
    """forward, optimizer: seconds. backward: [(layer, seconds)] in execution order (last layer
    first). buckets: [(lowest layer, bytes)] in start order. reduce_cost(bytes): seconds of a
    bucket's gradient collective, which starts when the bucket is ready and the one before it is
    done. sync_seconds: a collective after the last bucket, before the optimizer (ZeRO-1's
    norm). gather_cost(bytes), if given: seconds of a bucket's allgather after the optimizer,
    one bucket after another, exposed. Returns (step seconds, total comm seconds, exposed comm
    seconds)."""
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
        cost = reduce_cost(nbytes)
        channel = max(channel, ready) + cost
        total += cost
    comm_end = max(backward_end, channel) + sync_seconds
    gather = sum(gather_cost(nbytes) for _, nbytes in buckets) if gather_cost else 0.0
    exposed = comm_end - backward_end + gather
    return comm_end + optimizer + gather, total + sync_seconds + gather, exposed


def simulate_step(forward, backward, optimizer, buckets, ranks, bandwidth, latency):
    """simulate_schedule with a ring allreduce of each bucket on one kind of link."""
    return simulate_schedule(forward, backward, optimizer, buckets,
                             lambda n: ring_allreduce_seconds(n, ranks, bandwidth, latency))


def predict_step(timeline, buckets, ranks, net, algorithm="ring", zero=False, grad_bytes=4,
                 accumulate=1, stretch=1):
    """One optimizer step at `ranks` ranks. timeline: (other, forward, backward, optimizer) of
    one micro-batch on one rank (backward as [(layer, seconds)]). With `accumulate` K, K-1
    micro-batches run forward and backward without communicating before the last one, whose
    backward the buckets overlap. zero: ZeRO-1 (reduce-scatter per bucket, the optimizer on
    1/P of the parameters, a scalar allreduce, then an allgather per bucket, in float32).
    grad_bytes: bytes per gradient element on the wire (4 float32, 2 bfloat16). stretch
    multiplies compute (oversubscription). Returns (step, comm, exposed, Counter of the
    algorithms the gradient collectives used)."""
    other, forward, backward, optimizer = timeline
    micro = forward + sum(s for _, s in backward)
    lead = (other + (accumulate - 1) * micro + forward) * stretch
    backward = [(layer, s * stretch) for layer, s in backward]
    optimizer = optimizer * stretch / (ranks if zero else 1)
    used = Counter()

    def reduce_cost(nbytes):
        seconds, algo = collective_seconds("reduce_scatter" if zero else "allreduce",
                                           nbytes * grad_bytes / 4, ranks, net, algorithm)
        used[algo] += 1
        return seconds

    gather_cost, sync = None, 0.0
    if zero:
        gather_cost = lambda n: collective_seconds("allgather", n, ranks, net, algorithm)[0]
        sync = collective_seconds("allreduce", NORM_BYTES, ranks, net, algorithm)[0]
    step, total, exposed = simulate_schedule(lead, backward, optimizer, buckets, reduce_cost,
                                             gather_cost, sync)
    return step, total, exposed, used


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


# GPT-2-style models as dptrain's gpt(...) builds them (nanoGPT's GPT).
GPT_PRESETS = {
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024,
             "vocab_size": 50257},
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024, "block_size": 1024,
                    "vocab_size": 50257},
}
H100_BF16_DENSE_FLOPS = 989e12  # H100 SXM, dense BF16 tensor cores (1,979 with sparsity)
# AdamW per float32 parameter: reads parameter, gradient and both moments, writes parameter and
# both moments: 7 x 4 bytes.
ADAMW_BYTES_PER_PARAM = 28


def gpt_tensors(cfg):
    """[(stage, name, elements)] of each parameter tensor in dptrain's flat-buffer order, with
    the backward stage that makes its gradient final. Stages are dptrain's layers: 0 the
    embedding (wte, wpe), 1..L the blocks, L+1 ln_f, L+2 the head, whose weight is wte (tied):
    wte's gradient is final only when the embedding's backward, the last, is done."""
    L, C = cfg["n_layer"], cfg["n_embd"]
    out = [(0, "wte.weight", cfg["vocab_size"] * C), (0, "wpe.weight", cfg["block_size"] * C)]
    for i in range(L):
        for name, n in (("ln_1.weight", C), ("ln_1.bias", C),
                        ("attn.c_attn.weight", 3 * C * C), ("attn.c_attn.bias", 3 * C),
                        ("attn.c_proj.weight", C * C), ("attn.c_proj.bias", C),
                        ("ln_2.weight", C), ("ln_2.bias", C),
                        ("mlp.c_fc.weight", 4 * C * C), ("mlp.c_fc.bias", 4 * C),
                        ("mlp.c_proj.weight", 4 * C * C), ("mlp.c_proj.bias", C)):
            out.append((i + 1, f"h.{i}.{name}", n))
    out += [(L + 1, "ln_f.weight", C), (L + 1, "ln_f.bias", C)]
    return out


def gpt_param_count(cfg):
    return sum(n for _, _, n in gpt_tensors(cfg))


def gpt_stage_flops(cfg):
    """{stage: forward+backward FLOPs per token}, counted as nanoGPT's estimate_mfu counts
    them: 6 per parameter (the position embedding left out, the tied wte counted once, in the
    head, where its matmul is) and 12 * C * T per block for attention. They sum to
    6N + 12 L C T."""
    L, C, T = cfg["n_layer"], cfg["n_embd"], cfg["block_size"]
    flops = {0: 0.0, L + 2: 6.0 * cfg["vocab_size"] * C}
    for stage, name, n in gpt_tensors(cfg):
        if stage > 0:
            flops[stage] = flops.get(stage, 0.0) + 6.0 * n
    for i in range(1, L + 1):
        flops[i] += 12.0 * C * T
    return flops


def gpt_flops_per_token(cfg):
    return sum(gpt_stage_flops(cfg).values())


def gpt_timeline(cfg, tokens, mfu, peak_flops, optimizer_bytes_per_s):
    """((other, forward, backward, optimizer), grads) of one rank's micro-batch of `tokens`
    tokens. Each stage's forward + backward takes its FLOPs at mfu * peak; backward is twice
    forward. The optimizer is AdamW's memory traffic at optimizer_bytes_per_s. grads:
    [(stage, float32 bytes)] per tensor in buffer order, for assign_buckets."""
    rate = mfu * peak_flops
    stage_seconds = {s: tokens * f / rate for s, f in gpt_stage_flops(cfg).items()}
    forward = sum(stage_seconds.values()) / 3.0
    backward = [(s, stage_seconds[s] * 2.0 / 3.0) for s in sorted(stage_seconds, reverse=True)]
    optimizer = ADAMW_BYTES_PER_PARAM * gpt_param_count(cfg) / optimizer_bytes_per_s
    grads = [(stage, 4 * n) for stage, _, n in gpt_tensors(cfg)]
    return (0.0, forward, backward, optimizer), grads


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Predict data-parallel step time from a trace or a synthetic transformer.")
    p.add_argument("trace", nargs="?", help="a one-rank dptrain --trace file")
    p.add_argument("--synthetic", choices=sorted(GPT_PRESETS),
                   help="instead of a trace, a GPT-2-style model timed from its FLOPs")
    p.add_argument("--tokens-per-gpu", type=int, default=8192,
                   help="tokens per rank per micro-batch (--synthetic; default 8 x 1024)")
    p.add_argument("--mfu", type=float, default=0.35,
                   help="fraction of peak that forward and backward reach (--synthetic)")
    p.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_FLOPS / 1e12,
                   help="the device's peak, TFLOP/s (--synthetic; default H100 dense bf16)")
    p.add_argument("--optimizer-tbps", type=float, default=2.5,
                   help="memory bandwidth the AdamW step reaches, TB/s (--synthetic)")
    p.add_argument("--profile", choices=sorted(PROFILES))
    p.add_argument("--bench", help="fit latency and bandwidth to this `dptrain bench "
                   "allreduce` table (the profile of the machine it ran on)")
    p.add_argument("--alpha", type=float, help="latency per ring hop, seconds")
    p.add_argument("--beta", type=float, help="allreduce bus bandwidth, bytes/s")
    p.add_argument("--network", choices=sorted(NETWORKS),
                   help="a two-level network: nodes of GPUs, NICs between them")
    p.add_argument("--gpus-per-node", type=int, help="with --network")
    p.add_argument("--nics-per-node", type=int, help="with --network")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="ring",
                   help="auto: ring or tree per collective, the faster (NCCL's rule); "
                   "hierarchical needs --network (default ring)")
    p.add_argument("--zero", type=int, choices=(0, 1), default=0, help="ZeRO stage 1")
    p.add_argument("--grad-comm", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per optimizer step; only the last communicates")
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
    if (a.trace is None) == (a.synthetic is None):
        p.error("give a trace file or --synthetic, not both")
    if a.network and (a.profile or a.bench or a.alpha is not None or a.beta):
        p.error("give --network or a one-link profile (--profile, --bench, --alpha/--beta)")
    if (a.gpus_per_node or a.nics_per_node) and not a.network:
        p.error("--gpus-per-node and --nics-per-node go with --network")
    if a.accumulate < 1:
        p.error("--accumulate must be at least 1")
    if a.cores is not None and a.cores < 1:
        p.error("--cores must be at least 1")
    if a.network:
        if (a.gpus_per_node is not None and a.gpus_per_node < 1) or (
                a.nics_per_node is not None and a.nics_per_node < 1):
            p.error("--gpus-per-node and --nics-per-node must be at least 1")
        net = Network.named(a.network, a.nics_per_node, a.gpus_per_node)
    else:
        if a.algorithm == "hierarchical":
            p.error("--algorithm hierarchical needs --network")
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
            p.error("give --profile, --network, --bench, or both --alpha and --beta")
        net = Network.flat(bandwidth, latency)
    try:
        world_sizes = [int(r) for r in a.ranks.split(",")]
        if min(world_sizes) < 1:
            raise ValueError("a world size must be at least 1")
        for r in world_sizes:
            net.layout(r)
    except ValueError as e:
        p.error(f"--ranks {a.ranks}: {e}")

    if a.synthetic:
        cfg = GPT_PRESETS[a.synthetic]
        if a.tokens_per_gpu < 1 or not 0 < a.mfu <= 1 or a.peak_tflops <= 0 \
                or a.optimizer_tbps <= 0:
            p.error("--tokens-per-gpu, --mfu (at most 1), --peak-tflops and --optimizer-tbps "
                    "must be positive")
        timeline, grads = gpt_timeline(cfg, a.tokens_per_gpu, a.mfu, a.peak_tflops * 1e12,
                                       a.optimizer_tbps * 1e12)
        other, forward, backward, optimizer = timeline
        print(f"# {a.synthetic}: {gpt_param_count(cfg):,} parameters, "
              f"{gpt_flops_per_token(cfg) / 1e6:.5g} MFLOP per token; {a.tokens_per_gpu} tokens "
              f"per GPU at {a.mfu:g} of {a.peak_tflops:g} TFLOP/s: forward {forward * 1e3:.4g} "
              f"ms, backward {sum(s for _, s in backward) * 1e3:.4g} ms, optimizer "
              f"{optimizer * 1e3:.4g} ms per micro-batch", file=sys.stderr)
        samples_per_step = a.tokens_per_gpu * a.accumulate / cfg["block_size"]
    else:
        forward, backward, optimizer, grads, other = read_trace(a.trace)
        print(f"# from {a.trace}: forward {forward * 1e3:.4g} ms, backward "
              f"{sum(s for _, s in backward) * 1e3:.4g} ms, optimizer {optimizer * 1e3:.4g} ms, "
              f"other {other * 1e3:.4g} ms per step", file=sys.stderr)
        k = a.compute_scale
        # The rest of the step comes before forward (the batch is staged, the gradients zeroed).
        timeline = (other, forward * k, [(l, s * k) for l, s in backward], optimizer * k)
        samples_per_step = a.batch * a.accumulate
    buckets = assign_buckets(grads, int(a.first_bucket_mb * MIB), int(a.bucket_mb * MIB))
    if a.synthetic:
        print(f"# {len(buckets)} buckets, MB in start order (lowest layer): " + ", ".join(
            f"{n / 1e6:.3g} ({l})" for l, n in buckets), file=sys.stderr)
    options = dict(algorithm=a.algorithm, zero=bool(a.zero),
                   grad_bytes=2 if a.grad_comm == "bf16" else 4, accumulate=a.accumulate)
    one = predict_step(timeline, buckets, 1, net, **options)[0]
    header = "ranks,step_seconds,samples_per_second,efficiency,comm_seconds,exposed_comm_seconds"
    print(header + (",tokens_per_second,algorithms" if a.synthetic else ""))
    for ranks in world_sizes:
        f = oversubscription_factor(ranks, a.cores)
        step, total, exposed, used = predict_step(timeline, buckets, ranks, net, stretch=f,
                                                  **options)
        line = (f"{ranks},{step:.6g},{samples_per_step * ranks / step:.6g},{one / step:.4f},"
                f"{total:.6g},{exposed:.6g}")
        if a.synthetic:
            tokens = a.tokens_per_gpu * a.accumulate * ranks / step
            used.pop("none", None)
            line += f",{tokens:.6g}," + (" ".join(f"{k}:{v}" for k, v in sorted(used.items()))
                                         or "none")
        print(line)
    return 0


def predict_rows(argv):
    """main(argv) in this process, its CSV as a list of dicts (for scripts that run the model).
    Bad options exit as they do on the command line."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(argv)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


if __name__ == "__main__":
    sys.exit(main())
