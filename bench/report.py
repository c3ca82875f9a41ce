#!/usr/bin/python3
"""Prints the benchmark table from bench/results/*.json and writes results/summary.csv.

  report.py RESULTS_DIR
  report.py RESULTS_DIR --hnsw-md     the HNSW tables of docs/BENCHMARKS.md, in Markdown

Each row: the benchmark, our figure, the peer's or the limit's, their ratio, and the goal.
Rows whose result file is missing are left out. HNSW rows compare with hnswlib (Debian's
python3-hnswlib): QPS at recall 0.95 and 0.99 (ours / hnswlib, goal >= 1.5), build seconds and
bytes per vector (hnswlib / ours, goal >= 1.0: ours at most hnswlib's).
"""

import csv
import glob
import json
import os
import sys

GOALS = {"load": 0.7, "flat": 0.6, "batch": 1.0, "hnsw_qps": 1.5, "hnsw_build": 1.0,
         "hnsw_bytes": 1.0}
HNSW_NAMES = {"omendb": "OmenDB", "omendb-int8": "OmenDB int8", "hnswlib": "hnswlib", "hnswlib-native": "hnswlib native",
              "faiss": "FAISS", "faiss-default": "FAISS (default env)"}
HNSW_ORDER = ["omendb", "omendb-int8", "hnswlib", "hnswlib-native", "faiss", "faiss-default"]


def load_json(path):
    with open(path) as f:
        return json.load(f)


def rows_load(res):
    out = []
    for path in sorted(glob.glob(os.path.join(res, "load-*.json"))):
        r = load_json(path)
        name = f"load {r['n']}x{r['dim']}"
        for v in r["lmdb"]:
            out.append({
                "benchmark": name, "ours": f"{r['omendb_vps']:.0f} vec/s",
                "peer": f"LMDB append, {v['vectors_per_value']} vec/value: {v['vps']:.0f} vec/s",
                "ratio": v["ratio"], "goal": GOALS["load"],
                "note": f"median of {r['runs']} runs, fsync per {r['batch']}; fastest runs: "
                        f"ours {r['omendb_best_vps']:.0f}, LMDB {v['best_vps']:.0f} vec/s, "
                        f"ratio {v['ratio_best']:.2f}",
            })
    return out


def rows_flat(res):
    path = os.path.join(res, "flat.json")
    if not os.path.exists(path):
        return []
    r = load_json(path)
    base = {"benchmark": f"flat 1 query {r['n']}x{r['dim']}",
            "ours": f"{1e3 * r['query_s_median']:.2f} ms = {r['query_gbps']:.2f} GB/s",
            "goal": GOALS["flat"], "note": f"{r['threads']} threads, median of {r['runs']}"}
    return [
        dict(base, peer=f"read of malloc'd copy {r['copy_read_gbps']:.2f} GB/s",
             ratio=r["ratio_vs_copy"]),
        dict(base, peer=f"read of huge-page copy {r['huge_read_gbps']:.2f} GB/s",
             ratio=r["ratio_vs_huge"]),
        dict(base, peer=f"read of mapped db file {r['mapped_read_gbps']:.2f} GB/s",
             ratio=r["ratio_vs_mapped"]),
    ]


def rows_batch(res):
    path = os.path.join(res, "batch.json")
    if not os.path.exists(path):
        return []
    r = load_json(path)
    return [{
        "benchmark": f"batch {r['nq']} queries, fashion {r['n']}x{r['dim']}",
        "ours": f"{r['omendb_qps']:.0f} q/s",
        "peer": f"FAISS IndexFlatL2 {r['faiss_qps']:.0f} q/s",
        "ratio": r["ratio"], "goal": GOALS["batch"],
        "note": f"{r['threads']} threads, k={r['k']}, median of {len(r['rounds'])} rounds; "
                f"recall vs FAISS {r['recall_vs_faiss']:.4f}; FAISS with OMP_WAIT_POLICY=PASSIVE "
                f"{r['faiss_passive_qps']:.0f} q/s, default env {r['faiss_default_qps']:.0f} q/s",
    }]


