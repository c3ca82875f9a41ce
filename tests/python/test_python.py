"""Tests of the omendb Python package: embedded databases compared with a numpy brute-force
ground truth, every documented error, threads, and the same calls against a local cluster
(ops/cluster up 2) through omendb.connect().

Run from the repository root:

    PYTHONPATH=build/python OMEN_NODE=build/omendb-node OMEN_FASHION=data/fashion-mnist \
        /usr/bin/python3 -m pytest -q tests/python/test_python.py

Data: 2,000 clustered 32-d points (Gaussian mixture, fixed seed), small enough for ASan; the
HNSW and IVF recall tests use 2,000 Fashion-MNIST images instead (recall is measured on real
data; 10,000 through the cluster, whose 8 logical shards each need 1,000 for IVF).
"""
import array
import gc
import json
import math
import os
import subprocess
import threading
import time

import numpy as np
import pytest

import omendb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "ops", "cluster")
NODE = os.environ.get("OMEN_NODE", os.path.join(ROOT, "build", "omendb-node"))
N, DIM, NQ, K = 2000, 32, 50, 10
NO_ID = 2**64 - 1
EUNAVAIL, EEXIST, ENOTDB, EBUSY, ENOTSUP = 14, 3, 7, 10, 11


# ---- data and ground truth ----

def clustered(n, dim, seed, clusters=16):
    """A Gaussian mixture: unit-variance centres, points at 0.35 around them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    pick = rng.integers(0, clusters, n)
    x = centres[pick] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x.astype(np.float32), pick


@pytest.fixture(scope="module")
def data():
    x, cls = clustered(N, DIM, 7)
    q, _ = clustered(NQ, DIM, 7)  # same centres...
    q = q + 0.1 * np.random.default_rng(8).standard_normal(q.shape).astype(np.float32)
    return x, cls, q.astype(np.float32)


def true_dists(metric, x, q):
    """(nq, n) float64 distances as the engine defines them: smaller is closer."""
    x = x.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "l2":
        return ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if metric == "ip":
        return -(q @ x.T)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return 1.0 - qn @ xn.T


def brute_force(metric, x, q, k, ids=None, mask=None):
    d = true_dists(metric, x, q)
    if mask is not None:
        d[:, ~mask] = np.inf
    ids = np.arange(len(x), dtype=np.uint64) if ids is None else np.asarray(ids, np.uint64)
    order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :k]
    return ids[order], np.take_along_axis(d, order, 1)


def assert_topk(ids, dists, gt_ids, gt_dists, all_d, tol=1e-4):
    """Results equal the ground truth: same distances (within float32 rounding), each id's
    true distance equals the one returned, and the same ids except where two true distances
    are closer than rounding can tell apart."""
    assert ids.dtype == np.uint64 and dists.dtype == np.float32
    assert ids.shape == gt_ids.shape and dists.shape == gt_dists.shape
    scale = tol * max(1.0, float(np.abs(gt_dists[np.isfinite(gt_dists)]).max()))
    np.testing.assert_allclose(dists, gt_dists, rtol=0, atol=scale)
    for r in range(ids.shape[0]):
        for j in range(ids.shape[1]):
            if ids[r, j] == NO_ID:
                continue
            assert abs(all_d[r, int(ids[r, j])] - dists[r, j]) <= scale
            if ids[r, j] != gt_ids[r, j]:
                assert abs(all_d[r, int(ids[r, j])] - gt_dists[r, j]) <= scale, (r, j)


# ---- fixtures ----

@pytest.fixture
def db(tmp_path):
    d = omendb.open(str(tmp_path / "t.db"))
    yield d
    d.close()


@pytest.fixture
def col(db, data):
    """An L2 collection of the module's points, ids 0..N-1, metadata on every point."""
    x, cls, _ = data
    c = db.create_collection("pts", DIM)
    meta = [{"cls": int(cls[i]), "even": i % 2 == 0, "tag": f"p{i}"} for i in range(N)]
    got = c.add(x, metadata=meta)
    assert np.array_equal(got, np.arange(N, dtype=np.uint64))
    return c


# ---- round trips ----

def test_add_get_round_trip(db, data):
    x, _, _ = data
    c = db.create_collection("rt", DIM)
    assert (c.name, c.dim, c.metric) == ("rt", DIM, "l2")
    ids = c.add(x[:100])
    assert ids.dtype == np.uint64 and np.array_equal(ids, np.arange(100))
    ids2 = c.add(x[100:150])
    assert np.array_equal(ids2, np.arange(100, 150))  # assigned after the largest id
    given = np.array([1000, 500000, 77777], dtype=np.uint64)
    assert np.array_equal(c.add(x[150:153], ids=given), given)
    assert np.array_equal(c.add(x[153:155], ids=[9000, 9001]), [9000, 9001])
    vec, meta, found = c.get(np.concatenate([np.arange(150, dtype=np.uint64), given]))
    assert vec.dtype == np.float32 and vec.shape == (153, DIM)
    assert found.dtype == np.bool_ and found.all()
    assert np.array_equal(vec, x[:153])  # bit for bit
    assert meta == [None] * 153
    vec, meta, found = c.get([123456, 0])
    assert found.tolist() == [False, True]
    assert not vec[0].any() and np.array_equal(vec[1], x[0])
    assert meta == [None, None]
    assert len(c) == c.count() == 155


def test_metadata_round_trip(db):
    c = db.create_collection("meta", 2)
    m = [{"year": 2021, "title": "Caf\u00e9", "score": 0.1, "w": 2.0, "ok": True},
         None,
         {"big": 2**62, "neg": -7, "no": False, "s": "a\nb\"c"}]
    c.add(np.ones((3, 2), np.float32), metadata=m)
    _, back, found = c.get([0, 1, 2])
    assert found.all()
    assert back == m
    assert back[0]["ok"] is True and back[2]["no"] is False
    assert isinstance(back[0]["year"], int) and isinstance(back[0]["w"], float)


