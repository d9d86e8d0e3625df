"""Unit tests of forecast_plot.py: the CSV's rows come from perf_model.py's forecasts, one per
model, NIC count, case and world size, and the plot is written."""
import csv
import io
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stderr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forecast_plot  # noqa: E402


class ForecastPlot(unittest.TestCase):
    def test_rows_and_plot(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(forecast_plot.main([d, "--ranks", "1,8,64", "--models", "gpt2"]), 0)
            with open(os.path.join(d, "forecast.csv")) as f:
                rows = list(csv.DictReader(f))
            # gnuplot is one of the packages launch/setup.sh installs.
            self.assertGreater(os.path.getsize(os.path.join(d, "forecast-gpt2-efficiency.png")), 0)
        self.assertEqual(len(rows), 2 * 4 * 3)
        by = {(r["nics_per_node"], r["case"], r["ranks"]): r for r in rows}
        for nics in ("8", "1"):
            for label, _ in forecast_plot.CASES:
                self.assertEqual(float(by[(nics, label, "1")]["efficiency"]), 1.0)
        # The same row as a direct perf_model.py run.
        direct = forecast_plot.forecast("gpt2", 8, ["--grad-comm", "bf16", "--zero", "0"], [64])
        self.assertEqual(by[("8", "bf16 grads", "64")]["efficiency"], direct[0]["efficiency"])
        # One NIC per node carries less than eight: fp32 gradients across 8 nodes lose more.
        self.assertLess(float(by[("1", "fp32 grads", "64")]["efficiency"]),
                        float(by[("8", "fp32 grads", "64")]["efficiency"]))

    def test_bad_options(self):
        for argv in (["x", "--models", "gpt5"], ["x", "--ranks", "1,a"], ["x", "--ranks", "0"]):
            with self.assertRaises(SystemExit) as e, redirect_stderr(io.StringIO()) as err:
                forecast_plot.main(argv)
            self.assertEqual(e.exception.code, 2)
            self.assertIn("--", err.getvalue())


if __name__ == "__main__":
    unittest.main()
