"""Unit tests of check_sweep.py: run labels, the error's sign, and a sweep checked end to end
against a trace written here."""
import io
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_sweep  # noqa: E402


class Labels(unittest.TestCase):
    def test_variants(self):
        self.assertEqual(check_sweep.split_label("gpt_small"), ("gpt_small", ""))
        self.assertEqual(check_sweep.split_label("gpt_large.zero1"), ("gpt_large", "zero1"))
        with self.assertRaises(ValueError):
            check_sweep.split_label("gpt_large.fast")

    def test_error_is_relative_to_the_measurement(self):
        self.assertAlmostEqual(check_sweep.error(1.1, 1.0), 0.1)
        self.assertAlmostEqual(check_sweep.error(0.8, 1.0), -0.2)


class EndToEnd(unittest.TestCase):
    def test_a_sweep_within_and_beyond_the_bound(self):
        # The model's inputs of the mlp sweep in experiments/results, and a summary whose
        # 1-rank step is 5% slower than predicted and whose 2-rank one is twice as slow.
        results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")
        trace = os.path.join(results, "trace-mlp-1rank.json")
        bench = os.path.join(results, "allreduce-2ranks.txt")
        pred = check_sweep.predictions(trace, bench, [1, 2], 2, "")
        self.assertLess(pred[1], pred[2])  # communication costs time at 2 ranks
        with tempfile.TemporaryDirectory() as d:
            summary = os.path.join(d, "summary.csv")
            with open(summary, "w") as f:
                f.write("model,mode,world_size,oversubscribed,median_step_seconds\n"
                        f"m,weak,1,0,{pred[1] * 1.05}\nm,weak,2,0,{pred[2] * 2}\n"
                        f"m.zero1,weak,2,0,{pred[2]}\n")
            out = io.StringIO()
            with redirect_stdout(out):
                code = check_sweep.main([summary, "--bench", bench, "--trace", f"m={trace}",
                                         "--cores", "2"])
        text = out.getvalue()
        self.assertIn("| m | 1 |", text)
        self.assertIn("| -5% |", text)
        self.assertIn("| -50% (over the bound) |", text)
        self.assertIn("| m.zero1 | 2 |", text)  # priced with --zero 1: not the plain step
        self.assertEqual(code, 1)


if __name__ == "__main__":
    unittest.main()
