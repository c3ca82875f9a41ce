#!/usr/bin/python3
"""Semantic search over real sentence embeddings with the omendb Python package.

Loads the 778 MiniLM (all-MiniLM-L6-v2, 384-d) embeddings of the SAP Fiori documentation
published in the npm package @sap-ux/fiori-docs-embeddings@1.2.6 into an embedded database
(cosine), with each record's title as metadata, then searches with one record's own vector
and prints the titles of the closest records.

    PYTHONPATH=build/python /usr/bin/python3 examples/minilm_search.py \
        [--data DIR] [--record N] [--db PATH]

--data DIR   a directory holding embeddings.bin (778 x 384 float32, little-endian) and
             records.jsonl (one {"id", "content", ...} object per line); the unpacked npm
             package's package/data/embeddings/. Without it, the package is fetched with
             `npm pack` into a temporary directory (needs npm and the network).
--record N   the record whose vector is the query (default 0).
--db PATH    the database directory (default: a temporary one, removed at the end). An
             existing database is reused: its collection "fiori" is loaded only if empty.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import omendb

PACKAGE = "@sap-ux/fiori-docs-embeddings@1.2.6"
DIM = 384


def fetch(tmpdir):
    """Fetches and unpacks the npm package into tmpdir; returns the embeddings directory."""
    print(f"fetching {PACKAGE} with npm pack", file=sys.stderr)
    subprocess.run(["npm", "pack", "--silent", PACKAGE], cwd=tmpdir, check=True,
                   stdout=subprocess.DEVNULL)
    tgz = glob.glob(os.path.join(tmpdir, "*.tgz"))[0]
    subprocess.run(["tar", "-xzf", tgz, "-C", tmpdir], check=True)
    found = glob.glob(os.path.join(tmpdir, "**", "embeddings.bin"), recursive=True)
    if not found:
        sys.exit("embeddings.bin not found in the npm package")
    return os.path.dirname(found[0])


def find_files(d):
    """The paths of embeddings.bin and records.jsonl in d or below it."""
    out = []
    for name in ("embeddings.bin", "records.jsonl"):
        hits = sorted(glob.glob(os.path.join(d, "**", name), recursive=True))
        if not hits:
            sys.exit(f"{d}: no {name} there")
        out.append(hits[0])
    return out


def title_of(rec):
    """The record's title: the first line of its content, "**TITLE**: <title>"."""
    first = rec.get("content", "").split("\n", 1)[0]
    if first.startswith("**TITLE**:"):
        return first[len("**TITLE**:"):].strip()
    return rec.get("title") or rec.get("id", "?")


def load(d):
    """(vectors float32 (n, 384), titles) read from directory d."""
    emb_path, rec_path = find_files(d)
    raw = np.fromfile(emb_path, dtype="<f4")
    if raw.size % DIM:
        sys.exit(f"{emb_path}: {raw.size} floats, not a multiple of {DIM}")
    vectors = raw.reshape(-1, DIM)
    with open(rec_path, encoding="utf-8") as f:
        titles = [title_of(json.loads(line)) for line in f if line.strip()]
    if len(titles) != len(vectors):
        sys.exit(f"{len(vectors)} vectors but {len(titles)} records")
    return vectors, titles


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="directory with embeddings.bin and records.jsonl")
    ap.add_argument("--record", type=int, default=0, help="query record (default 0)")
    ap.add_argument("--db", help="database directory (default: a temporary one)")
    ap.add_argument("--k", type=int, default=5, help="results (default 5)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="omendb-minilm-")
    try:
        vectors, titles = load(args.data or fetch(tmp))
        if not 0 <= args.record < len(vectors):
            sys.exit(f"--record must be 0 to {len(vectors) - 1}")
        path = args.db or os.path.join(tmp, "minilm.db")
        with omendb.open(path, durability="relaxed") as db:
            col = db["fiori"] if "fiori" in db else db.create_collection("fiori", DIM, "cosine")
            if len(col) == 0:
                col.add(vectors, ids=np.arange(len(vectors), dtype=np.uint64),
                        metadata=[{"title": t} for t in titles])
            print(f"{len(col)} records of {DIM} dimensions in {path}")
            print(f"query: record {args.record}: {titles[args.record]}")
            ids, dists = col.search(vectors[args.record], k=args.k)
            _, meta, _ = col.get(ids)
            for rank, (i, d, m) in enumerate(zip(ids, dists, meta), 1):
                print(f"{rank}. {d:.4f}  #{i}  {m['title'] if m else '?'}")
            col.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