def rows_memory(res):
    out = []
    paths = glob.glob(os.path.join(res, "memory-*.json"))
    for r in sorted((load_json(p) for p in paths), key=lambda r: (r["n"], -r["batch"],
                                                                   -r["threads"])):
        mb = 1 / 2**20
        out.append({
            "benchmark": f"memory {r['n']}x{r['dim']} batch {r['batch']} threads {r['threads']}",
            "ours": (f"heap peak load {r['load']['heap_peak'] * mb:.1f} MiB, "
                     f"1 query {r['search_single']['heap_peak'] * mb:.1f} MiB, "
                     f"{r['nq']} queries {r['search_batch']['heap_peak'] * mb:.1f} MiB"),
            "peer": f"vectors {r['vector_bytes'] * mb:.0f} MiB",
            "ratio": None, "goal": None,
            "note": f"VmHWM {r['VmHWM_kB'] / 1024:.0f} MiB, RssAnon {r['RssAnon_kB'] / 1024:.0f} MiB",
        })
    return out


def hnsw_results(res):
    out = [load_json(p) for p in glob.glob(os.path.join(res, "hnsw-*.json"))]
    order = {"minilm": 0, "fashion": 1}
    return sorted(out, key=lambda r: (order.get(r["dataset"], 2), r["n"], r["threads"]))


def file_bytes(sysres):
    """Bytes per vector on disk: OmenDB's data.mdb (vectors, ids, norms, graph), hnswlib's
    save_index file, FAISS's write_index file (the last two hold vectors and graph)."""
    return sysres["bytes"].get("file_per_vector")


def rows_hnsw(res):
    out = []
    for r in hnsw_results(res):
        s = r["systems"]
        if "hnswlib" not in s:
            continue
        peer, native = s["hnswlib"], s.get("hnswlib-native")
        for mine in ("omendb", "omendb-int8"):
            if mine not in s:
                continue
            ours = s[mine]
            name = f"hnsw {r['dataset']} {r['threads']} thr {HNSW_NAMES[mine]}"
            for t in ("0.95", "0.99"):
                a, b = ours["qps_at"][t], peer["qps_at"][t]
                ratio = a["qps"] / b["qps"] if a["qps"] and b["qps"] else None
                note = f"{a['how']} / {b['how']}"
                if native and native["qps_at"][t]["qps"] and a["qps"]:
                    note += (f"; hnswlib native {native['qps_at'][t]['qps']:.0f} q/s, ratio "
                             f"{a['qps'] / native['qps_at'][t]['qps']:.2f}")
                out.append({"benchmark": f"{name} QPS@{t}",
                            "ours": f"{a['qps']:.0f} q/s" if a["qps"] else a["how"],
                            "peer": f"hnswlib {b['qps']:.0f} q/s" if b["qps"] else b["how"],
                            "ratio": ratio, "goal": GOALS["hnsw_qps"], "note": note})
            out.append({"benchmark": f"{name} build", "ours": f"{ours['build_s']:.2f} s",
                        "peer": f"hnswlib {peer['build_s']:.2f} s",
                        "ratio": peer["build_s"] / ours["build_s"],
                        "goal": GOALS["hnsw_build"], "note": "ratio = hnswlib / ours"})
            fo, fp = file_bytes(ours), file_bytes(peer)
            out.append({"benchmark": f"{name} bytes/vector", "ours": f"{fo:.0f} B (data.mdb)",
                        "peer": f"hnswlib {fp:.0f} B (index file)", "ratio": fp / fo,
                        "goal": GOALS["hnsw_bytes"],
                        "note": f"ratio = hnswlib / ours; our index alone "
                                f"{ours['bytes'].get('index_per_vector', 0):.0f} B/vector"})
    return out