def test_ids_up_to_2_64_minus_2(db):
    """Every uint64 but NO_ID is an id, also when given as a list of Python ints (numpy
    would make such a list float64)."""
    c = db.create_collection("big", 2)
    big = [5, 2**63, 2**64 - 2]
    assert c.add(np.ones((3, 2)), ids=np.array(big, np.uint64)).tolist() == big
    assert c.get(np.array(big, np.uint64))[2].all()
    assert c.add(np.ones((3, 2)), ids=big).tolist() == big
    assert c.get(big)[2].all()
    assert c.delete(big) == 3


def test_upsert_replaces(db):
    c = db.create_collection("up", 3)
    c.add(np.ones((2, 3)), ids=[4, 5], metadata=[{"v": 1}, {"v": 1}])
    c.upsert(np.full((1, 3), 2.0), ids=[5], metadata=[{"v": 2}])
    vec, meta, _ = c.get([4, 5])
    assert vec.tolist() == [[1, 1, 1], [2, 2, 2]]
    assert meta == [{"v": 1}, {"v": 2}]
    assert len(c) == 2


def test_dtypes_and_layouts(db, data):
    x, _, _ = data
    c = db.create_collection("dt", DIM)
    wide = np.zeros((20, 2 * DIM), np.float32)
    wide[:, ::2] = x[:20]
    inputs = [
        x[:4].astype(np.float64),                 # float64
        wide[:4, ::2],                            # non-contiguous columns
        x[:8:2],                                  # non-contiguous rows
        np.asfortranarray(x[:4]),                 # Fortran order
        memoryview(np.ascontiguousarray(x[:4])),  # a buffer, 2-D
    ]
    for arr in inputs:
        expect = np.asarray(arr, dtype=np.float32)
        ids = c.add(arr)
        vec, _, found = c.get(ids)
        assert found.all() and np.array_equal(vec, expect)
    one = array.array("f", x[0].tolist())          # a 1-D buffer: a single vector
    ids = c.add(one)
    assert ids.shape == (1,)
    assert np.array_equal(c.get(ids)[0][0], x[0])
    ids = c.add(array.array("d", x[1].astype(np.float64).tolist()))
    assert np.array_equal(c.get(ids)[0][0], x[1])
    ids = c.add(x[2].tolist())                     # a list of floats
    assert np.array_equal(c.get(ids)[0][0], x[2])


def test_query_dtypes_agree(col, data):
    x, _, q = data
    ref_i, ref_d = col.search(q[:5], k=K, exact=True)
    wide = np.zeros((5, 2 * DIM), np.float32)
    wide[:, ::2] = q[:5]
    for qq in (q[:5].astype(np.float64), wide[:, ::2], np.asfortranarray(q[:5]),
               memoryview(np.ascontiguousarray(q[:5]))):
        i, d = col.search(qq, k=K, exact=True)
        assert np.array_equal(i, ref_i)
        np.testing.assert_allclose(d, ref_d, rtol=1e-6, atol=1e-6)


def test_one_query_and_many(col, data):
    _, _, q = data
    ids, dists = col.search(q, k=K, exact=True)
    assert ids.shape == dists.shape == (NQ, K)
    i1, d1 = col.search(q[3], k=K, exact=True)
    assert i1.shape == d1.shape == (K,)
    assert np.array_equal(i1, ids[3]) and np.array_equal(d1, dists[3])
    i2, d2 = col.search(q[3:4], k=K, exact=True)
    assert i2.shape == (1, K) and np.array_equal(i2[0], ids[3])
    for r in range(NQ):
        assert np.all(np.diff(dists[r]) >= 0)
    i3, _ = col.search(q, k=K, exact=True, threads=1)
    assert np.array_equal(i3, ids)


# ---- search against brute force ----

@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_exact_search_equals_brute_force(db, data, metric):
    x, _, q = data
    c = db.create_collection("m_" + metric, DIM, metric=metric)
    assert c.metric == metric
    c.add(x)
    ids, dists = c.search(q, k=K, exact=True)
    all_d = true_dists(metric, x, q)
    gt_i, gt_d = brute_force(metric, x, q, K)
    assert_topk(ids, dists, gt_i, gt_d, all_d)


def test_ties_by_smaller_id(db):
    c = db.create_collection("ties", 4)
    v = np.array([1, 2, 3, 4], np.float32)
    c.add(np.stack([v, v, v, v + 10]), ids=[7, 3, 5, 1])
    ids, dists = c.search(v, k=3, exact=True)
    assert ids.tolist() == [3, 5, 7]
    assert dists[0] == dists[1] == dists[2] and abs(dists[0]) < 1e-5


def test_filters_dict_and_str(col, data):
    x, cls, q = data
    all_d = true_dists("l2", x, q)
    flt = {"cls": 3, "even": True}
    mask = (cls == 3) & (np.arange(N) % 2 == 0)
    gt_i, gt_d = brute_force("l2", x, q, K, mask=mask)
    for f in (flt, json.dumps(flt)):
        ids, dists = col.search(q, k=K, filter=f, exact=True)
        assert_topk(ids, dists, gt_i, gt_d, all_d)
        assert mask[ids.astype(np.int64)].all()
    f = {"$or": [{"cls": {"$in": [1, 2]}}, {"tag": "p17"}]}
    ids, _ = col.search(q[0], k=K, filter=f, exact=True)
    mask = np.isin(cls, [1, 2])
    mask[17] = True
    assert mask[ids.astype(np.int64)].all()
    ids, _ = col.search(q[0], k=K, filter={}, exact=True)
    assert np.array_equal(ids, col.search(q[0], k=K, exact=True)[0])


def test_filter_with_few_matches_pads(col, data):
    x, _, q = data
    f = {"tag": {"$in": ["p10", "p11", "p12"]}}
    ids, dists = col.search(q[:2], k=K, filter=f, exact=True)
    assert ids.shape == (2, K)
    for r in range(2):
        assert sorted(ids[r, :3].tolist()) == [10, 11, 12]
        assert (ids[r, 3:] == omendb.NO_ID).all() and omendb.NO_ID == NO_ID
        assert np.isinf(dists[r, 3:]).all() and np.isfinite(dists[r, :3]).all()
    ids, dists = col.search(q[0], k=5, filter={"tag": "nobody"})
    assert (ids == NO_ID).all() and np.isinf(dists).all()


# ---- index ----

