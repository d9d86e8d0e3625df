#!/usr/bin/env python3
"""Scaling report: turns the sweep's runs into one CSV row per run and plots.

    report.py RUNS_DIR OUT_DIR

RUNS_DIR holds one folder per run, named <model>-<mode>-p<world>-r<repeat>, each with the
metrics.jsonl of a dptrain run (and optionally peer.json from the PyTorch DDP peer, and
sweep.json with the tokens per sample of a language model, whose throughput is then counted in
tokens and compared with the peer's tokens/s). Writes
OUT_DIR/scaling.csv, OUT_DIR/summary.csv (medians per world size) and, when gnuplot is there,
OUT_DIR/throughput.png, efficiency.png and breakdown.png.
"""
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

COLUMNS = ["model", "device", "mode", "world_size", "oversubscribed", "per_rank_batch",
           "global_batch", "repeat", "median_step_seconds", "samples_per_second", "efficiency",
           "compute_seconds", "exposed_comm_seconds", "comm_seconds", "overlap_fraction",
           "test_accuracy", "peer_samples_per_second", "ratio_to_peer", "peer_test_accuracy",
           "tokens_per_second", "peer_tokens_per_second"]

RUN_NAME = re.compile(r"^(?P<model>[\w.]+)-(?P<mode>weak|strong)-p(?P<p>\d+)-r(?P<r>\d+)$")


def efficiency(samples_per_second, world_size, baseline):
    """Scaling efficiency against one rank: throughput / (world size x one rank's throughput).

    The same formula serves weak scaling (fixed per-rank batch) and strong scaling (fixed global
    batch): in both, perfect scaling multiplies samples per second by the world size."""
    if baseline <= 0 or world_size <= 0:
        return float("nan")
    return samples_per_second / (world_size * baseline)


def run_row(name, metrics, cores, peer=None, tokens_per_sample=0):
    """One CSV row from a run's name and the last line of its metrics.jsonl (a language model's:
    tokens_per_sample > 0, its block size)."""
    m = RUN_NAME.match(name)
    if not m:
        raise ValueError(f"{name}: not a run folder name <model>-<mode>-p<world>-r<repeat>")
    p = int(m["p"])
    step = metrics["median_step_seconds"]
    row = {
        "model": m["model"], "device": "cpu", "mode": m["mode"], "world_size": p,
        "oversubscribed": int(p > cores), "per_rank_batch": metrics["global_batch"] // p,
        "global_batch": metrics["global_batch"], "repeat": int(m["r"]),
        "median_step_seconds": step,
        "samples_per_second": metrics["global_batch"] / step if step > 0 else 0.0,
        "efficiency": float("nan"),
        "compute_seconds": metrics["compute_seconds"],
        "exposed_comm_seconds": metrics["exposed_comm_seconds"],
        "comm_seconds": metrics["comm_seconds"],
        "overlap_fraction": metrics["overlap_fraction"],
        "test_accuracy": metrics.get("test_accuracy"),
        "peer_samples_per_second": "", "ratio_to_peer": "", "peer_test_accuracy": "",
        "tokens_per_second": "", "peer_tokens_per_second": "",
    }
    if tokens_per_sample > 0:
        row["tokens_per_second"] = row["samples_per_second"] * tokens_per_sample
        if peer:
            row["peer_tokens_per_second"] = peer["tokens_per_second"]
            row["ratio_to_peer"] = row["tokens_per_second"] / peer["tokens_per_second"]
        return row
    if peer:
        row["peer_samples_per_second"] = peer["samples_per_second"]
        row["ratio_to_peer"] = row["samples_per_second"] / peer["samples_per_second"]
        row["peer_test_accuracy"] = peer.get("test_accuracy", "")
    return row


def add_efficiency(rows):
    """Fills efficiency for every row against the median one-rank throughput of its model/mode."""
    for key in {(r["model"], r["mode"]) for r in rows}:
        group = [r for r in rows if (r["model"], r["mode"]) == key]
        ones = [r["samples_per_second"] for r in group if r["world_size"] == 1]
        base = statistics.median(ones) if ones else 0.0
        for r in group:
            r["efficiency"] = efficiency(r["samples_per_second"], r["world_size"], base)
    return rows


