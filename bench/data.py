#!/usr/bin/python3
"""Fetches and converts the benchmark data sets into .fvecs files.

Run it with Debian's /usr/bin/python3 (numpy and the standard library only):

  data.py fashion DIR       DIR/fashion-mnist/{base,query}.fvecs and {base,query}.labels
                            from the Debian package dataset-fashion-mnist (used in place when
                            installed, otherwise fetched with apt-get download and unpacked
                            with dpkg-deb -x, which needs no root).
  data.py synthetic DIR --n N --dim D [--clusters C] [--seed S] [--queries Q]
                            DIR/synth-clustered-N-D.fvecs: a clustered Gaussian mixture, written
                            in chunks so that 1M x 768 never needs the whole array in memory;
                            plus DIR/synth-clustered-N-D.query.fvecs, Q queries (default 1000)
                            drawn from the same mixture with another seed.
  data.py minilm DIR        DIR/minilm/base.fvecs: the 778 384-d MiniLM embeddings of the npm
                            package @sap-ux/fiori-docs-embeddings@1.2.6 (needs npm).
  data.py hnswlib-headers DIR
                            DIR/hnswlib/include/hnswlib/*.h: the hnswlib 0.6.2 headers of the
                            Debian package libhnswlib-dev (used in place when installed, else
                            fetched with apt-get download and unpacked with dpkg-deb -x), for
                            bench/hnswlib_native.cpp, hnswlib compiled with -march=native.

.fvecs is the TEXMEX layout: per vector an int32 dimension, then dim float32, little-endian.
.labels is raw uint8, one class per vector. Every command is idempotent: outputs that exist
with the expected size are kept.
"""

import argparse
import glob
import gzip
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

FASHION_SYS = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
CHUNK_ROWS = 16384


def fvecs_size(n, dim):
    return n * (4 + 4 * dim)


def has_size(path, size):
    return os.path.isfile(path) and os.path.getsize(path) == size


def write_fvecs_chunk(f, x):
    """Appends the rows of float32 array x to the open binary file f in .fvecs layout."""
    n, dim = x.shape
    rec = np.empty((n, dim + 1), dtype="<f4")
    rec[:, 0] = np.array([dim], dtype="<i4").view("<f4")[0]
    rec[:, 1:] = x
    f.write(rec.tobytes())


def atomic_write(path, writer):
    """Writes path through a temporary file and a rename, so a killed run leaves no half file."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        writer(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_idx(path):
    """Reads a gzip'd IDX file (the MNIST format) into a uint8 numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {arr.size} bytes of data, header says {shape}")
    return arr.reshape(shape)


def fashion_source(tmpdir):
    """The directory holding the Fashion-MNIST .gz files: the installed package, or the
    package fetched into tmpdir."""
    if os.path.isdir(FASHION_SYS):
        return FASHION_SYS
    print("fashion: fetching dataset-fashion-mnist with apt-get download", file=sys.stderr)
    subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmpdir, check=True)
    debs = glob.glob(os.path.join(tmpdir, "dataset-fashion-mnist_*.deb"))
    if not debs:
        raise RuntimeError("apt-get download produced no .deb")
    root = os.path.join(tmpdir, "root")
    subprocess.run(["dpkg-deb", "-x", debs[0], root], check=True)
    return os.path.join(root, FASHION_SYS.lstrip("/"))


def cmd_fashion(out_dir):
    dst = os.path.join(out_dir, "fashion-mnist")
    os.makedirs(dst, exist_ok=True)
    want = {
        "base.fvecs": fvecs_size(60000, 784),
        "query.fvecs": fvecs_size(10000, 784),
        "base.labels": 60000,
        "query.labels": 10000,
    }
    if all(has_size(os.path.join(dst, k), v) for k, v in want.items()):
        print(f"fashion: {dst} is up to date")
        return
    tmpdir = tempfile.mkdtemp(prefix="omendb-fashion-")
    try:
        src = fashion_source(tmpdir)
        parts = [("base", "train"), ("query", "t10k")]
        for name, stem in parts:
            img = read_idx(os.path.join(src, f"{stem}-images-idx3-ubyte.gz"))
            lab = read_idx(os.path.join(src, f"{stem}-labels-idx1-ubyte.gz"))
            x = img.reshape(img.shape[0], -1).astype(np.float32)
            atomic_write(os.path.join(dst, f"{name}.fvecs"), lambda f: write_fvecs_chunk(f, x))
            atomic_write(os.path.join(dst, f"{name}.labels"), lambda f: f.write(lab.tobytes()))
            print(f"fashion: {name}: {x.shape[0]} x {x.shape[1]} float32, labels 0..9")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    with open(os.path.join(dst, "classes.txt"), "w") as f:
        f.write("\n".join(FASHION_CLASSES) + "\n")