def fashion(n, nq):
    """The first n Fashion-MNIST training images and nq test images (784-d float32): recall is
    measured on real data (ops/test fetches it; meson passes its directory as OMEN_FASHION)."""
    root = os.environ.get("OMEN_FASHION") or os.path.join(
        ROOT, "data", "fashion-mnist")

    def rows(name, count):
        path = os.path.join(root, name)
        if not os.path.exists(path):
            pytest.skip(f"{path} missing: python3 bench/data.py fashion data")
        raw = np.fromfile(path, dtype="<f4", count=count * 785).reshape(count, 785)
        assert (raw[:, 0].view("<i4") == 784).all()
        return np.ascontiguousarray(raw[:, 1:])

    return rows("base.fvecs", n), rows("query.fvecs", nq)


def test_build_index_hnsw_recall(db):
    x, q = fashion(N, NQ)
    col = db.create_collection("fashion", x.shape[1])
    col.add(x)
    exact, _ = col.search(q, k=K, exact=True)
    col.build_index("hnsw", m=16, ef_construction=100)
    st = col.stats()
    assert st["index"] == "hnsw" and st["indexed"] == N
    assert st["hnsw_m"] == 16 and st["hnsw_ef_construction"] == 100 and not st["hnsw_int8"]
    ok, report = col.check()
    assert ok is True and isinstance(report, str) and report
    approx, dists = col.search(q, k=K, ef=64)
    hits = sum(len(set(e.tolist()) & set(a.tolist())) for e, a in zip(exact, approx))
    assert hits / (NQ * K) >= 0.95
    col.build_index("hnsw", int8=True, threads=1)
    assert col.stats()["hnsw_int8"]
    approx, _ = col.search(q, k=K)
    hits = sum(len(set(e.tolist()) & set(a.tolist())) for e, a in zip(exact, approx))
    assert hits / (NQ * K) >= 0.95
    col.build_index("flat")
    assert col.stats()["index"] == "flat"
    assert np.array_equal(col.search(q, k=K)[0], exact)


def recall(got, want):
    return sum(len(set(w.tolist()) & set(g.tolist())) for w, g in zip(want, got)) / want.size


def test_build_index_ivf_recall(db):
    """IVF at the calibrated default nprobe against exact search on real data; nprobe reaches
    the search; statistics, info and check."""
    x, q = fashion(N, NQ)
    col = db.create_collection("fashion", x.shape[1])
    col.add(x)
    exact, _ = col.search(q, k=K, exact=True)
    col.build_index("ivf")
    st = col.stats()
    assert st["index"] == "ivf" and st["indexed"] == N and st["index_bytes"] > 0
    nlist, nprobe = st["ivf_nlist"], st["ivf_nprobe"]
    assert st["ivf_bits"] == 1 and 1 <= nprobe <= nlist
    assert (st["hnsw_m"], st["hnsw_ef_construction"], st["hnsw_int8"]) == (0, 0, False)
    ok, report = col.check()
    assert ok is True and report
    approx, dists, info = col.search(q, k=K, return_info=True)
    assert recall(approx, exact) >= 0.95, recall(approx, exact)
    assert (dists[:, 1:] >= dists[:, :-1]).all()
    assert info["path"] == "cpu-ivf" and NQ * K <= info["vectors_read"] < NQ * N // 2
    same, _, same_info = col.search(q, k=K, nprobe=nprobe, return_info=True)
    assert np.array_equal(same, approx) and same_info == info
    one, _, one_info = col.search(q, k=K, nprobe=1, return_info=True)
    every, _, every_info = col.search(q, k=K, nprobe=nlist, return_info=True)
    assert one_info["vectors_read"] < every_info["vectors_read"]
    assert recall(one, exact) < recall(every, exact)
    _, _, exact_info = col.search(q, k=K, exact=True, return_info=True)
    assert exact_info == {"path": "cpu-exact", "shards_answered": 1, "shards_total": 1,
                          "vectors_read": NQ * N}
    for bad in (nlist + 1, 2**20):
        with pytest.raises(ValueError, match=f"nprobe {bad} exceeds the index's {nlist} lists"):
            col.search(q, k=K, nprobe=bad)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="nprobe must be at least 1"):
            col.search(q, k=K, nprobe=bad)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="nlist must be 1 to 65536"):
            col.build_index("ivf", nlist=bad)
    assert col.stats()["ivf_nlist"] == nlist  # unchanged
    col.build_index("ivf", nlist=None)  # None: chosen from the points, as by default
    assert col.stats()["ivf_nlist"] == nlist
    col.build_index("ivf", nlist=20, bits=1, threads=1)
    assert col.stats()["ivf_nlist"] == 20
    col.build_index("flat")
    assert col.stats()["index"] == "flat" and col.stats()["ivf_nlist"] == 0


def test_build_index_auto_ivf_above_the_ram_budget(db, data):
    """auto picks IVF from 10,000 points on when the float vectors exceed ram_budget bytes,
    HNSW when they fit."""
    x, _ = clustered(10_000, DIM, 9)
    c = db.create_collection("budget", DIM)
    c.add(x)
    size = 10_000 * DIM * 4
    c.build_index("auto", m=4, ef_construction=8, ram_budget=size)
    assert c.stats()["index"] == "hnsw"
    c.build_index("auto", ram_budget=size - 1)
    st = c.stats()
    assert st["index"] == "ivf" and st["ivf_nlist"] > 0


