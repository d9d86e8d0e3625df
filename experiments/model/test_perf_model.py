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