def mixture_writer(n, dim, centers, sigma, rng):
    """A writer that appends n points of the mixture (uniform over centers, isotropic noise
    of standard deviation sigma) in chunks of CHUNK_ROWS rows."""
    def write(f):
        done = 0
        while done < n:
            m = min(CHUNK_ROWS, n - done)
            which = rng.integers(0, centers.shape[0], size=m)
            x = centers[which] + sigma * rng.standard_normal((m, dim), dtype=np.float32)
            write_fvecs_chunk(f, x.astype(np.float32, copy=False))
            done += m
    return write


def cmd_synthetic(out_dir, n, dim, clusters, seed, queries):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"synth-clustered-{n}-{dim}.fvecs")
    query = os.path.join(out_dir, f"synth-clustered-{n}-{dim}.query.fvecs")
    if has_size(base, fvecs_size(n, dim)) and has_size(query, fvecs_size(queries, dim)):
        print(f"synthetic: {base} is up to date")
        return
    # Centres spread with unit variance per coordinate; points sit around them with a smaller
    # spread, so each cluster is distinct but neighbours are not trivially far apart.
    crng = np.random.default_rng(seed)
    centers = crng.standard_normal((clusters, dim), dtype=np.float32)
    sigma = np.float32(0.35)
    atomic_write(base, mixture_writer(n, dim, centers, sigma, np.random.default_rng(seed + 1)))
    atomic_write(query, mixture_writer(queries, dim, centers, sigma,
                                       np.random.default_rng(seed + 2)))
    print(f"synthetic: {base}: {n} x {dim} float32, {clusters} clusters, seed {seed}")


def cmd_minilm(out_dir):
    dst = os.path.join(out_dir, "minilm")
    out = os.path.join(dst, "base.fvecs")
    if has_size(out, fvecs_size(778, 384)):
        print(f"minilm: {out} is up to date")
        return
    os.makedirs(dst, exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix="omendb-minilm-")
    try:
        subprocess.run(["npm", "pack", "--silent", "@sap-ux/fiori-docs-embeddings@1.2.6"],
                       cwd=tmpdir, check=True, stdout=subprocess.DEVNULL)
        tgz = glob.glob(os.path.join(tmpdir, "*.tgz"))[0]
        subprocess.run(["tar", "-xzf", tgz, "-C", tmpdir], check=True)
        found = glob.glob(os.path.join(tmpdir, "**", "embeddings.bin"), recursive=True)
        if not found:
            raise RuntimeError("embeddings.bin not found in the npm package")
        raw = np.fromfile(found[0], dtype="<f4")
        if raw.size % 384:
            raise RuntimeError(f"embeddings.bin: {raw.size} floats, not a multiple of 384")
        x = raw.reshape(-1, 384)
        atomic_write(out, lambda f: write_fvecs_chunk(f, x))
        print(f"minilm: {out}: {x.shape[0]} x 384 float32")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


HNSWLIB_SYS = "/usr/include/hnswlib"
HNSWLIB_FILES = ["hnswlib.h", "hnswalg.h", "space_l2.h", "space_ip.h", "visited_list_pool.h",
                 "bruteforce.h"]


def cmd_hnswlib_headers(out_dir):
    dst = os.path.join(out_dir, "hnswlib", "include", "hnswlib")
    if all(os.path.isfile(os.path.join(dst, h)) for h in HNSWLIB_FILES):
        print(f"hnswlib-headers: {dst} is up to date")
        return
    os.makedirs(dst, exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix="omendb-hnswlib-")
    try:
        src = HNSWLIB_SYS
        if not os.path.isdir(src):
            print("hnswlib-headers: fetching libhnswlib-dev with apt-get download",
                  file=sys.stderr)
            subprocess.run(["apt-get", "download", "libhnswlib-dev"], cwd=tmpdir, check=True)
            debs = glob.glob(os.path.join(tmpdir, "libhnswlib-dev_*.deb"))
            if not debs:
                raise RuntimeError("apt-get download produced no .deb")
            subprocess.run(["dpkg-deb", "-x", debs[0], os.path.join(tmpdir, "root")],
                           check=True)
            src = os.path.join(tmpdir, "root", HNSWLIB_SYS.lstrip("/"))
        for h in HNSWLIB_FILES:
            shutil.copyfile(os.path.join(src, h), os.path.join(dst, h))
        print(f"hnswlib-headers: {dst}: {len(HNSWLIB_FILES)} headers from {src}")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["fashion", "synthetic", "minilm", "hnswlib-headers"])
    ap.add_argument("dir")
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--queries", type=int, default=1000)
    a = ap.parse_args()
    if a.what == "fashion":
        cmd_fashion(a.dir)
    elif a.what == "synthetic":
        if a.n < 1 or a.dim < 1 or a.clusters < 1 or a.queries < 1:
            ap.error("--n, --dim, --clusters and --queries must be positive")
        cmd_synthetic(a.dir, a.n, a.dim, a.clusters, a.seed, a.queries)
    elif a.what == "hnswlib-headers":
        cmd_hnswlib_headers(a.dir)
    else:
        cmd_minilm(a.dir)


if __name__ == "__main__":
    main()