def test_build_index_bad_arguments(col):
    with pytest.raises(ValueError):
        col.build_index("btree")
    with pytest.raises(ValueError):
        col.build_index("hnsw", m=2)
    with pytest.raises(ValueError):
        col.build_index("hnsw", ef_construction=1)
    with pytest.raises(ValueError):
        col.build_index("hnsw", m=2**32 + 16)  # not m=16 after truncation to 32 bits
    with pytest.raises(ValueError):
        col.build_index("hnsw", ef_construction=2**32 + 100)
    ivf_cases = [(dict(bits=5), "bits must be 1 to 4, got 5"),
                 (dict(bits=0), "bits must be 1 to 4, got 0"),
                 (dict(bits=2**32 + 1), "bits"),
                 (dict(nlist=N + 1), rf"nlist {N + 1} exceeds the live points \({N}\)"),
                 (dict(nlist=65537), "nlist"),
                 (dict(nlist=-1), "nlist"),
                 (dict(ram_budget=-1), "ram_budget"),
                 (dict(ram_budget=2**64), "ram_budget")]
    for kw, msg in ivf_cases:
        with pytest.raises(ValueError, match=msg):
            col.build_index("ivf", **kw)
    with pytest.raises(TypeError):
        col.build_index("ivf", ram_budget="1G")
    assert col.stats()["index"] == "flat"
    col.build_index("hnsw", m=4, ef_construction=8)
    small = col.ids()[:500]
    col.delete(np.setdiff1d(col.ids(), small))
    with pytest.raises(ValueError, match="at least 1000 live points, it has 500"):
        col.build_index("ivf")
    st = col.stats()
    assert st["index"] == "hnsw" and st["hnsw_m"] == 4  # the index as it was


# ---- delete, count, stats ----

def test_delete(col, data):
    _, _, q = data
    ids, _ = col.search(q[0], k=3, exact=True)
    assert col.delete(ids[:2]) == 2
    assert col.delete(np.array([ids[0], 10**12], dtype=np.uint64)) == 0
    assert col.delete([10**12, 10**12 + 1]) == 0
    assert len(col) == col.count() == N - 2
    _, meta, found = col.get(ids)
    assert found.tolist() == [False, False, True] and meta[0] is None
    after, _ = col.search(q[0], k=K, exact=True)
    assert ids[0] not in after and ids[1] not in after and after[0] == ids[2]
    st = col.stats()
    assert st["points"] == N - 2 and st["deleted"] == 2


def test_stats_and_check(db, col):
    st = col.stats()
    for key in ("name", "dim", "metric", "points", "deleted", "next_id", "segments",
                "vector_bytes", "index", "indexed", "index_bytes", "hnsw_m",
                "hnsw_ef_construction", "hnsw_int8", "ivf_nlist", "ivf_nprobe", "ivf_bits"):
        assert key in st, key
    assert st["name"] == "pts" and st["dim"] == DIM and st["metric"] == "l2"
    assert st["points"] == N and st["next_id"] == N and st["vector_bytes"] >= N * DIM * 4
    ok, report = col.check()
    assert ok is True and isinstance(report, str)
    dst = db.stats()
    assert isinstance(dst, dict) and dst["collections"] == 1
    assert db.remote is False


def test_collections(db):
    assert db.list_collections() == []
    db.create_collection("b", 2)
    db.create_collection("a", 3, metric="cosine")
    assert db.list_collections() == ["a", "b"]
    assert "a" in db and "zz" not in db
    c = db["a"]
    assert (c.name, c.dim, c.metric) == ("a", 3, "cosine")
    assert db.collection("b").dim == 2
    with pytest.raises(omendb.Error) as e:
        db.create_collection("a", 3)
    assert e.value.status == EEXIST and "already exists" in str(e.value)
    db.flush()


def test_drop_collection_closes_own_handles(db):
    c = db.create_collection("gone", 2)
    c.add([[1.0, 2.0]])
    db.drop_collection("gone")  # this database's handles are closed first: no EBUSY
    assert "gone" not in db and db.list_collections() == []
    with pytest.raises(ValueError):
        c.search([1.0, 2.0], k=1)
    with pytest.raises(KeyError):
        db.drop_collection("gone")


# ---- lifetimes and persistence ----

def test_context_managers_close(tmp_path):
    with omendb.open(str(tmp_path / "cm.db")) as db:
        with db.create_collection("c", 2) as c:
            c.add([[1.0, 2.0]])
        with pytest.raises(ValueError):
            c.search([1.0, 2.0], k=1)
    with pytest.raises(ValueError):
        db.list_collections()
    with pytest.raises(ValueError):
        db.create_collection("d", 2)


def test_closed_handles_raise_value_error(tmp_path):
    db = omendb.open(str(tmp_path / "closed.db"))
    c = db.create_collection("c", 2)
    c.add([[1.0, 2.0]])
    other = db["c"]
    c.close()
    c.close()  # twice is fine
    for call in (lambda: c.add([[1.0, 2.0]]), lambda: c.search([1.0, 2.0], k=1),
                 lambda: c.get([0]), lambda: c.delete([0]), lambda: len(c), c.count,
                 c.stats, c.check, c.build_index):
        with pytest.raises(ValueError):
            call()
    assert len(other) == 1  # another handle to the same collection still works
    db.close()
    db.close()
    for call in (lambda: other.search([1.0, 2.0], k=1), lambda: db["c"], db.list_collections,
                 db.flush, db.stats, lambda: db.create_collection("x", 2),
                 lambda: db.drop_collection("c"), lambda: "c" in db):
        with pytest.raises(ValueError):
            call()


def test_handles_outlive_names_and_garbage_collection(tmp_path):
    path = str(tmp_path / "gc.db")
    c = omendb.open(path).create_collection("c", 2)  # the collection keeps its database
    c.add([[1.0, 2.0]])
    assert len(c) == 1
    del c
    gc.collect()
    with omendb.open(path) as db:  # the unreachable handles were closed
        assert len(db["c"]) == 1


def test_close_while_searching(tmp_path, data):
    """Closing the database while another thread searches either lets the search finish or
    makes it raise ValueError; it never frees what the search uses."""
    x, _, _ = data
    db = omendb.open(str(tmp_path / "race.db"))
    c = db.create_collection("c", DIM)
    c.add(x)
    q = np.tile(x[:500], (8, 1))
    out = []

    def work():
        try:
            out.append(c.search(q, k=K, exact=True, threads=1)[0])
        except ValueError as e:
            out.append(e)

    th = threading.Thread(target=work)
    th.start()
    time.sleep(0.005)
    db.close()
    th.join()
    assert isinstance(out[0], ValueError) or np.array_equal(out[0][:, 0], np.tile(
        np.arange(500), 8))
    with pytest.raises(ValueError):
        c.search(q, k=K)


