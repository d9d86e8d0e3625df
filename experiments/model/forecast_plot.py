#!/usr/bin/env python3
"""Forecast efficiency against GPUs, as a CSV and one plot per model.

    forecast_plot.py OUT_DIR [--ranks 1,8,16,...] [--models gpt2,gpt2-medium]

Runs perf_model.py --synthetic MODEL --network h100-ib --algorithm auto for each model, with
fp32 and bf16 gradients, ZeRO-1 off and on, and 8 NICs per node and 1, and writes
OUT_DIR/forecast.csv (one row per model, case and world size) and, when gnuplot is there,
OUT_DIR/forecast-MODEL-efficiency.png: weak-scaling efficiency against the number of H100s, the
8-NIC cases as solid lines, the 1-NIC cases dashed, and the 0.85 target.
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perf_model  # noqa: E402

# (label, perf_model options); the order is the plot's legend order.
CASES = [
    ("fp32 grads", ["--grad-comm", "fp32", "--zero", "0"]),
    ("bf16 grads", ["--grad-comm", "bf16", "--zero", "0"]),
    ("fp32 grads, ZeRO-1", ["--grad-comm", "fp32", "--zero", "1"]),
    ("bf16 grads, ZeRO-1", ["--grad-comm", "bf16", "--zero", "1"]),
]
NICS = (8, 1)
COLUMNS = ["model", "nics_per_node", "case", "ranks", "step_seconds", "tokens_per_second",
           "efficiency", "exposed_comm_seconds", "algorithms"]


def forecast(model, nics, options, ranks):
    return perf_model.predict_rows(["--synthetic", model, "--network", "h100-ib",
                                    "--nics-per-node", str(nics), "--algorithm", "auto",
                                    "--ranks", ",".join(str(r) for r in ranks)] + options)


def plot(rows, model, out_dir):
    data = os.path.join(out_dir, f"forecast-{model}.dat")
    curves = []
    with open(data, "w") as f:
        # One data block per curve: a colour per case, solid with 8 NICs and dashed with one.
        for dash, nics in enumerate(NICS, 1):
            for colour, (label, _) in enumerate(CASES, 1):
                f.write(f'"{label}, {nics} NIC{"s" if nics > 1 else ""}"\n')
                for r in rows:
                    if (r["model"], r["nics_per_node"], r["case"]) == (model, nics, label):
                        f.write(f"{r['ranks']} {r['efficiency']}\n")
                f.write("\n\n")
                curves.append(f'"{data}" index {len(curves)} using 1:2 with linespoints lw 2 '
                              f'lc {colour} dt {dash} pt {6 + dash} title columnheader(1)')
    curves.append('0.85 with lines lc rgb "red" dt 4 lw 1.5 title "target 0.85"')
    script = f"""
set terminal pngcairo size 1000,550 noenhanced
set grid
set key outside right
set logscale x 2
set xlabel "H100s (8 per node)"
set ylabel "efficiency against one GPU"
set yrange [0:1.05]
set title "{model}, weak scaling, 8,192 tokens per GPU (forecast by perf_model.py)"
set output "{out_dir}/forecast-{model}-efficiency.png"
plot {", ".join(curves)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--ranks", default="1,8,16,32,64,128,256,512,1024")
    p.add_argument("--models", default="gpt2,gpt2-medium")
    a = p.parse_args(argv)
    try:
        ranks = [int(r) for r in a.ranks.split(",")]
    except ValueError:
        p.error(f"--ranks {a.ranks}: not a comma-separated list of integers")
    models = a.models.split(",")
    unknown = [m for m in models if m not in perf_model.GPT_PRESETS]
    if unknown:
        p.error(f"--models: unknown {', '.join(unknown)} "
                f"(known: {', '.join(sorted(perf_model.GPT_PRESETS))})")
    if not ranks or min(ranks) < 1:
        p.error(f"--ranks {a.ranks}: every world size must be at least 1")
    rows = []
    for model in models:
        for nics in NICS:
            for label, options in CASES:
                for r in forecast(model, nics, options, ranks):
                    rows.append(dict(model=model, nics_per_node=nics, case=label,
                                     ranks=int(r["ranks"]), step_seconds=r["step_seconds"],
                                     tokens_per_second=r["tokens_per_second"],
                                     efficiency=r["efficiency"],
                                     exposed_comm_seconds=r["exposed_comm_seconds"],
                                     algorithms=r["algorithms"]))
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "forecast.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    if shutil.which("gnuplot"):
        for model in models:
            plot(rows, model, a.out_dir)
    else:
        print("forecast_plot: gnuplot not found; no plots", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