def write_csv(path, rows, columns=COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def summarize(rows):
    """Medians per (model, mode, world size), in world-size order."""
    out = []
    for key in sorted({(r["model"], r["mode"], r["world_size"]) for r in rows}):
        group = [r for r in rows if (r["model"], r["mode"], r["world_size"]) == key]
        med = lambda k: statistics.median(float(r[k]) for r in group)
        s = {"model": key[0], "mode": key[1], "world_size": key[2],
             "oversubscribed": group[0]["oversubscribed"], "runs": len(group)}
        for k in ["median_step_seconds", "samples_per_second", "efficiency", "compute_seconds",
                  "exposed_comm_seconds", "comm_seconds", "overlap_fraction"]:
            s[k] = med(k)
        for k in ["tokens_per_second", "peer_tokens_per_second"]:
            values = [float(r[k]) for r in group if r.get(k, "") != ""]
            s[k] = statistics.median(values) if values else ""
        peers = [float(r["ratio_to_peer"]) for r in group if r["ratio_to_peer"] != ""]
        s["ratio_to_peer"] = statistics.median(peers) if peers else ""
        out.append(s)
    return out


SUMMARY_COLUMNS = ["model", "mode", "world_size", "oversubscribed", "runs", "median_step_seconds",
                   "samples_per_second", "efficiency", "compute_seconds", "exposed_comm_seconds",
                   "comm_seconds", "overlap_fraction", "ratio_to_peer", "tokens_per_second",
                   "peer_tokens_per_second"]


def plot(summary, out_dir):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found; no plots", file=sys.stderr)
        return
    for key in sorted({(s["model"], s["mode"]) for s in summary}):
        rows = [s for s in summary if (s["model"], s["mode"]) == key]
        # A language model's throughput in tokens.
        unit = "tokens/s" if all(s.get("tokens_per_second", "") != "" for s in rows) else "samples/s"
        rate = "tokens_per_second" if unit == "tokens/s" else "samples_per_second"
        base = next((s[rate] for s in rows if s["world_size"] == 1), None)
        data = os.path.join(out_dir, f"{key[0]}-{key[1]}.dat")
        with open(data, "w") as f:
            for s in rows:
                # dptrain counts every second of a step that is not exposed communication as
                # compute (data loading and the optimizer included), so the two stacks fill it.
                total = s["compute_seconds"] + s["exposed_comm_seconds"]
                ideal = base * s["world_size"] if base else 0
                # The peer's rate from the ratio (the same unit as dptrain's); "?" is gnuplot's
                # missing value where no peer ran.
                peer = s[rate] / s["ratio_to_peer"] if s["ratio_to_peer"] else "?"
                f.write(f"{s['world_size']} {s[rate]} {ideal} {s['efficiency']} "
                        f"{s['compute_seconds'] / total if total else 0} "
                        f"{s['exposed_comm_seconds'] / total if total else 0} {peer}\n")
        title = f"{key[0]}, {key[1]} scaling"
        peer_curve = (f', "{data}" using 1:7 with linespoints lw 2 title "PyTorch DDP"'
                      if any(s["ratio_to_peer"] for s in rows) else "")
        script = f"""
set terminal pngcairo size 800,500 noenhanced
set grid
set key left top
set xlabel "world size (ranks)"
set output "{out_dir}/{key[0]}-{key[1]}-throughput.png"
set title "{title}: {unit}"
set ylabel "{unit}"
set datafile missing "?"
plot "{data}" using 1:2 with linespoints lw 2 title "dptrain", "{data}" using 1:3 with lines dt 2 title "ideal"{peer_curve}
set output "{out_dir}/{key[0]}-{key[1]}-efficiency.png"
set title "{title}: efficiency against 1 rank"
set ylabel "efficiency"
set yrange [0:1.2]
plot "{data}" using 1:4 with linespoints lw 2 title "efficiency", 1 with lines dt 2 title "ideal"
set output "{out_dir}/{key[0]}-{key[1]}-breakdown.png"
set title "{title}: where a step's time goes (rank 0)"
set key below
set ylabel "fraction of training time"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:1.05]
plot "{data}" using 5:xtic(1) title "compute", "" using 6 title "exposed communication"
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    runs_dir, out_dir = argv[1], argv[2]
    cores = os.cpu_count() or 1
    rows = []
    for name in sorted(os.listdir(runs_dir)):
        folder = os.path.join(runs_dir, name)
        metrics_path = os.path.join(folder, "metrics.jsonl")
        if not os.path.isfile(metrics_path):
            continue
        with open(metrics_path) as f:
            last = [json.loads(line) for line in f if line.strip()][-1]
        peer_path = os.path.join(folder, "peer.json")
        peer = json.load(open(peer_path)) if os.path.isfile(peer_path) else None
        sweep_path = os.path.join(folder, "sweep.json")
        tokens = json.load(open(sweep_path))["tokens_per_sample"] if os.path.isfile(sweep_path) else 0
        rows.append(run_row(name, last, cores, peer, tokens))
    if not rows:
        print(f"report: no runs in {runs_dir}", file=sys.stderr)
        return 1
    add_efficiency(rows)
    os.makedirs(out_dir, exist_ok=True)
    write_csv(os.path.join(out_dir, "scaling.csv"), rows)
    summary = summarize(rows)
    write_csv(os.path.join(out_dir, "summary.csv"), summary, SUMMARY_COLUMNS)
    plot(summary, out_dir)
    for s in summary:
        rate = (f"{s['tokens_per_second']:.0f} tokens/s" if s["tokens_per_second"] != ""
                else f"{s['samples_per_second']:.0f} samples/s")
        ratio = f", {s['ratio_to_peer']:.2f}x the peer" if s["ratio_to_peer"] != "" else ""
        print(f"{s['model']} {s['mode']} P={s['world_size']}{' (oversubscribed)' if s['oversubscribed'] else ''}: "
              f"{rate}, efficiency {s['efficiency']:.2f}, overlap {s['overlap_fraction']:.0%}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
