#!/usr/bin/env python3
"""The performance model against a scaling sweep: the predicted step time at every measured point.

    check_sweep.py SUMMARY_CSV --bench TABLE --trace LABEL=TRACE [--trace ...] [--cores 2]
                   [--bound 0.15]

For each row of the sweep's summary.csv (experiments/scaling/report.py) whose model is LABEL or
LABEL.<variant>, runs perf_model.py on LABEL's one-rank trace, with the allreduce table TABLE
and the variant's options (one_allreduce: --bucket-mb 0, bf16_grads: --grad-comm bf16, zero1:
--zero 1), and prints one markdown table row per point: the predicted and measured median step
and the error. Exits 1 when a point that is not oversubscribed is off by more than --bound.
"""
import argparse
import csv
import os
import sys

VARIANTS = {"": [], "one_allreduce": ["--bucket-mb", "0"], "bf16_grads": ["--grad-comm", "bf16"],
            "zero1": ["--zero", "1"]}
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perf_model  # noqa: E402


def split_label(model):
    """'gpt_large.zero1' -> ('gpt_large', 'zero1'); 'gpt_small' -> ('gpt_small', '')."""
    base, _, variant = model.partition(".")
    if variant not in VARIANTS:
        raise ValueError(f"{model}: unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
    return base, variant


def error(predicted, measured):
    return predicted / measured - 1.0


def predictions(trace, bench, ranks, cores, variant):
    """{ranks: predicted step seconds} from perf_model.py."""
    rows = perf_model.predict_rows([trace, "--bench", bench, "--cores", str(cores), "--ranks",
                                    ",".join(str(r) for r in ranks)] + VARIANTS[variant])
    return {int(r["ranks"]): float(r["step_seconds"]) for r in rows}


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary")
    p.add_argument("--bench", required=True)
    p.add_argument("--trace", action="append", required=True, help="LABEL=TRACE")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--bound", type=float, default=0.15)
    a = p.parse_args(argv)
    traces = dict(t.split("=", 1) for t in a.trace)
    rows = list(csv.DictReader(open(a.summary)))
    failed = 0
    print("| run | ranks | predicted step | measured step | error |")
    print("|---|---|---|---|---|")
    for model in dict.fromkeys(r["model"] for r in rows):
        base, variant = split_label(model)
        if base not in traces:
            continue
        group = [r for r in rows if r["model"] == model]
        pred = predictions(traces[base], a.bench, [int(r["world_size"]) for r in group], a.cores,
                           variant)
        for r in group:
            ranks, measured = int(r["world_size"]), float(r["median_step_seconds"])
            e = error(pred[ranks], measured)
            over = r["oversubscribed"] == "1"
            bad = not over and abs(e) > a.bound
            failed += bad
            print(f"| {model} | {ranks}{' (oversubscribed)' if over else ''} | "
                  f"{pred[ranks] * 1e3:.1f} ms | {measured * 1e3:.1f} ms | {e:+.0%}"
                  f"{' (over the bound)' if bad else ''} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
