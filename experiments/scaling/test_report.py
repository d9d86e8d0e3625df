"""Unit tests of the scaling report: the efficiency arithmetic, run rows and the CSV writer."""
import csv
import io
import math
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402


def metrics(global_batch, step, compute=1.0, exposed=0.25, comm=0.5):
    return {"global_batch": global_batch, "median_step_seconds": step, "compute_seconds": compute,
            "exposed_comm_seconds": exposed, "comm_seconds": comm,
            "overlap_fraction": (comm - exposed) / comm, "test_accuracy": 0.8}


class Efficiency(unittest.TestCase):
    def test_perfect_and_half(self):
        self.assertEqual(report.efficiency(2000.0, 2, 1000.0), 1.0)
        self.assertEqual(report.efficiency(1000.0, 2, 1000.0), 0.5)
        self.assertAlmostEqual(report.efficiency(2700.0, 3, 1000.0), 0.9)

    def test_no_baseline_is_nan(self):
        self.assertTrue(math.isnan(report.efficiency(1000.0, 2, 0.0)))

    def test_rows_weak_scaling(self):
        # One rank: 64 samples in 2 ms = 32000/s. Two ranks: 128 in 2.5 ms = 51200/s, i.e. 0.8.
        rows = [report.run_row("mlp-weak-p1-r1", metrics(64, 0.002), cores=2),
                report.run_row("mlp-weak-p2-r1", metrics(128, 0.0025), cores=2),
                report.run_row("mlp-weak-p4-r1", metrics(256, 0.004), cores=2)]
        report.add_efficiency(rows)
        self.assertAlmostEqual(rows[0]["samples_per_second"], 32000.0)
        self.assertAlmostEqual(rows[1]["efficiency"], 0.8)
        self.assertAlmostEqual(rows[2]["efficiency"], 0.5)
        self.assertEqual([r["oversubscribed"] for r in rows], [0, 0, 1])
        self.assertEqual(rows[2]["per_rank_batch"], 64)

    def test_strong_scaling_uses_the_same_formula(self):
        # Global batch 128 at every size: 4 ms on one rank, 2.5 ms on two -> 0.8.
        rows = [report.run_row("cnn-strong-p1-r1", metrics(128, 0.004), cores=4),
                report.run_row("cnn-strong-p2-r1", metrics(128, 0.0025), cores=4)]
        report.add_efficiency(rows)
        self.assertAlmostEqual(rows[1]["efficiency"], 0.8)
        self.assertEqual(rows[1]["per_rank_batch"], 64)

    def test_peer_ratio(self):
        row = report.run_row("mlp-weak-p1-r1", metrics(64, 0.002), cores=2,
                             peer={"samples_per_second": 16000.0, "test_accuracy": 0.81})
        self.assertAlmostEqual(row["ratio_to_peer"], 2.0)

    def test_language_model_counts_tokens_and_compares_them_with_the_peer(self):
        # 16 windows of 128 tokens in 0.5 s: 32 samples/s, 4096 tokens/s; the peer did 2048.
        row = report.run_row("gpt25m-weak-p2-r1", metrics(16, 0.5), cores=2,
                             peer={"tokens_per_second": 2048.0, "median_step_seconds": 1.0},
                             tokens_per_sample=128)
        self.assertAlmostEqual(row["samples_per_second"], 32.0)
        self.assertAlmostEqual(row["tokens_per_second"], 4096.0)
        self.assertAlmostEqual(row["ratio_to_peer"], 2.0)
        self.assertEqual(report.run_row("gpt25m.zero-weak-p1-r1", metrics(8, 0.5), cores=2,
                                        tokens_per_sample=128)["ratio_to_peer"], "")

    def test_bad_run_name(self):
        with self.assertRaises(ValueError):
            report.run_row("mlp-p1", metrics(64, 0.002), cores=2)


class CsvWriter(unittest.TestCase):
    def test_header_and_rows_round_trip(self):
        rows = [report.run_row("mlp-weak-p1-r1", metrics(64, 0.002), cores=2),
                report.run_row("mlp-weak-p2-r2", metrics(128, 0.0025), cores=2)]
        report.add_efficiency(rows)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.csv")
            report.write_csv(path, rows)
            text = open(path).read()
        back = list(csv.DictReader(io.StringIO(text)))
        self.assertEqual(list(back[0].keys()), report.COLUMNS)
        self.assertEqual(len(back), 2)
        self.assertEqual(back[1]["world_size"], "2")
        self.assertEqual(back[1]["repeat"], "2")
        self.assertAlmostEqual(float(back[1]["samples_per_second"]), 51200.0)
        self.assertAlmostEqual(float(back[1]["efficiency"]), 0.8)
        self.assertEqual(back[0]["peer_samples_per_second"], "")

    def test_summary_takes_medians(self):
        rows = [report.run_row(f"mlp-weak-p1-r{i}", metrics(64, s), cores=2)
                for i, s in enumerate([0.002, 0.004, 0.001], 1)]
        report.add_efficiency(rows)
        [s] = report.summarize(rows)
        self.assertEqual(s["runs"], 3)
        self.assertAlmostEqual(s["samples_per_second"], 32000.0)  # median of 32k, 16k, 64k


class Plot(unittest.TestCase):
    def test_the_peer_is_drawn_where_it_ran(self):
        # launch/setup.sh installs gnuplot. The plot's data file carries the peer's rate (from
        # the ratio) in its last column, and "?" (missing) at a point without a peer.
        peer = {"samples_per_second": 25000.0, "test_accuracy": 0.8}
        rows = [report.run_row("mlp-weak-p1-r1", metrics(64, 0.002), cores=2, peer=peer),
                report.run_row("mlp-weak-p2-r1", metrics(128, 0.0025), cores=2)]
        report.add_efficiency(rows)
        with tempfile.TemporaryDirectory() as d:
            report.plot(report.summarize(rows), d)
            with open(os.path.join(d, "mlp-weak.dat")) as f:
                lines = [l.split() for l in f]
            self.assertGreater(os.path.getsize(os.path.join(d, "mlp-weak-throughput.png")), 0)
        self.assertAlmostEqual(float(lines[0][6]), 25000.0)
        self.assertEqual(lines[1][6], "?")


if __name__ == "__main__":
    unittest.main()
