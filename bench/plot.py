#!/usr/bin/python3
"""Bar charts of the benchmark results: our figure against the peer or the limit.

  plot.py RESULTS_DIR OUT_DIR     writes OUT_DIR/bench-{load,flat,batch,memory}.png and
                                  OUT_DIR/bench-hnsw-<dataset>.png and
                                  OUT_DIR/bench-ivf-<dataset>.png (recall against QPS)

Charts whose result files are missing are skipped. Matplotlib with the Agg backend (no display).
"""

import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ivf import envelope  # noqa: E402

OURS, PEER, LIMIT = "#1f77b4", "#ff7f0e", "#7f7f7f"


def load_json(path):
    with open(path) as f:
        return json.load(f)


def bars(ax, labels, values, colors, fmt):
    b = ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, fontsize=8)
    for rect, v in zip(b, values):
        ax.annotate(fmt(v), (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.margins(y=0.15)


def plot_load(res, out):
    files = sorted(glob.glob(os.path.join(res, "load-*.json")))
    if not files:
        return
    fig, axes = plt.subplots(1, len(files), figsize=(5.5 * len(files), 4.2), squeeze=False)
    for ax, path in zip(axes[0], files):
        r = load_json(path)
        labels = ["OmenDB"] + [f"LMDB append\n{v['vectors_per_value']} vec/value"
                               for v in r["lmdb"]]
        med = [r["omendb_vps"]] + [v["vps"] for v in r["lmdb"]]
        best = [r["omendb_best_vps"]] + [v["best_vps"] for v in r["lmdb"]]
        xs = range(len(labels))
        for off, vals, alpha, name in ((-0.2, med, 1.0, f"median of {r['runs']}"),
                                       (0.2, best, 0.5, "fastest run")):
            b = ax.bar([x + off for x in xs], vals, 0.4, alpha=alpha, label=name,
                       color=[OURS] + [PEER] * len(r["lmdb"]))
            for rect, v in zip(b, vals):
                ax.annotate(f"{v / 1e3:,.0f}k", (rect.get_x() + rect.get_width() / 2,
                                                rect.get_height()),
                            ha="center", va="bottom", fontsize=7)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=8)
        ax.ticklabel_format(axis="y", style="plain")
        ax.margins(y=0.15)
        ax.legend(fontsize=7, loc="upper right")
        ax.set_title(f"durable load {r['n']:,} x {r['dim']}, fsync per {r['batch']:,}\n"
                     f"ratio {r['ratio']:.2f} (medians), {r['lmdb'][0]['ratio_best']:.2f} "
                     f"(fastest runs); goal >= 0.7", fontsize=9)
        ax.set_ylabel("vectors / s (solid: median, light: fastest run)", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bench-load.png"), dpi=110)
    plt.close(fig)


def plot_flat(res, out):
    path = os.path.join(res, "flat.json")
    if not os.path.exists(path):
        return
    r = load_json(path)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    bars(ax, ["OmenDB 1 query\n(vector bytes / time)", "read,\nmalloc'd copy",
              "read,\nhuge-page copy", "read,\nmapped db file"],
         [r["query_gbps"], r["copy_read_gbps"], r["huge_read_gbps"], r["mapped_read_gbps"]],
         [OURS, LIMIT, LIMIT, LIMIT], lambda v: f"{v:.1f}")
    ax.set_ylabel("GB/s (median of %d)" % r["runs"])
    ax.set_title(f"flat search, one query, {r['n']:,} x {r['dim']}, {r['threads']} threads\n"
                 f"ratio {r['ratio']:.2f} against the fastest read (goal >= 0.6)", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bench-flat.png"), dpi=110)
    plt.close(fig)


def plot_batch(res, out):
    path = os.path.join(res, "batch.json")
    if not os.path.exists(path):
        return
    r = load_json(path)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    bars(ax, ["OmenDB", "FAISS IndexFlatL2\nOMP_WAIT_POLICY=PASSIVE",
              "FAISS IndexFlatL2\ndefault environment"],
         [r["omendb_qps"], r["faiss_passive_qps"], r["faiss_default_qps"]],
         [OURS, PEER, PEER], lambda v: f"{v:,.0f}")
    ax.set_ylabel("queries / s (median of %d rounds)" % len(r["rounds"]))
    ax.set_title(f"batch of {r['nq']} queries, Fashion-MNIST, k={r['k']}, {r['threads']} threads"
                 f"\nratio {r['ratio']:.2f} against the faster FAISS (goal >= 1.0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bench-batch.png"), dpi=110)
    plt.close(fig)


def plot_memory(res, out):
    runs = [load_json(p) for p in glob.glob(os.path.join(res, "memory-*.json"))]
    if not runs:
        return
    runs.sort(key=lambda r: (r["n"], -r["batch"], -r["threads"]))
    mib = 1 / 2**20
    fig, ax = plt.subplots(figsize=(7.5, 4))
    width = 0.2
    phases = [("load", "load"), ("search_single", "1 query"), ("search_batch", "query batch")]
    for j, (key, label) in enumerate(phases):
        xs = [i + (j - 1) * width for i in range(len(runs))]
        ax.bar(xs, [r[key]["heap_peak"] * mib for r in runs], width, label=f"heap peak, {label}")
    ax.bar([i + 2 * width for i in range(len(runs))], [r["RssAnon_kB"] / 1024 for r in runs],
           width, color=LIMIT, label="RssAnon at end")
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([f"{r['n']:,} x {r['dim']}\n({r['vector_bytes'] * mib:.0f} MiB)\nbatch "
                        f"{r['batch']}, {r['threads']} thr" for r in runs], fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_title("memory while loading and searching: heap against data size", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bench-memory.png"), dpi=110)
    plt.close(fig)


def recall_axes(ax, r, targets, knobs):
    """Labels a recall-against-QPS panel of result r: log QPS, the recall targets as dotted
    lines, the data set and thread count over knobs in the title."""
    for t in targets:
        ax.axvline(t, color=LIMIT, linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{r['k']}")
    ax.set_ylabel(f"queries / s, batch of {r['nq']:,}, {r['threads']} thread"
                  f"{'s' if r['threads'] > 1 else ''}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{r['label']} ({r['n']:,} x {r['dim']}, {r['metric']}), {r['threads']} thr\n"
                 f"{knobs}", fontsize=9)


HNSW_STYLE = {"omendb": ("OmenDB", OURS, "o"), "omendb-int8": ("OmenDB int8", "#17becf", "v"),
              "hnswlib": ("hnswlib (Debian, SSE)", PEER, "s"),
              "hnswlib-native": ("hnswlib -march=native", "#d62728", "^"),
              "faiss": ("FAISS IndexHNSWFlat", "#2ca02c", "D"),
              "faiss-default": ("FAISS, default env", "#98df8a", "d")}


def by_dataset(res, bench):
    """The results RESULTS_DIR/<bench>-*.json grouped by data set, each group in thread order."""
    groups = {}
    for p in glob.glob(os.path.join(res, f"{bench}-*.json")):
        r = load_json(p)
        groups.setdefault(r["dataset"], []).append(r)
    for rs in groups.values():
        rs.sort(key=lambda r: r["threads"])
    return groups


def plot_hnsw(res, out):
    for name, rs in by_dataset(res, "hnsw").items():
        fig, axes = plt.subplots(1, len(rs), figsize=(6 * len(rs), 4.6), squeeze=False)
        for ax, r in zip(axes[0], rs):
            for key, (label, color, marker) in HNSW_STYLE.items():
                if key not in r["systems"]:
                    continue
                sw = r["systems"][key]["sweep"]
                ax.plot([p["recall"] for p in sw], [p["qps"] for p in sw], marker=marker,
                        color=color, label=label, markersize=4)
                if key == "omendb":
                    for p in sw:
                        ax.annotate(str(p["ef"]), (p["recall"], p["qps"]), fontsize=6,
                                    textcoords="offset points", xytext=(3, 3))
            efs = next(iter(r["systems"].values()))["sweep"]
            recall_axes(ax, r, (0.95, 0.99), f"M={r['m']}, efC={r['efc']}, ef {efs[0]['ef']}.."
                        f"{efs[-1]['ef']} (labels: OmenDB's ef)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"bench-hnsw-{name}.png"), dpi=110)
        plt.close(fig)


IVF_STYLE = {"omendb": ("OmenDB IVF (RaBitQ 1 bit)", OURS, "o"),
             "faiss-ivfflat": ("FAISS IVFFlat", PEER, "s"),
             "faiss-ivfsq8": ("FAISS IVF-SQ8", "#2ca02c", "D"),
             "faiss-ivfpqfs-rflat": ("FAISS IVFPQFastScan + RefineFlat\n(best k_factor)", "#d62728",
                                     "^"),
             "omendb-hnsw": ("OmenDB HNSW", "#17becf", "v")}


def plot_ivf(res, out):
    """Recall against QPS per IVF data set, one panel per thread count: each system's upper
    envelope as a line (for RefineFlat the best k_factor at each recall), every point faintly."""
    for name, rs in by_dataset(res, "ivf").items():
        fig, axes = plt.subplots(1, len(rs), figsize=(6 * len(rs), 4.6), squeeze=False)
        for ax, r in zip(axes[0], rs):
            for key, (label, color, marker) in IVF_STYLE.items():
                if key not in r["systems"]:
                    continue
                sw = r["systems"][key]["sweep"]
                front = envelope(sw)
                ax.scatter([p["recall"] for p in sw], [p["qps"] for p in sw], color=color,
                           marker=marker, s=8, alpha=0.3)
                ax.plot([p["recall"] for p in front], [p["qps"] for p in front], marker=marker,
                        color=color, label=label, markersize=4)
                if key == "omendb":
                    for p in front:
                        ax.annotate(str(p["nprobe"]), (p["recall"], p["qps"]), fontsize=6,
                                    textcoords="offset points", xytext=(3, 3))
            recall_axes(ax, r, r["targets"],
                        f"nlist {r['nlist']} for all, nprobe sweep (labels: OmenDB's nprobe)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"bench-ivf-{name}.png"), dpi=110)
        plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS_DIR OUT_DIR")
    res, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for f in (plot_load, plot_flat, plot_batch, plot_memory, plot_hnsw, plot_ivf):
        f(res, out)


if __name__ == "__main__":
    main()