def test_reopen_persists(tmp_path, data):
    x, _, q = data
    path = str(tmp_path / "p.db")
    with omendb.open(path, durability="relaxed") as db:
        c = db.create_collection("keep", DIM, metric="ip")
        c.add(x[:300], metadata=[{"i": i} for i in range(300)])
        before = c.search(q, k=K, exact=True)
        c.close()
    with omendb.open(path, read_only=True, create=False) as db:
        c = db["keep"]
        assert len(c) == 300 and c.metric == "ip"
        vec, meta, found = c.get([0, 299])
        assert found.all() and np.array_equal(vec, x[[0, 299]])
        assert meta == [{"i": 0}, {"i": 299}]
        after = c.search(q, k=K, exact=True)
        assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
        with pytest.raises(omendb.Error) as e:
            c.add(x[:1])
        assert e.value.status == ENOTSUP
        c.close()


def test_open_options(tmp_path):
    with pytest.raises(omendb.Error) as e:
        omendb.open(str(tmp_path / "missing"), create=False)
    assert e.value.status == ENOTDB and "missing" in str(e.value)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a database")
    with pytest.raises(omendb.Error) as e:
        omendb.open(str(tmp_path / "junk"))
    assert e.value.status == ENOTDB
    with pytest.raises(ValueError):
        omendb.open(str(tmp_path / "x"), durability="sometimes")
    with pytest.raises(ValueError):
        omendb.open(str(tmp_path / "x"), max_bytes=-1)
    with omendb.open(str(tmp_path / "nb"), background_index=False, max_bytes=64 << 20) as db:
        db.create_collection("c", 2).add([[1.0, 1.0]])


# ---- bad input ----

def assert_nothing_written(c, n_before, next_before):
    assert len(c) == n_before and c.stats()["next_id"] == next_before


def bad_adds(dim=DIM):
    """(description, kwargs for add, exception, message regex) of adds that must fail."""
    good = np.ones((3, dim), np.float32)
    nan = good.copy()
    nan[1, 2] = np.nan
    inf = good.copy()
    inf[2, 0] = np.inf
    return [
        ("wrong dim", dict(vectors=np.ones((3, dim + 1))), ValueError,
         rf"dimension {dim} expected, got {dim + 1}"),
        ("wrong dim 1-D", dict(vectors=np.ones(dim - 1)), ValueError,
         rf"dimension {dim} expected, got {dim - 1}"),
        ("NaN", dict(vectors=nan), ValueError, "NaN"),
        ("inf", dict(vectors=inf), ValueError, "infinit"),
        ("ragged", dict(vectors=[[1.0] * dim, [1.0] * (dim - 1)]), ValueError, None),
        ("3-D", dict(vectors=np.ones((2, 3, dim))), ValueError, None),
        ("0-D", dict(vectors=np.float32(1.0)), ValueError, None),
        ("strings", dict(vectors=["a" * dim]), ValueError, None),
        ("a string", dict(vectors="abc"), ValueError, None),
        ("string array", dict(vectors=np.array([["x"] * dim])), ValueError, None),
        ("duplicate ids", dict(vectors=good, ids=[8, 9, 8]), ValueError,
         "id 8 appears twice in the batch"),
        ("reserved id", dict(vectors=good, ids=np.array([1, 2, NO_ID], np.uint64)),
         ValueError, "reserved"),
        ("negative id", dict(vectors=good, ids=[1, -2, 3]), ValueError, None),
        ("float ids", dict(vectors=good, ids=[1.0, 2.0, 3.0]), ValueError, None),
        ("ids length", dict(vectors=good, ids=[1, 2]), ValueError, None),
        ("metadata length", dict(vectors=good, metadata=[None, None]), ValueError, None),
        ("metadata not dict", dict(vectors=good, metadata=[None, [1, 2], None]), ValueError,
         None),
        ("metadata str", dict(vectors=good, metadata=[None, None, '{"a": 1}']), ValueError,
         None),
        ("metadata nested", dict(vectors=good, metadata=[{"a": {"b": 1}}, None, None]),
         ValueError, "'a'.*object"),
        ("metadata list value", dict(vectors=good, metadata=[None, {"t": [1]}, None]),
         ValueError, "'t'.*array"),
        ("metadata None value", dict(vectors=good, metadata=[None, {"t": None}, None]),
         ValueError, "'t'.*null"),
        ("metadata $ key", dict(vectors=good, metadata=[None, {"$t": 1}, None]),
         ValueError, r"\$t"),
        ("metadata int key", dict(vectors=good, metadata=[None, {1: 1}, None]),
         ValueError, None),
        ("metadata NaN", dict(vectors=good, metadata=[None, {"t": math.nan}, None]),
         ValueError, None),
        ("metadata huge int", dict(vectors=good, metadata=[None, {"t": 2**64}, None]),
         ValueError, None),
        ("metadata not a list", dict(vectors=good, metadata={"a": 1}), ValueError, None),
    ]


BAD_ADDS = bad_adds()


@pytest.fixture
def small(db):
    """A collection of 10 points, ids 0..9, each with metadata."""
    c = db.create_collection("small", DIM)
    c.add(np.arange(10 * DIM, dtype=np.float32).reshape(10, DIM),
          metadata=[{"i": i} for i in range(10)])
    return c


@pytest.mark.parametrize("what,kw,exc,msg", BAD_ADDS, ids=[b[0] for b in BAD_ADDS])
def test_bad_add_raises_and_writes_nothing(small, what, kw, exc, msg):
    before = small.get(np.arange(10))
    with pytest.raises(exc, match=msg) as e:
        small.add(**kw)
    assert not isinstance(e.value, omendb.Error)
    assert_nothing_written(small, 10, 10)
    after = small.get(np.arange(10))  # the ids of the bad batches, unchanged
    assert np.array_equal(after[0], before[0]) and after[1] == before[1]


def test_wrong_dim_message_is_the_engines(db):
    c = db.create_collection("docs", 128)
    with pytest.raises(ValueError) as e:
        c.add(np.zeros((2, 100), np.float32))
    assert "collection 'docs': dimension 128 expected, got 100" in str(e.value)
    assert len(c) == 0


