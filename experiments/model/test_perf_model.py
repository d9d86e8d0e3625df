"""Unit tests of the performance model's formulas."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perf_model as pm  # noqa: E402


class RingFormula(unittest.TestCase):
    def test_hand_worked_case(self):
        # 100 MB over 4 ranks at 10 GB/s with 5 us per hop:
        # 2*3/4 * 1e8 / 1e10 = 0.015 s, plus 2*3 * 5e-6 = 3e-5 s -> 0.01503 s.
        self.assertAlmostEqual(pm.ring_allreduce_seconds(1e8, 4, 1e10, 5e-6), 0.01503, places=12)

    def test_one_rank_costs_nothing(self):
        self.assertEqual(pm.ring_allreduce_seconds(1e8, 1, 1e10, 5e-6), 0.0)

    def test_bandwidth_term_approaches_twice_the_bytes(self):
        big = pm.ring_allreduce_seconds(1e9, 1024, 1e10, 0.0)
        self.assertAlmostEqual(big, 2 * 1023 / 1024 * 0.1, places=12)


class Fit(unittest.TestCase):
    def test_recovers_the_parameters_of_exact_data(self):
        bw, lat, p = 5e9, 20e-6, 2
        sizes = [1e3, 1e5, 1e6, 4e6]
        times = [pm.ring_allreduce_seconds(n, p, bw, lat) for n in sizes]
        fbw, flat = pm.fit_ring(sizes, times, p)
        self.assertAlmostEqual(fbw / bw, 1.0, places=9)
        self.assertAlmostEqual(flat / lat, 1.0, places=6)


class Buckets(unittest.TestCase):
    def test_reverse_order_first_cap_then_cap(self):
        mib = 1024 * 1024
        layers = [(0, 3 * mib), (2, mib // 2), (4, mib // 4), (6, mib // 4)]
        # Reverse: 6 (0.25), 4 (0.25) fit the 1 MiB first bucket; 2 (0.5) would pass... 1.0 MiB
        # exactly fits; then layer 0 (3 MiB) starts the next bucket under the 25 MiB cap.
        self.assertEqual(pm.assign_buckets(layers, mib, 25 * mib), [(2, mib), (0, 3 * mib)])

    def test_cap_zero_is_one_bucket(self):
        self.assertEqual(pm.assign_buckets([(0, 10), (1, 0), (2, 20)], 1, 0), [(0, 30)])


class Schedule(unittest.TestCase):
    def test_overlap_hides_early_buckets(self):
        # Forward 1 s; backward layer 2 then layer 0, 1 s each; optimizer 0.5 s.
        # Bucket of layer 2 (ready at 2 s) costs 0.5 s -> ends 2.5 s, hidden behind layer 0.
        # Bucket of layer 0 (ready at 3 s) costs 0.25 s -> ends 3.25 s: 0.25 s exposed.
        bw, lat = 1.0, 0.0  # with 2 ranks, 2(P-1)/P = 1: cost = bytes / bandwidth
        step, total, exposed = pm.simulate_step(1.0, [(2, 1.0), (0, 1.0)], 0.5,
                                                [(2, 0.5), (0, 0.25)], 2, bw, lat)
        self.assertAlmostEqual(total, 0.75)
        self.assertAlmostEqual(exposed, 0.25)
        self.assertAlmostEqual(step, 3.75)

    def test_serial_channel(self):
        # Both buckets ready at once: they queue on the channel.
        step, total, exposed = pm.simulate_step(0.0, [(0, 1.0)], 0.0, [(0, 1.0), (0, 2.0)], 2,
                                                1.0, 0.0)
        self.assertAlmostEqual(exposed, 3.0)
        self.assertAlmostEqual(step, 4.0)


class Oversubscription(unittest.TestCase):
    def test_one_rank_per_core_or_gpu_costs_nothing(self):
        self.assertEqual(pm.oversubscription_factor(2, 2), 1)
        self.assertEqual(pm.oversubscription_factor(512, None), 1)

    def test_the_most_loaded_core_sets_the_pace(self):
        # 3 ranks on 2 cores: one core runs two ranks in turn, and every step waits for them.
        self.assertEqual(pm.oversubscription_factor(3, 2), 2)
        self.assertEqual(pm.oversubscription_factor(4, 2), 2)
        self.assertEqual(pm.oversubscription_factor(5, 2), 3)

    def test_command_line_stretches_compute_only_beyond_the_cores(self):
        # 1 ms forward, 2 ms backward with no gradient bytes, 1 ms optimizer: 4 ms of compute,
        # nothing to communicate.
        steps = predict([("forward 0 Linear", 1000, {}), ("backward 0 Linear", 2000, {"bytes": 0}),
                         ("optimizer", 1000, {})],
                        ["--alpha", "0", "--beta", "1e9", "--ranks", "1,2,3", "--cores", "2"])
        self.assertEqual(len(steps), 3)
        self.assertAlmostEqual(steps[0], 0.004)
        self.assertAlmostEqual(steps[1], 0.004)
        self.assertAlmostEqual(steps[2], 0.008)


class RestOfTheStep(unittest.TestCase):
    def test_the_step_span_adds_what_the_layers_leave(self):
        # A 5 ms step whose layers and optimizer take 4 ms: 1 ms of other work, which a shared
        # core stretches like the rest.
        steps = predict([("step", 5000, {}), ("forward 0 Linear", 1000, {}),
                         ("backward 0 Linear", 2000, {"bytes": 0}), ("optimizer", 1000, {})],
                        ["--alpha", "0", "--beta", "1e9", "--ranks", "1,3", "--cores", "2"])
        self.assertAlmostEqual(steps[0], 0.005)
        self.assertAlmostEqual(steps[1], 0.010)

    def test_no_step_span_means_nothing_else(self):
        steps = predict([("forward 0 Linear", 1000, {}), ("backward 0 Linear", 2000, {"bytes": 0}),
                         ("optimizer", 1000, {})], ["--alpha", "0", "--beta", "1e9", "--ranks", "1"])
        self.assertAlmostEqual(steps[0], 0.004)



H100 = pm.Network.named("h100-ib")                  # 8 GPUs and 8 NICs per node
ONE_NIC = pm.Network.named("h100-ib", nics_per_node=1)
FLAT_IB = pm.Network.flat(45e9, 10e-6)              # every hop over InfiniBand
MIB = 1024 * 1024


class AlgorithmChoice(unittest.TestCase):
    """auto takes the smaller predicted time of ring and tree (NCCL's rule); since the tree's
    bandwidth term is always the larger, that is: tree below the crossover size, ring above."""

    def test_auto_is_the_faster_of_the_two(self):
        for net in (H100, ONE_NIC, FLAT_IB):
            for ranks in (2, 8, 16, 64, 512, 1024):
                for n in (8, 64 * 1024, MIB, 25 * MIB, 154e6, 4e9):
                    ring = pm.ring_seconds("allreduce", n, ranks, net)
                    tree = pm.tree_allreduce_seconds(n, ranks, net)
                    seconds, algo = pm.nccl_allreduce(n, ranks, net)
                    self.assertEqual(seconds, min(ring, tree))
                    self.assertEqual(algo, "tree" if tree <= ring else "ring")

    def test_the_choice_flips_at_the_crossover(self):
        for net in (H100, ONE_NIC, FLAT_IB):
            for ranks in (16, 64, 512, 1024):
                c = pm.tree_crossover_bytes(ranks, net)
                self.assertGreater(c, 0)
                self.assertEqual(pm.nccl_allreduce(0.99 * c, ranks, net)[1], "tree")
                self.assertEqual(pm.nccl_allreduce(1.01 * c, ranks, net)[1], "ring")
                ring = pm.ring_seconds("allreduce", c, ranks, net)
                self.assertAlmostEqual(pm.tree_allreduce_seconds(c, ranks, net) / ring, 1.0)

    def test_small_messages_at_large_scale_take_the_tree_large_ones_the_ring(self):
        self.assertEqual(pm.nccl_allreduce(MIB, 512, H100)[1], "tree")
        self.assertEqual(pm.nccl_allreduce(MIB, 512, FLAT_IB)[1], "tree")
        self.assertEqual(pm.nccl_allreduce(16e9, 512, FLAT_IB)[1], "ring")
        self.assertEqual(pm.nccl_allreduce(16e9, 64, H100)[1], "ring")

    def test_inside_one_node_the_ring_always_wins(self):
        # The tree is a chain there: as many hops as the ring, and less bandwidth.
        self.assertEqual(pm.tree_crossover_bytes(8, H100), 0.0)
        for n in (8, MIB, 1e9):
            self.assertEqual(pm.nccl_allreduce(n, 8, H100)[1], "ring")

    def test_the_crossover_grows_with_the_world_size(self):
        sizes = [16, 32, 64, 128, 256, 512, 1024]
        crossovers = [pm.tree_crossover_bytes(p, H100) for p in sizes]
        self.assertEqual(crossovers, sorted(crossovers))

    def test_tree_latency_grows_with_log2_of_the_nodes(self):
        # Every rank its own node: 2 * floor(log2 P) hops, against the ring's 2(P - 1).
        for ranks, depth in ((2, 1), (4, 2), (512, 9), (1024, 10), (1000, 9)):
            self.assertAlmostEqual(pm.tree_terms(ranks, FLAT_IB)[0], 2 * depth * 10e-6)
        # 8 GPUs per node: a chain of 7 NVLink hops up and down, then the tree between nodes.
        self.assertAlmostEqual(pm.tree_terms(64, H100)[0], 2 * (7 * 5e-6 + 3 * 10e-6))

    def test_tree_bandwidth_term(self):
        # 2n / (0.92 B): 1 GB at 45 GB/s.
        self.assertAlmostEqual(pm.tree_terms(4, FLAT_IB)[1] * 1e9, 2 / 0.92 / 45)

    def test_reduce_scatter_and_allgather_are_rings(self):
        for kind in ("reduce_scatter", "allgather"):
            for algorithm in ("ring", "tree", "auto"):
                self.assertEqual(pm.collective_seconds(kind, MIB, 512, H100, algorithm)[1],
                                 "ring")


class RingOnTwoLevels(unittest.TestCase):
    def test_flat_network_is_the_old_formula(self):
        for ranks in (2, 3, 64, 512):
            self.assertAlmostEqual(pm.ring_seconds("allreduce", 1e8, ranks, FLAT_IB),
                                   pm.ring_allreduce_seconds(1e8, ranks, 45e9, 10e-6))

    def test_hops_between_nodes_take_the_inter_node_latency(self):
        # 16 ranks on 2 nodes: 30 hops, 2 of them between the nodes; 8 NICs of 45 GB/s give the
        # ring 360 GB/s.
        expected = 2 * 15 / 16 * 1e9 / 360e9 + 28 * 5e-6 + 2 * 10e-6
        self.assertAlmostEqual(pm.ring_seconds("allreduce", 1e9, 16, H100), expected)
        self.assertAlmostEqual(pm.ring_seconds("allreduce", 1e9, 16, ONE_NIC),
                               2 * 15 / 16 * 1e9 / 45e9 + 28 * 5e-6 + 2 * 10e-6)

    def test_reduce_scatter_is_half_an_allreduce(self):
        # (P-1)/P * n / B + (P-1) * latency: 100 MB over 4 ranks at 10 GB/s, 5 us per hop.
        net = pm.Network.flat(1e10, 5e-6)
        self.assertAlmostEqual(pm.ring_seconds("reduce_scatter", 1e8, 4, net), 0.0075 + 15e-6)
        self.assertAlmostEqual(pm.ring_seconds("allgather", 1e8, 4, net), 0.0075 + 15e-6)

    def test_ranks_must_fill_nodes(self):
        self.assertEqual(H100.layout(4), (4, 1))
        self.assertEqual(H100.layout(64), (8, 8))
        with self.assertRaises(ValueError):
            H100.layout(12)


class Hierarchical(unittest.TestCase):
    def test_hand_worked_case(self):
        # 800 MB on 2 nodes of 8: reduce-scatter inside, 7/8 * 8e8 / 400e9 + 7 * 5 us; a ring
        # allreduce of 100 MB between the 2 nodes on one NIC each, 1e8 / 45e9 + 2 * 10 us (the
        # tree would be 2e8 / (0.92 * 45e9) + 20 us); the allgather as the reduce-scatter.
        inside = 7 / 8 * 8e8 / 400e9 + 7 * 5e-6
        seconds, algo = pm.hierarchical_seconds("allreduce", 8e8, 16, H100)
        self.assertAlmostEqual(seconds, 2 * inside + 1e8 / 45e9 + 20e-6)
        self.assertEqual(algo, "hier-ring")

    def test_cheaper_than_a_flat_ring_over_infiniband_at_scale(self):
        for ranks in (64, 512, 1024):
            for n in (MIB, 25 * MIB, 154e6):
                flat = pm.ring_seconds("allreduce", n, ranks, FLAT_IB)
                hier = pm.collective_seconds("allreduce", n, ranks, H100, "hierarchical")[0]
                self.assertLess(hier, flat / 4)

    def test_one_node_is_a_ring_over_nvlink(self):
        self.assertEqual(pm.hierarchical_seconds("allreduce", 1e8, 8, H100),
                         (pm.ring_allreduce_seconds(1e8, 8, 400e9, 5e-6), "ring"))

    def test_rails_share_the_nodes_nics(self):
        self.assertEqual(H100.rail().inter_bw, 45e9)
        self.assertEqual(ONE_NIC.rail().inter_bw, 45e9 / 8)

    def test_two_level_reduce_scatter_and_allgather(self):
        # inside: 7/8 * n / 400e9 + 7 * 5 us; between 8 nodes on n/8: 7/8 * n/8 / 45e9 + 7 * 10 us
        n = 8e8
        expected = 7 / 8 * n / 400e9 + 35e-6 + 7 / 8 * n / 8 / 45e9 + 70e-6
        for kind in ("reduce_scatter", "allgather"):
            self.assertAlmostEqual(pm.hierarchical_seconds(kind, n, 64, H100)[0], expected)


class ZeroAndBf16(unittest.TestCase):
    # One rank's micro-batch: 1 ms forward, 10 layers of 1 ms backward, 1 ms optimizer; one
    # 10 MB bucket per layer.
    TIMELINE = (0.0, 1e-3, [(layer, 1e-3) for layer in range(9, -1, -1)], 1e-3)
    BUCKETS = [(layer, 10e6) for layer in range(9, -1, -1)]

    def predict(self, ranks, net=FLAT_IB, **options):
        return pm.predict_step(self.TIMELINE, self.BUCKETS, ranks, net, **options)

    def test_zero_exposes_the_allgather(self):
        net = pm.Network.flat(100e9, 0.0)
        step, comm, exposed, _ = self.predict(8, net, zero=True)
        gather = 10 * 7 / 8 * 10e6 / 100e9
        scatter_tail = 7 / 8 * 10e6 / 100e9  # the last bucket's reduce-scatter, after backward
        self.assertAlmostEqual(exposed, scatter_tail + gather)
        self.assertAlmostEqual(step, 11e-3 + scatter_tail + 1e-3 / 8 + gather)
        self.assertAlmostEqual(comm, 10 * scatter_tail + gather)

    def test_zero_adds_the_norm_allreduce(self):
        net = pm.Network.flat(1e30, 1e-6)  # latency only
        _, _, exposed, _ = self.predict(8, net, zero=True)
        # last reduce-scatter 7 hops, the scalar allreduce 14 hops, 10 allgathers of 7 hops
        self.assertAlmostEqual(exposed, (7 + 14 + 70) * 1e-6)

    def test_bf16_halves_the_gradient_collectives_bandwidth_term(self):
        for net in (FLAT_IB, H100):
            for algorithm in ("ring", "tree", "auto", "hierarchical"):
                if net is FLAT_IB and algorithm == "hierarchical":
                    continue
                for zero in (False, True):
                    comm = {}
                    for grad_bytes in (4, 2):
                        comm[grad_bytes] = self.predict(64, net, algorithm=algorithm, zero=zero,
                                                        grad_bytes=grad_bytes)[1]
                    kind = "reduce_scatter" if zero else "allreduce"
                    full = sum(pm.collective_seconds(kind, n, 64, net, algorithm)[0]
                               for _, n in self.BUCKETS)
                    half = sum(pm.collective_seconds(kind, n / 2, 64, net, algorithm)[0]
                               for _, n in self.BUCKETS)
                    self.assertAlmostEqual(comm[4] - comm[2], full - half)

    def test_bf16_halves_the_bytes_exactly_without_latency(self):
        net = pm.Network.flat(45e9, 0.0)
        fp32 = self.predict(64, net)[1]
        self.assertAlmostEqual(self.predict(64, net, grad_bytes=2)[1], fp32 / 2)
        # Under ZeRO only the reduce-scatter halves; the allgather of float32 parameters stays.
        z32, z16 = self.predict(64, net, zero=True)[1], self.predict(64, net, zero=True,
                                                                      grad_bytes=2)[1]
        gather = 10 * 63 / 64 * 10e6 / 45e9
        self.assertAlmostEqual(z16 - gather, (z32 - gather) / 2)

    def test_accumulation_adds_silent_micro_batches(self):
        one = self.predict(8, accumulate=1)[0]
        four = self.predict(8, accumulate=4)[0]
        self.assertAlmostEqual(four - one, 3 * 11e-3)


class SyntheticGpt(unittest.TestCase):
    def test_gpt2_has_124m_parameters(self):
        # wte [50257, 768] counted once (tied to the head), wpe [1024, 768] included.
        self.assertEqual(pm.gpt_param_count(pm.GPT_PRESETS["gpt2"]), 124439808)

    def test_gpt2_medium_has_354m_parameters(self):
        n = pm.gpt_param_count(pm.GPT_PRESETS["gpt2-medium"])
        self.assertEqual(n, 354823168)
        self.assertEqual(round(n / 1e6), 355)

    def test_flops_are_nanogpts_count(self):
        for cfg in pm.GPT_PRESETS.values():
            L, C, T = cfg["n_layer"], cfg["n_embd"], cfg["block_size"]
            n = pm.gpt_param_count(cfg) - T * C  # without wpe, as estimate_mfu
            self.assertAlmostEqual(pm.gpt_flops_per_token(cfg), 6 * n + 12 * L * C * T)

    def test_timeline(self):
        cfg = pm.GPT_PRESETS["gpt2"]
        (other, forward, backward, optimizer), grads = pm.gpt_timeline(cfg, 8192, 0.5, 1e15,
                                                                       2e12)
        seconds = 8192 * pm.gpt_flops_per_token(cfg) / 0.5e15
        self.assertAlmostEqual(forward + sum(s for _, s in backward), seconds)
        self.assertAlmostEqual(sum(s for _, s in backward), 2 * forward)
        self.assertEqual([layer for layer, _ in backward], list(range(14, -1, -1)))
        self.assertAlmostEqual(optimizer, 28 * 124439808 / 2e12)
        self.assertEqual(sum(b for _, b in grads), 4 * 124439808)

    def test_the_tied_embedding_goes_last(self):
        cfg = pm.GPT_PRESETS["gpt2"]
        _, grads = pm.gpt_timeline(cfg, 8192, 0.35, 989e12, 2.5e12)
        buckets = pm.assign_buckets(grads, MIB, 25 * MIB)
        self.assertEqual(buckets[-1], (0, 4 * 50257 * 768))  # wte alone, ready at the end
        self.assertEqual(buckets[-2][0], 0)                   # with wpe: also at the end
        self.assertEqual(buckets[0][0], 12)                   # ln_f waits for block 11's bias
        self.assertEqual(sum(b for _, b in buckets), 4 * 124439808)


class Efficiency(unittest.TestCase):
    CASES = [(net, algorithm) for net in (H100, ONE_NIC) for algorithm in pm.ALGORITHMS] + \
        [(FLAT_IB, algorithm) for algorithm in ("ring", "tree", "auto")]

    def test_one_at_one_rank_never_above_one(self):
        for name, cfg in pm.GPT_PRESETS.items():
            timeline, grads = pm.gpt_timeline(cfg, 8192, 0.35, 989e12, 2.5e12)
            buckets = pm.assign_buckets(grads, MIB, 25 * MIB)
            for net, algorithm in self.CASES:
                for zero in (False, True):
                    for grad_bytes in (4, 2):
                        options = dict(algorithm=algorithm, zero=zero, grad_bytes=grad_bytes)
                        one = pm.predict_step(timeline, buckets, 1, net, **options)[0]
                        self.assertAlmostEqual(one, timeline[1] + sum(
                            s for _, s in timeline[2]) + timeline[3], places=12)
                        for ranks in (8, 64, 512, 1024):
                            step = pm.predict_step(timeline, buckets, ranks, net, **options)[0]
                            self.assertLessEqual(one / step, 1.0, (name, algorithm, zero, ranks))

    def test_zero_passes_one_only_when_the_allgather_costs_less_than_the_optimizer_saved(self):
        # The only compute that shrinks with P is ZeRO's optimizer, by (1 - 1/P). On a link
        # fast enough the collectives cost less than that, and the step beats one rank's. One
        # rank: 1 ms of backward and an 8 ms optimizer.
        timeline = (0.0, 0.0, [(0, 1e-3)], 8e-3)
        buckets = [(0, 1e6)]
        fast = pm.Network.flat(1e12, 0.0)
        step = pm.predict_step(timeline, buckets, 8, fast, zero=True)[0]
        scatter = gather = 7 / 8 * 1e6 / 1e12
        norm = 2 * 7 / 8 * pm.NORM_BYTES / 1e12
        self.assertAlmostEqual(step, 1e-3 + scatter + norm + 8e-3 / 8 + gather)
        self.assertGreater(9e-3 / step, 1.0)
        # Without ZeRO nothing shrinks, and the same link only adds.
        self.assertLess(9e-3 / pm.predict_step(timeline, buckets, 8, fast)[0], 1.0)


class SyntheticCommandLine(unittest.TestCase):
    def run_cli(self, args):
        import io
        from contextlib import redirect_stderr, redirect_stdout
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            pm.main(args)
        lines = out.getvalue().splitlines()
        return lines[0].split(","), [dict(zip(lines[0].split(","), l.split(",")))
                                     for l in lines[1:]], err.getvalue()

    def test_gpt2_forecast(self):
        header, rows, err = self.run_cli(["--synthetic", "gpt2", "--network", "h100-ib",
                                          "--algorithm", "auto", "--grad-comm", "bf16",
                                          "--ranks", "1,8,64,512"])
        self.assertEqual(header[:6], ["ranks", "step_seconds", "samples_per_second",
                                      "efficiency", "comm_seconds", "exposed_comm_seconds"])
        self.assertEqual(header[6:], ["tokens_per_second", "algorithms"])
        self.assertIn("124,439,808 parameters", err)
        self.assertEqual(float(rows[0]["efficiency"]), 1.0)
        self.assertEqual(rows[0]["algorithms"], "none")
        self.assertEqual(rows[1]["algorithms"], "ring:18")  # inside one node
        self.assertEqual(rows[3]["algorithms"], "tree:18")
        for r in rows:
            tokens = 8192 * int(r["ranks"]) / float(r["step_seconds"])
            self.assertAlmostEqual(float(r["tokens_per_second"]) / tokens, 1.0, places=5)

    def test_refusals(self):
        import io
        from contextlib import redirect_stderr
        for args in (["--synthetic", "gpt2"],                          # no network
                     ["t.json", "--synthetic", "gpt2", "--profile", "ib-400g"],
                     ["--synthetic", "gpt2", "--profile", "ib-400g", "--algorithm",
                      "hierarchical"],
                     ["--synthetic", "gpt2", "--network", "h100-ib", "--ranks", "12"],
                     ["--synthetic", "gpt2", "--network", "h100-ib", "--profile", "ib-400g"]):
            with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                pm.main(args)



class TraceWithTheNewOptions(unittest.TestCase):
    SPANS = [("forward 0 Linear", 1000, {}), ("backward 0 Linear", 2000, {"bytes": 10 ** 6}),
             ("optimizer", 8000, {})]

    def test_zero_on_a_trace(self):
        # 1 MB over 8 ranks at 1 TB/s, no latency: the reduce-scatter and the allgather take
        # 7/8 us each, the scalar allreduce next to nothing; the optimizer takes 1/8.
        steps = predict(self.SPANS, ["--alpha", "0", "--beta", "1e12", "--ranks", "1,8",
                                     "--zero", "1"])
        self.assertAlmostEqual(steps[0], 0.011)
        self.assertAlmostEqual(steps[1], 0.003 + 0.001 + 2 * 0.875e-6, places=9)

    def test_accumulation_and_bf16_on_a_trace(self):
        # Two micro-batches: one more forward and backward (3 ms) before the last; bf16 sends
        # 0.5 MB: 2 * 7/8 * 0.5e6 / 1e12, exposed after backward.
        steps = predict(self.SPANS, ["--alpha", "0", "--beta", "1e12", "--ranks", "8",
                                     "--accumulate", "2", "--grad-comm", "bf16"])
        self.assertAlmostEqual(steps[0], 0.014 + 0.875e-6, places=7)  # printed to 6 digits

def predict(spans, args):
    """Writes spans (name, microseconds, args) of one traced step to a trace file, runs the
    command line on it with args, and returns the predicted step seconds per world size."""
    import io
    import json
    import tempfile
    from contextlib import redirect_stderr, redirect_stdout
    events = [{"ph": "X", "pid": 0, "tid": 0, "name": name, "dur": dur, "args": dict(extra, step=1)}
              for name, dur, extra in spans]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"traceEvents": events}, f)
    out = io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            pm.main([f.name] + args)
    finally:
        os.unlink(f.name)
    return [float(line.split(",")[1]) for line in out.getvalue().splitlines()[1:]]

if __name__ == "__main__":
    unittest.main()
