#!/usr/bin/python3
"""The IVF tables of docs/BENCHMARKS.md, in Markdown, from bench/results/ivf-*.json.

  ivf_report.py RESULTS_DIR

First one line per data set and thread count: OmenDB's QPS over the best FAISS variant's at
recall 0.90 / 0.95 / 0.99 (the best at each target, named at 0.95). Then per data set and
thread count: per system the QPS at each recall target (interpolated along the system's upper
envelope of recall against QPS, bench/ivf.py), build seconds (train + add), resident bytes per
vector and their ratio to the 4 * dim bytes of a float vector, and the float vectors one query
reads (per query and as a fraction of all N) at the fastest swept point of recall 0.95 or
more. Resident bytes: for OmenDB the index (centroids, rotation, codes and their factors), not
the float vectors, which stay in the database file's map; for FAISS the whole index
(IndexRefineFlat's includes the float vectors it re-ranks with; its codes alone in
parentheses). Vectors read: OmenDB's re-ranked candidates (omen_search_info.vectors_read),
for IndexIVFFlat the codes scanned (they are the vectors), k_factor * k for IndexRefineFlat,
none for SQ8. Finally the sweep itself, recall / QPS per knob.
"""

import glob
import os
import sys

from report import load_json, load_range

NAMES = {"omendb": "OmenDB IVF", "faiss-ivfflat": "FAISS IVFFlat", "faiss-ivfsq8": "FAISS IVF-SQ8",
         "faiss-ivfpqfs-rflat": "FAISS IVFPQFastScan + RefineFlat",
         "omendb-hnsw": "OmenDB HNSW"}
ORDER = list(NAMES)
DATA_ORDER = ["fashion", "synth1m", "synth2m768", "synth10m"]
TARGETS = ("0.9", "0.95", "0.99")


def results(res):
    out = [load_json(p) for p in glob.glob(os.path.join(res, "ivf-*.json"))]
    rank = {d: i for i, d in enumerate(DATA_ORDER)}
    return sorted(out, key=lambda r: (rank.get(r["dataset"], len(rank)), r["n"], r["threads"]))


def knob(p):
    """A sweep point's knob as text: nprobe (and k_factor), or ef."""
    if "ef" in p:
        return f"ef {p['ef']}"
    text = f"nprobe {p['nprobe']}" + (" (default)" if p.get("calibrated_default") else "")
    return text + (f", k_factor {p['k_factor']}" if p.get("k_factor") else "")


def qps_cell(a):
    if a["qps"] is None:
        return "not reached"
    return (">= " if a["how"] == "above" else "") + f"{a['qps']:,.0f}"


def ratio_cell(r, t):
    x = r.get("ratio_omendb_vs_best_faiss", {}).get(t)
    if not x or x["ratio"] is None:
        return "-"
    bound = " (bound)" if "above" in x["how"] else ""
    return f"{x['ratio']:.2f}{bound}"


def build_cell(s):
    if s.get("build_s") is None:
        return "-"
    if s.get("train_s") is None:
        return f"{s['build_s']:.1f}"
    return f"{s['build_s']:.1f} ({s['train_s']:.1f} + {s['build_s'] - s['train_s']:.1f})"


def bytes_cells(s, dim):
    b = s.get("bytes", {})
    res = b.get("resident_per_vector")
    if res is None:  # omendb-hnsw: the graph in the index, the vectors beside it
        res = (b.get("index_per_vector") or 0) + (b.get("vectors_per_vector") or 0)
    text = f"{res:,.0f}"
    codes = b.get("codes_per_vector")
    if codes is not None and abs(codes - res) > 0.5:
        text += f" ({codes:,.0f})"
    return text, f"{res / (4 * dim):.3f}"


def read_cell(s):
    """Float vectors read per query at the fastest swept point of recall 0.95 or more."""
    pts = [p for p in s["sweep"] if p["recall"] >= 0.95 and "vectors_read_per_query" in p]
    if not pts:
        return "-"
    p = max(pts, key=lambda p: p["qps"])
    return (f"{p['vectors_read_per_query']:,.0f} ({p['vectors_read_fraction']:.2e}), "
            f"{knob(p)}")


def summary(rs):
    print("| data, threads | nlist | OmenDB / best FAISS, QPS at 0.90 | at 0.95 | at 0.99 | "
          "best FAISS at 0.95 |")
    print("|---|---|---|---|---|---|")
    for r in rs:
        best = r.get("ratio_omendb_vs_best_faiss", {}).get("0.95") or {}
        peer = NAMES.get(best.get("peer"), "-")
        if best.get("peer_qps"):
            peer += f", {best['peer_qps']:,.0f} q/s"
        print(f"| {r['label']} {r['n']:,} x {r['dim']}, {r['threads']} | {r['nlist']} | "
              + " | ".join(ratio_cell(r, t) for t in TARGETS) + f" | {peer} |")
    print()


def dataset_tables(r):
    s = r["systems"]
    names = [k for k in ORDER if k in s]
    print(f"#### {r['label']}, {r['n']:,} x {r['dim']}, {r['metric']}, {r['threads']} "
          f"thread{'s' if r['threads'] > 1 else ''}\n")
    print(f"{r['nq']:,} queries, k = {r['k']}, nlist {r['nlist']} ({r['nlist_source']}), "
          f"OmenDB's calibrated nprobe {r['nprobe_default']}; {r['started']} to "
          f"{r['finished']}; QPS: median of {r['rounds']} rounds x median of at least "
          f"{r['reps']} calls per point (more until {r['min_time']} s). Ground truth agrees "
          f"with FAISS IndexFlatL2 on {r['gt_check_vs_faiss_flat']['agreement']:.5f} of the "
          f"top-{r['k']}; load average {load_range(r)} over the run.\n")
    print("| system | QPS at recall 0.90 | at 0.95 | at 0.99 | build s (train + add) | "
          "resident B/vector | / float B | float vectors read per query at recall >= 0.95 "
          "(fraction of N), at |")
    print("|---|---|---|---|---|---|---|---|")
    for k in names:
        res, ratio = bytes_cells(s[k], r["dim"])
        print(f"| {NAMES[k]} | " + " | ".join(qps_cell(s[k]["qps_at"][t]) for t in TARGETS)
              + f" | {build_cell(s[k])} | {res} | {ratio} | {read_cell(s[k])} |")
    if "omendb" in s:
        o = s["omendb"]
        print(f"\nOmenDB: load {o.get('load_s') or 0:.2f} s (relaxed durability, before the "
              f"build), omen_check {o.get('check')} in {o.get('check_s') or 0:.2f} s; the float "
              f"vectors take {o['bytes'].get('vectors_per_vector', 0):,.0f} B/vector in "
              f"data.mdb; RssAnon growth over the build, peak "
              f"{o['bytes'].get('rss_anon_peak_growth_build_per_vector', 0):,.0f} B/vector.")
    print("\nThe sweep, recall@10 / QPS:\n")
    print("| system | knob: recall / QPS |")
    print("|---|---|")
    for k in names:
        pts = sorted(s[k]["sweep"], key=lambda p: (p.get("ef") or p["nprobe"],
                                                   p.get("k_factor") or 0))
        cells = [f"{knob(p)}: {p['recall']:.4f} / {p['qps']:,.0f}" for p in pts]
        print(f"| {NAMES[k]} | " + "<br>".join(cells) + " |")
    print()


def main():
    res = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    rs = results(res)
    if not rs:
        print(f"no IVF results in {res}")
        return
    summary(rs)
    for r in rs:
        dataset_tables(r)


if __name__ == "__main__":
    main()