def fmt_qps(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_at(a):
    if a["qps"] is None:
        return "not reached"
    if a["how"] == "above":
        return f">= {a['qps']:,.0f} (ef={{}})"
    return f"{a['qps']:,.0f}"


def load_range(r):
    """The range of the 1-minute load average seen before and after each process of a run."""
    vals = [v for runs in r.get("raw", {}).values() for x in runs for v in x.get("loadavg", [])]
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "not recorded"


def ratio_cell(s, mine, peer, t):
    a, b = s[mine]["qps_at"][t], s[peer]["qps_at"][t]
    if a["qps"] is None or b["qps"] is None:
        return "-"
    bound = "above" in (a["how"], b["how"])
    return f"{a['qps'] / b['qps']:.2f}{' (bounds)' if bound else ''}"


def hnsw_goal_table(res):
    """One line per data set and thread count: the goals against Debian's hnswlib, with the
    ratio against hnswlib native beside it."""
    print("| data, threads | OmenDB / hnswlib, QPS at 0.95 | at 0.99 | OmenDB int8 / hnswlib, "
          "at 0.95 | at 0.99 | same against hnswlib native (float; int8), 0.95 / 0.99 | "
          "build s: OmenDB, int8, hnswlib | bytes/vector on disk: OmenDB, int8, hnswlib |")
    print("|---|---|---|---|---|---|---|---|")
    for r in hnsw_results(res):
        s = r["systems"]
        if not all(k in s for k in ("omendb", "omendb-int8", "hnswlib")):
            continue
        nat = "-"
        if "hnswlib-native" in s:
            nat = (f"{ratio_cell(s, 'omendb', 'hnswlib-native', '0.95')} / "
                   f"{ratio_cell(s, 'omendb', 'hnswlib-native', '0.99')}; "
                   f"{ratio_cell(s, 'omendb-int8', 'hnswlib-native', '0.95')} / "
                   f"{ratio_cell(s, 'omendb-int8', 'hnswlib-native', '0.99')}")
        print(f"| {r['label']} {r['n']:,} x {r['dim']}, {r['threads']} | "
              f"{ratio_cell(s, 'omendb', 'hnswlib', '0.95')} | "
              f"{ratio_cell(s, 'omendb', 'hnswlib', '0.99')} | "
              f"{ratio_cell(s, 'omendb-int8', 'hnswlib', '0.95')} | "
              f"{ratio_cell(s, 'omendb-int8', 'hnswlib', '0.99')} | {nat} | "
              f"{s['omendb']['build_s']:.2f}, {s['omendb-int8']['build_s']:.2f}, "
              f"{s['hnswlib']['build_s']:.2f} | "
              f"{file_bytes(s['omendb']):,.0f}, {file_bytes(s['omendb-int8']):,.0f}, "
              f"{file_bytes(s['hnswlib']):,.0f} |")
    print()


def hnsw_markdown(res):
    """Prints the HNSW tables for docs/BENCHMARKS.md."""
    hnsw_goal_table(res)
    for r in hnsw_results(res):
        s = r["systems"]
        names = [k for k in HNSW_ORDER if k in s]
        print(f"#### {r['label']}, {r['n']:,} x {r['dim']}, {r['metric']}, {r['threads']} "
              f"thread{'s' if r['threads'] > 1 else ''}\n")
        print(f"{r['nq']:,} queries, k = {r['k']}, M = {r['m']}, efConstruction = {r['efc']}; "
              f"{r['started']} to {r['finished']}; QPS: median of {r['rounds']} rounds x "
              f"median of at least {r['reps']} calls per ef"
              + (f" (more until {r['min_time']} s)" if r.get("min_time") else "")
              + f". Cells: recall@{r['k']} / queries per second.\n")
        print("| ef | " + " | ".join(HNSW_NAMES[k] for k in names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for j, p in enumerate(s[names[0]]["sweep"]):
            cells = []
            for k in names:
                q = s[k]["sweep"][j]
                cells.append(f"{q['recall']:.4f} / {q['qps']:,.0f}")
            print(f"| {p['ef']} | " + " | ".join(cells) + " |")
        print()
        print("| | " + " | ".join(HNSW_NAMES[k] for k in names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for t in ("0.95", "0.99"):
            cells = []
            for k in names:
                a = s[k]["qps_at"][t]
                c = fmt_at(a)
                if a["how"] == "above":
                    c = c.format(s[k]["sweep"][0]["ef"])
                cells.append(c)
            print(f"| QPS at recall {t} | " + " | ".join(cells) + " |")
        for mine in ("omendb", "omendb-int8"):
            if mine not in s:
                continue
            for t in ("0.95", "0.99"):
                cells = []
                for k in names:
                    a, b = s[mine]["qps_at"][t], s[k]["qps_at"][t]
                    if k.startswith("omendb") or a["qps"] is None or b["qps"] is None:
                        cells.append("")
                    else:
                        bound = "above" in (a["how"], b["how"])
                        cells.append(f"{a['qps'] / b['qps']:.2f}{' (bounds)' if bound else ''}")
                print(f"| {HNSW_NAMES[mine]} / peer at {t} | " + " | ".join(cells) + " |")
        print("| build seconds | " + " | ".join(f"{s[k]['build_s']:.2f}" for k in names)
              + " |")
        print("| bytes / vector on disk | " + " | ".join(
            f"{file_bytes(s[k]):,.0f}" for k in names) + " |")
        print("| RssAnon growth over the build / vector: peak, after | " + " | ".join(
            f"{s[k]['bytes'].get('rss_anon_peak_growth_build_per_vector', float('nan')):,.0f}, "
            f"{s[k]['bytes'].get('rss_anon_growth_build_per_vector', float('nan')):,.0f}"
            for k in names) + " |")
        for mine in ("omendb", "omendb-int8"):
            if mine not in s:
                continue
            o = s[mine]
            print(f"\n{HNSW_NAMES[mine]}: load {o.get('load_s', 0):.2f} s (relaxed durability), "
                  f"flush after build {o.get('flush_after_build_s', 0):.2f} s, omen_check "
                  f"{o.get('check')} in {o.get('check_s', 0):.2f} s; index "
                  f"{o['bytes'].get('index_per_vector', 0):.0f} B/vector + vectors "
                  f"{o['bytes'].get('vectors_per_vector', 0):.0f} B/vector.")
        print(f"\nGround truth agrees with FAISS IndexFlatL2 on {r['gt_check_vs_faiss_flat']:.5f} "
              f"of the top-{r['k']}; load average {load_range(r)} over the run.")
        single = [k for k in names if "latency_p50_ms" in s[k]["sweep"][0]]
        if single:
            print("\nOne query at a time, one thread: p50 / p99 latency in ms.\n")
            print("| ef | " + " | ".join(HNSW_NAMES[k] for k in single) + " |")
            print("|---" * (len(single) + 1) + "|")
            for j, p in enumerate(s[single[0]]["sweep"]):
                print(f"| {p['ef']} | " + " | ".join(
                    f"{s[k]['sweep'][j]['latency_p50_ms']:.3f} / "
                    f"{s[k]['sweep'][j]['latency_p99_ms']:.3f}" for k in single) + " |")
        print()


def main():
    res = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    if len(sys.argv) > 2 and sys.argv[2] == "--hnsw-md":
        hnsw_markdown(res)
        return
    rows = rows_load(res) + rows_flat(res) + rows_batch(res) + rows_memory(res) + rows_hnsw(res)
    if not rows:
        print(f"no results in {res}")
        return
    with open(os.path.join(res, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["benchmark", "ours", "peer", "ratio", "goal", "note"])
        w.writeheader()
        w.writerows(rows)
    print(f"| {'benchmark':<40} | {'ours':<58} | {'peer or limit':<52} | ratio | goal | met |")
    print(f"|{'-' * 42}|{'-' * 60}|{'-' * 54}|-------|------|-----|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        goal = f">={r['goal']}" if r["goal"] is not None else "-"
        met = "-" if r["goal"] is None or r["ratio"] is None else (
            "yes" if r["ratio"] >= r["goal"] else "no")
        print(f"| {r['benchmark']:<40} | {r['ours']:<58} | {r['peer']:<52} | {ratio:>5} "
              f"| {goal:>4} | {met:<3} |")
    for r in rows:
        if r["note"]:
            print(f"  {r['benchmark']}: {r['note']}")


if __name__ == "__main__":
    main()