def test_bad_searches(col, data):
    _, _, q = data
    cases = [
        (dict(queries=q[:, :-1]), "dimension 32 expected, got 31"),
        (dict(queries=np.full(DIM, np.nan)), "NaN"),
        (dict(queries=np.full((2, DIM), np.inf)), "infinit"),
        (dict(queries=np.ones((2, 2, DIM))), None),
        (dict(queries=[[1.0] * DIM, [1.0]]), None),
        (dict(queries="abc"), None),
        (dict(queries=q, k=0), "k must be"),
        (dict(queries=q, k=-1), None),
        (dict(queries=q, k=N + 1), rf"k={N + 1} exceeds the {N} points"),
        (dict(queries=q, k=K, ef=10**6), "ef must be at most"),
        (dict(queries=q, k=K, threads=-1), None),
        (dict(queries=q, filter={"cls": {"$bogus": 1}}), "filter"),
        (dict(queries=q, filter="{not json"), "filter"),
        (dict(queries=q, filter={"tags": ["a"]}), "use \\$in"),
        (dict(queries=q, filter='{"$or": []}'), "\\$or"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            col.search(**kw)
    with pytest.raises((ValueError, TypeError)):
        col.search(q, filter=5)


def test_bad_collections(db):
    with pytest.raises(ValueError, match="metric.*'hamming'"):
        db.create_collection("c", 4, metric="hamming")
    with pytest.raises(ValueError, match="only letters, digits"):
        db.create_collection("bad name!", 4)
    with pytest.raises(ValueError, match="1 to 128 bytes"):
        db.create_collection("", 4)
    with pytest.raises(ValueError, match="dimension must be 1 to"):
        db.create_collection("c", 0)
    with pytest.raises(ValueError):
        db.create_collection("c", 16385)
    assert db.list_collections() == []
    with pytest.raises(KeyError):
        db["nope"]
    with pytest.raises(KeyError):
        db.collection("nope")
    with pytest.raises(ValueError):
        db["bad name!"]


BAD_LAYOUTS = [
    (dict(shards=0), ValueError,
     r"shards must be 1 to 4096 \(None: the cluster's default\), got 0"),
    (dict(shards=-3), ValueError, "shards must be 1 to 4096"),
    (dict(shards=4097), ValueError, "shards must be 1 to 4096"),
    (dict(shards=2**70), ValueError, "shards must be 1 to 4096"),
    (dict(replicas=0), ValueError, r"replicas must be 1 to 5 \(None: 1\), got 0"),
    (dict(replicas=6), ValueError, r"replicas must be 1 to 5 .*got 6"),
    (dict(replicas=-1), ValueError, "replicas must be 1 to 5"),
    (dict(shards="2"), TypeError, "shards must be an integer or None, got str"),
    (dict(replicas=2.0), TypeError, "replicas must be an integer or None, got float"),
    (dict(replicas=True), TypeError, "replicas must be an integer or None, got bool"),
]


@pytest.mark.parametrize("kw,exc,msg", BAD_LAYOUTS)
def test_bad_layout_refused(db, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        db.create_collection("c", 4, **kw)
    assert db.list_collections() == []


def test_embedded_takes_one_shard_one_copy(db):
    """shards and replicas above 1 are the cluster's: an embedded database refuses them with the
    library's message and creates nothing; None and 1 are its layout."""
    for kw, got in ((dict(shards=2), "shards, got 2"), (dict(replicas=3), "replicas, got 3"),
                    (dict(shards=1, replicas=2), "replicas, got 2")):
        with pytest.raises(ValueError, match="shards and replicas apply to a cluster.*" + got):
            db.create_collection("c", 4, **kw)
    assert db.list_collections() == []
    with pytest.raises(TypeError):
        db.create_collection("c", 4, "l2", 1)  # keyword-only
    c = db.create_collection("c", 4, shards=1, replicas=np.int64(1))
    d = db.create_collection("d", 4, shards=None, replicas=None)
    assert (c.dim, d.dim) == (4, 4) and db.list_collections() == ["c", "d"]


def test_error_class():
    assert issubclass(omendb.Error, Exception)
    assert not issubclass(omendb.Error, (ValueError, KeyError))
    e = omendb.Error("x")
    assert isinstance(e, Exception)


def test_error_has_status_and_message(db):
    db.create_collection("dup", 2)
    with pytest.raises(omendb.Error) as e:
        db.create_collection("dup", 2)
    assert isinstance(e.value.status, int) and e.value.status == EEXIST
    assert "collection 'dup' already exists" in str(e.value)


# ---- threads ----

def test_threads_search_while_adding(col, data):
    """8 threads search (exact, then compared with precomputed results) while 2 threads add
    points far from every query, which therefore never enter the results."""
    x, _, q = data
    expect = col.search(q, k=K, exact=True)
    far = x[:100] + 1000.0
    errors = []

    def searcher(t):
        try:
            for r in range(6):
                sl = slice((t + r) % NQ, (t + r) % NQ + 8)
                ids, dists = col.search(q[sl], k=K, exact=True, threads=1)
                assert np.array_equal(ids, expect[0][sl])
                assert np.array_equal(dists, expect[1][sl])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def adder(t):
        try:
            for b in range(5):
                start = 10**6 * (t + 1) + 100 * b
                ids = np.arange(start, start + 100, dtype=np.uint64)
                assert np.array_equal(col.add(far, ids=ids), ids)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=searcher, args=(t,)) for t in range(8)]
    threads += [threading.Thread(target=adder, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(col) == N + 2 * 5 * 100
    vec, _, found = col.get(np.arange(10**6, 10**6 + 500, dtype=np.uint64))
    assert found.all() and np.array_equal(vec, np.tile(far, (5, 1)))


def test_search_releases_the_gil(db, data):
    """While one thread runs a long search, the main thread keeps running Python: its longest
    pause is a fraction of the search's time, not all of it."""
    x, _, _ = data
    c = db.create_collection("gil", DIM)
    c.add(x)
    q = np.tile(x[:500], (16, 1))
    t0 = time.perf_counter()
    c.search(q, k=K, exact=True, threads=1)
    single = time.perf_counter() - t0
    done = threading.Event()

    def work():
        c.search(q, k=K, exact=True, threads=1)
        done.set()

    th = threading.Thread(target=work)
    last, gap = time.perf_counter(), 0.0
    th.start()
    while not done.is_set():
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    th.join()
    assert gap < max(0.5 * single, 0.02), f"main thread paused {gap:.3f} s of {single:.3f} s"


# ---- remote: a cluster of two shard nodes ----

def run(*args, check=True, timeout=120):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not os.access(NODE, os.X_OK):
        pytest.skip(f"no omendb-node at {NODE} (build it, or set OMEN_NODE)")
    d = tmp_path_factory.mktemp("pycluster") / "nodes"
    url = run(CLUSTER, "up", "2", "--dir", d).stdout.strip()
    assert url.startswith("tcp://127.0.0.1:")
    yield {"url": url, "dir": d}
    run(CLUSTER, "down", "--dir", d, check=False)
    for log in d.glob("*.log"):
        text = log.read_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in text, f"{log.name}:\n{text[-4000:]}"


@pytest.fixture
def rdb(cluster):
    d = omendb.connect(cluster["url"], timeout_ms=20000)
    yield d
    d.close()


def remote_collection(rdb, name, data, metric="l2"):
    x, cls, _ = data
    if name in rdb:
        rdb.drop_collection(name)
    c = rdb.create_collection(name, DIM, metric=metric)
    meta = [{"cls": int(cls[i]), "tag": f"p{i}"} for i in range(N)]
    assert np.array_equal(c.add(x, metadata=meta), np.arange(N, dtype=np.uint64))
    return c


def test_remote_round_trip(rdb, data):
    x, cls, _ = data
    assert rdb.remote is True
    c = remote_collection(rdb, "rt", data)
    assert "rt" in rdb and "rt" in rdb.list_collections()
    assert (c.name, c.dim, c.metric) == ("rt", DIM, "l2")
    assert len(c) == c.count() == N
    vec, meta, found = c.get([0, 17, N - 1, N + 5])
    assert found.tolist() == [True, True, True, False]
    assert np.array_equal(vec[:3], x[[0, 17, N - 1]]) and not vec[3].any()
    assert meta[:3] == [{"cls": int(cls[i]), "tag": f"p{i}"} for i in (0, 17, N - 1)]
    assert meta[3] is None
    ids = c.add(x[:2] + 5, ids=[10**9, 10**9 + 1], metadata=[{"new": True}, None])
    assert ids.tolist() == [10**9, 10**9 + 1]
    assert c.get(ids)[1] == [{"new": True}, None]
    st = c.stats()
    assert st["points"] == N + 2 and st["dim"] == DIM
    assert isinstance(rdb.stats(), dict)


def test_ids_listed(col, rdb, data):
    """ids(): every live id once, ascending, in pages from any start; embedded and through a
    cluster (merged from the shards)."""
    gone = np.arange(0, N, 7, dtype=np.uint64)
    for c in (col, remote_collection(rdb, "ids", data)):
        c.delete(gone)
        c.add(np.zeros((2, DIM), np.float32), ids=[2**40, 2**63])
        want = sorted(set(range(N)) - set(gone.tolist())) + [2**40, 2**63]
        got = c.ids()
        assert got.dtype == np.uint64 and got.tolist() == want
        assert c.ids(start=N // 2, limit=5).tolist() == [i for i in want if i >= N // 2][:5]
        assert c.ids(start=2**40 + 1).tolist() == [2**63]
        assert c.ids(limit=0).tolist() == []
        with pytest.raises((OverflowError, ValueError)):
            c.ids(start=-1)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_remote_search_equals_embedded(rdb, db, data, metric):
    x, cls, q = data
    r = remote_collection(rdb, "se_" + metric, data, metric)
    e = db.create_collection("se", DIM, metric=metric)
    e.add(x, metadata=[{"cls": int(cls[i]), "tag": f"p{i}"} for i in range(N)])
    for kw in (dict(), dict(filter={"cls": {"$in": [2, 5]}}), dict(filter='{"tag": "p3"}')):
        ri, rd = r.search(q, k=K, exact=True, **kw)
        ei, ed = e.search(q, k=K, exact=True, **kw)
        assert np.array_equal(ri, ei)
        np.testing.assert_allclose(rd, ed, rtol=1e-6, atol=1e-6)
    ri, rd = r.search(q[0], k=K, exact=True)
    assert ri.shape == (K,) and np.array_equal(ri, e.search(q[0], k=K, exact=True)[0])


def test_empty_batch_info(rdb, db, data):
    """A search of no queries answers empty arrays, and its info comes from the library that
    holds the collection: the path an embedded search would take, "cluster" on a remote one."""
    x, cls, q = data
    e = db.create_collection("empty", DIM)
    e.add(x)
    ids, dists, info = e.search(q[:0], k=K, return_info=True)
    assert ids.shape == (0, K) and dists.shape == (0, K)
    assert info == {"path": "cpu-exact", "shards_answered": 1, "shards_total": 1,
                    "vectors_read": 0}
    r = remote_collection(rdb, "empty", data)
    ids, dists, info = r.search(q[:0], k=K, return_info=True)
    assert ids.shape == (0, K)
    assert info["path"] == "cluster" and info["shards_answered"] == 0
    with pytest.raises(ValueError):
        r.search(np.zeros((0, DIM + 1), dtype=np.float32), k=K)


def test_remote_shards(rdb, data):
    """shards= reaches the coordinator: a search covers exactly that many logical shards. Bad
    values are refused before anything is sent."""
    x, _, q = data
    if "three" in rdb:
        rdb.drop_collection("three")
    c = rdb.create_collection("three", DIM, shards=3)
    c.add(x[:100])
    _, _, info = c.search(q[:2], k=K, exact=True, return_info=True)
    assert info["shards_total"] == info["shards_answered"] == 3
    for kw, exc, msg in BAD_LAYOUTS:
        with pytest.raises(exc, match=msg):
            rdb.create_collection("never", DIM, **kw)
    assert "never" not in rdb


def test_remote_delete_and_index(rdb, data):
    _, _, q = data
    c = remote_collection(rdb, "del", data)
    ids, _ = c.search(q[0], k=3, exact=True)
    assert c.delete(ids[:2]) == 2
    assert c.get(ids)[2].tolist() == [False, False, True]
    assert len(c) == N - 2
    after, _ = c.search(q[0], k=K, exact=True)
    assert ids[0] not in after and after[0] == ids[2]
    c.build_index("hnsw", ef_construction=100)
    st = c.stats()
    assert st["index"] == "hnsw" and st["indexed"] >= st["points"]
    ok, report = c.check()
    assert ok is True and "shard" in report


def test_remote_ivf(rdb, data):
    """IVF through the cluster: each of the 8 logical shards builds its own index over its own
    points (10,000 Fashion-MNIST images, about 1,250 a shard). Recall at the default nprobe
    against exact search through the same cluster; nprobe reaches every shard; bad values
    raise ValueError; a build on shards of fewer than 1,000 points names them."""
    x, q = fashion(10_000, NQ)
    if "ivf" in rdb:
        rdb.drop_collection("ivf")
    c = rdb.create_collection("ivf", x.shape[1])
    c.add(x)
    exact, _ = c.search(q, k=K, exact=True)
    c.build_index("ivf")
    st = c.stats()
    assert st["index"] == "ivf" and st["indexed"] == 10_000 and st["ivf_bits"] == 1
    nlist = st["ivf_nlist"]
    assert 1 <= st["ivf_nprobe"] <= nlist
    approx, dists, info = c.search(q, k=K, return_info=True)
    assert recall(approx, exact) >= 0.95, recall(approx, exact)
    assert (dists[:, 1:] >= dists[:, :-1]).all()
    assert info == {"path": "cluster", "shards_answered": 8, "shards_total": 8,
                    "vectors_read": 0}
    # the smallest shard's lists: every shard accepts it, and probes them all
    every, _ = c.search(q, k=K, nprobe=nlist)
    one, _ = c.search(q, k=K, nprobe=1)
    assert recall(one, exact) < recall(every, exact)
    with pytest.raises(ValueError, match=r"shard \d+ \(tcp://[^)]+\): nprobe 65536 exceeds"):
        c.search(q, k=K, nprobe=65536)  # more than any shard's lists
    with pytest.raises(ValueError, match="nprobe 65537 exceeds the most lists"):
        c.search(q, k=K, nprobe=65537)  # more than any index has: refused by the client
    with pytest.raises(ValueError, match="bits must be 1 to 4, got 0"):
        c.build_index("ivf", bits=0)
    with pytest.raises(ValueError, match=r"nlist 2000 exceeds the live points"):
        c.build_index("ivf", nlist=2000)
    assert c.stats()["ivf_nlist"] == nlist  # the index as it was
    few = remote_collection(rdb, "few", data)  # 2,000 points: about 250 a shard
    with pytest.raises(ValueError,
                       match=r"shard \d+ \(tcp://[^)]+\): collection 'few': an IVF index "
                             r"needs at least 1000 live points"):
        few.build_index("ivf")
    assert few.stats()["index"] == "flat"


@pytest.mark.parametrize("what,kw,exc,msg", BAD_ADDS, ids=[b[0] for b in BAD_ADDS])
def test_remote_bad_add(rdb, what, kw, exc, msg):
    if "small" in rdb:
        rdb.drop_collection("small")
    c = rdb.create_collection("small", DIM)
    c.add(np.ones((10, DIM)))
    with pytest.raises(exc, match=msg) as e:
        c.add(**kw)
    assert not isinstance(e.value, omendb.Error)
    assert len(c) == 10 and c.stats()["next_id"] == 10
    c.close()


def test_remote_errors(rdb, data, cluster):
    x, _, q = data
    c = remote_collection(rdb, "err", data)
    with pytest.raises(ValueError, match="dimension 32 expected, got 31"):
        c.search(q[:, :-1])
    with pytest.raises(ValueError, match=rf"k={N + 1} exceeds the {N} points"):
        c.search(q, k=N + 1)
    with pytest.raises(ValueError, match="filter"):
        c.search(q, filter={"cls": {"$bogus": 1}})
    with pytest.raises(KeyError):
        rdb["nope"]
    with pytest.raises(omendb.Error) as e:
        rdb.create_collection("err", DIM)
    assert e.value.status == EEXIST
    with pytest.raises(ValueError, match="metric.*'hamming'"):
        rdb.create_collection("m", 4, metric="hamming")
    with pytest.raises(ValueError):
        omendb.connect("http://127.0.0.1:1")
    with omendb.connect("tcp://127.0.0.1:1", timeout_ms=300) as dead:
        with pytest.raises(omendb.Error) as e:
            dead.list_collections()
        assert e.value.status == EUNAVAIL
    c.close()
    with pytest.raises(ValueError):
        c.search(q)


def test_remote_killed_shard_then_partial(rdb, data, cluster):
    x, _, q = data
    c = remote_collection(rdb, "kill", data)
    full_i, full_d = c.search(q, k=K, exact=True)
    run(CLUSTER, "kill", "shard1", "--dir", cluster["dir"])
    try:
        with pytest.raises(omendb.Error) as e:
            c.search(q, k=K, exact=True)
        assert e.value.status == EUNAVAIL and "shard" in str(e.value)
        pi, pd = c.search(q, k=K, exact=True, partial=True)
        assert pi.shape == (NQ, K)
        # shard1 holds 4 of the 8 logical shards: about half of the points answer.
        live = pi[pi != NO_ID]
        assert 0 < live.size
        for r in range(NQ):
            row = pd[r][np.isfinite(pd[r])]
            assert np.all(np.diff(row) >= 0)
            kept = [i for i in pi[r].tolist() if i in set(full_i[r].tolist())]
            assert kept == [i for i in full_i[r].tolist() if i in set(kept)]
            # every partial result is a true result: its distance is the true one
            for i, d in zip(pi[r].tolist(), pd[r].tolist()):
                if i != NO_ID:
                    assert d == pytest.approx(float(((x[i] - q[r]) ** 2).sum()), rel=1e-4)
    finally:
        run(CLUSTER, "start", "shard1", "--dir", cluster["dir"])
    ai, ad = c.search(q, k=K, exact=True)
    assert np.array_equal(ai, full_i) and np.array_equal(ad, full_d)
