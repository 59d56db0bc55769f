"""Plot the ratios of a ``fastcorr bench --json`` run: one group of bars per workload, one bar
per peer (peer time / fastcorr time; above 1, fastcorr is faster), log scale.

Usage: ``python docs/plot_performance.py results.json [more.json ...] -o docs/performance.png``.
Several files are combined by taking each (workload, peer) ratio's median over them.
Needs matplotlib (not a dependency of fastcorr).
"""

import argparse
import json
from collections import defaultdict
from statistics import median


def ratios(paths):
    """``{workload: {peer: median ratio}}`` over the runs in ``paths``, in first-seen order."""
    found = defaultdict(lambda: defaultdict(list))
    for path in paths:
        with open(path) as f:
            for row in json.load(f)["rows"]:
                if row["impl"] != "fastcorr" and row.get("ratio") is not None:
                    found[row["workload"]][row["impl"]].append(row["ratio"])
    return {work: {peer: median(values) for peer, values in peers.items()}
            for work, peers in found.items()}


def plot(table, output, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = list(dict.fromkeys(peer for row in table.values() for peer in row))
    colors = {peer: f"C{k}" for k, peer in enumerate(peers)}
    workloads = list(table)
    width = 0.8 / max(len(row) for row in table.values())
    fig, ax = plt.subplots(figsize=(1.6 * len(workloads) + 2, 4.5))
    labelled = set()
    for i, work in enumerate(workloads):
        row = table[work]
        for k, (peer, ratio) in enumerate(row.items()):
            x = i + (k - (len(row) - 1) / 2) * width
            bars = ax.bar([x], [ratio], width, color=colors[peer],
                          label=None if peer in labelled else peer)
            labelled.add(peer)
            ax.bar_label(bars, labels=[f"{ratio:.2g}"], fontsize=7, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("peer time / fastcorr time  (> 1: fastcorr faster)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="files written by fastcorr bench --json")
    parser.add_argument("-o", "--output", default="performance.png")
    parser.add_argument("--title", default="fastcorr against its peers (float32, 2 cores)")
    args = parser.parse_args(argv)
    plot(ratios(args.json), args.output, args.title)


if __name__ == "__main__":
    main()
