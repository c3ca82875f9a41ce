#!/usr/bin/python3
"""Plots the output of bench/ab_builds.sh: for each HNSW data set, queries/s (mean of the
rounds) against recall@10 of the build before ("a") and after ("b"), and the exact search's
query time per round of each.

  plot_ab.py AB_OUTPUT.txt OUT.png
"""

import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

text = open(sys.argv[1]).read()
sections = re.split(r"^== ", text, flags=re.M)
hnsw, flat = {}, {}
for sec in sections:
    head = sec.splitlines()[0] if sec else ""
    m = re.match(r"HNSW (\S+): 1 thread", head)
    if m:
        rows = re.findall(r"^([ab]) (\d+): recall ([0-9.]+), best \d+ mean (\d+)", sec, re.M)
        hnsw[m.group(1)] = {v: sorted((float(r), int(q)) for s, e, r, q in rows if s == v)
                            for v in "ab"}
    if head.startswith("flat: 1M"):
        for v in "ab":
            m = re.search(rf"^{v} query ms per round: (.*)$", sec, re.M)
            flat[v] = [float(x) for x in m.group(1).split()]

fig, axes = plt.subplots(1, len(hnsw) + 1, figsize=(5 * (len(hnsw) + 1), 4))
for ax, (name, sides) in zip(axes, hnsw.items()):
    for v, label, style in (("a", "before", "o--"), ("b", "after", "s-")):
        pts = sides[v]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax.set_title(f"HNSW {name}: 1 thread, ef 16/64/256")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries/s (mean of rounds)")
    ax.set_yscale("log")
    ax.legend()
ax = axes[-1]
for v, label, style in (("a", "before", "o--"), ("b", "after", "s-")):
    ax.plot(range(1, len(flat[v]) + 1), flat[v], style, label=label)
ax.set_title("exact search, 1M x 128, one query, 2 threads")
ax.set_xlabel("round")
ax.set_ylabel("median query time per round (ms)")
ax.set_ylim(bottom=0)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
