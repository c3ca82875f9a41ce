"""HTTP/JSON endpoint of the coordinator (docs/HTTP.md), tested against a real local cluster.

Two clusters are started with ops/cluster: a plain one (one coordinator, two shard nodes) and a
secure one (token required, a 64 KiB message cap). The node program is $OMEN_NODE (ops/cluster
falls back to build/omendb-node); $OMEN_CLUSTER_CMD overrides the cluster script; $WIRE_CALL
(tests/tools/wire_call) plays a shard move's fence by hand. Only the Python standard library is
used.
"""
import http.client
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.environ.get("OMEN_CLUSTER_CMD") or os.path.join(ROOT, "ops", "cluster")
TOKEN = "t0ps3cret-token"
SECURE_MAX = 65536
SHARDS = 2
WIRE_CALL = os.environ.get("WIRE_CALL") or os.path.join(ROOT, "build", "tests", "wire_call")
FENCE_RELEASE, FENCE_TRACK, FENCE_FREEZE = 0, 1, 2  # wire_fence_mode (wire/wire.h)

# OMEN status code names and numbers (include/omendb/omendb.h) and their HTTP statuses.
CODES = {"EINVAL": 1, "ENOTFOUND": 2, "EEXIST": 3, "ENOMEM": 4, "EIO": 5, "ECORRUPT": 6,
         "ENOTDB": 7, "EVERSION": 8, "EFULL": 9, "EBUSY": 10, "ENOTSUP": 11, "EPROTO": 12,
         "ELIMIT": 13, "EUNAVAIL": 14, "EAUTH": 15, "ESTALE": 16}


# ---- Cluster and client helpers ------------------------------------------------------------

class Cluster:
    def __init__(self, token=None, max_message=0):
        self.dir = tempfile.mkdtemp(prefix="omen-http-")
        self.token = token
        cmd = [CLUSTER, "up", str(SHARDS), "--dir", self.dir]
        if token:
            cmd += ["--token", token]
        if max_message:
            cmd += ["--max-message", str(max_message)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ)
        if r.returncode != 0:
            self.down()
            pytest.fail(f"ops/cluster up failed ({r.returncode}): {r.stderr}")
        assert r.stdout.strip().startswith("tcp://127.0.0.1:"), r.stdout
        self.url = self._http_url()
        self._wait_healthy()

    def _http_url(self):
        out = subprocess.run([CLUSTER, "status", "--dir", self.dir], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        for line in out.splitlines():
            if line.startswith("coordinator "):
                return next(w for w in line.split() if w.startswith("http://"))
        pytest.fail("no coordinator in ops/cluster status:\n" + out)

    def _wait_healthy(self, seconds=30):
        deadline = time.time() + seconds
        last = None
        while time.time() < deadline:
            try:
                last = call(self, "GET", "/health", token=self.token)
                if last[0] == 200 and last[2].get("shards_up") == SHARDS:
                    return
            except OSError as e:
                last = e
            time.sleep(0.1)
        self.down()
        pytest.fail(f"cluster not healthy after {seconds} s: {last}")

    def down(self):
        subprocess.run([CLUSTER, "down", "--dir", self.dir], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def call(cluster, method, path, body=None, token=None, raw=None, headers=None):
    """One request. Returns (HTTP status, headers, decoded JSON or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json"}
    if token is None:
        token = cluster.token
    if token:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    req = urllib.request.Request(cluster.url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, h, text = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, h, text = e.code, e.headers, e.read()
    ctype = h.get("Content-Type", "")
    return status, h, json.loads(text) if ctype.startswith("application/json") else text.decode()


def expect_error(resp, http_status, code, message=None):
    """Checks an error response: HTTP status, JSON content type, and the error object."""
    status, headers, body = resp
    assert status == http_status, resp
    assert headers["Content-Type"].startswith("application/json"), headers
    err = body["error"]
    assert err["code"] == code, body
    assert err["status"] == CODES[code], body
    assert isinstance(err["message"], str) and err["message"], body
    if message:
        assert message in err["message"], body
    return err["message"]


def new_collection(cluster, dim=4, metric=None):
    name = "c_" + uuid.uuid4().hex[:12]
    body = {"name": name, "dim": dim}
    if metric:
        body["metric"] = metric
    status, _, out = call(cluster, "POST", "/collections", body)
    assert status == 201, out
    return name


def upsert(cluster, name, vectors, ids=None, metadata=None):
    body = {"vectors": vectors}
    if ids is not None:
        body["ids"] = ids
    if metadata is not None:
        body["metadata"] = metadata
    status, _, out = call(cluster, "POST", f"/collections/{name}/upsert", body)
    assert status == 200, out
    return out["ids"]


def search(cluster, name, **body):
    status, _, out = call(cluster, "POST", f"/collections/{name}/search", body)
    assert status == 200, out
    return out


def points(cluster, name):
    status, _, out = call(cluster, "GET", f"/collections/{name}")
    assert status == 200, out
    return out["points"]


def grid(n, dim=4):
    """n distinct vectors: point i is (i, i/2, -i, 1)[:dim] padded."""
    return [[float(i), i / 2.0, -float(i), 1.0][:dim] + [0.0] * max(0, dim - 4)
            for i in range(n)]


@pytest.fixture(scope="module")
def plain():
    c = Cluster()
    yield c
    c.down()


@pytest.fixture(scope="module")
def secure():
    c = Cluster(token=TOKEN, max_message=SECURE_MAX)
    yield c
    c.down()


# ---- Health, collections ---------------------------------------------------------------------

def test_health(plain):
    status, headers, body = call(plain, "GET", "/health")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body == {"status": "ok", "shards_up": SHARDS}


def test_collection_lifecycle(plain):
    name = "life_" + uuid.uuid4().hex[:8]
    status, _, body = call(plain, "POST", "/collections",
                           {"name": name, "dim": 3, "metric": "ip", "shards": 3, "replicas": 1})
    assert status == 201 and body["name"] == name and body["dim"] == 3, body
    assert name in call(plain, "GET", "/collections")[2]["collections"]
    status, _, stats = call(plain, "GET", f"/collections/{name}")
    assert status == 200
    assert stats["name"] == name and stats["dim"] == 3 and stats["metric"] == "ip"
    assert stats["points"] == 0
    expect_error(call(plain, "POST", "/collections", {"name": name, "dim": 3}), 409, "EEXIST")
    status, _, body = call(plain, "DELETE", f"/collections/{name}")
    assert status == 200, body
    assert name not in call(plain, "GET", "/collections")[2]["collections"]
    expect_error(call(plain, "GET", f"/collections/{name}"), 404, "ENOTFOUND")
    expect_error(call(plain, "DELETE", f"/collections/{name}"), 404, "ENOTFOUND")


def test_create_defaults_to_l2(plain):
    name = new_collection(plain, dim=2)
    assert call(plain, "GET", f"/collections/{name}")[2]["metric"] == "l2"


@pytest.mark.parametrize("body,message", [
    ({"dim": 4}, "'name'"),
    ({"name": "x1"}, "'dim'"),
    ({"name": "x2", "dim": 0}, "'dim'"),
    ({"name": "x3", "dim": 16385}, "'dim'"),
    ({"name": "x4", "dim": "4"}, "'dim'"),
    ({"name": "x5", "dim": 4.5}, "'dim'"),
    ({"name": "x6", "dim": 4, "metric": "euclid"}, "'metric'"),
    ({"name": "x7", "dim": 4, "metric": 2}, "'metric'"),
    ({"name": "bad name", "dim": 4}, "collection name"),
    ({"name": "", "dim": 4}, "collection name"),
    ({"name": "x" * 129, "dim": 4}, "collection name"),
    ({"name": "x8", "dim": 4, "shards": -1}, "'shards'"),
    ({"name": "x8a", "dim": 4, "shards": 4097}, "'shards' must be in 0..4096, got 4097"),
    ({"name": "x8b", "dim": 4, "shards": "4"}, "'shards' must be an integer"),
    ({"name": "r0", "dim": 4, "replicas": 0}, "'replicas' must be in 1..5, got 0"),
    ({"name": "r6", "dim": 4, "replicas": 6}, "'replicas' must be in 1..5, got 6"),
    ({"name": "r7", "dim": 4, "replicas": -1}, "'replicas' must be in 1..5, got -1"),
    ({"name": "r8", "dim": 4, "replicas": "2"}, "'replicas' must be an integer"),
    ({"name": "r9", "dim": 4, "replicas": 2.5}, "'replicas' must be an integer"),
    ({"name": "x9", "dim": 4, "dims": 4}, "unknown field 'dims'"),
])
def test_create_rejects_bad_input(plain, body, message):
    expect_error(call(plain, "POST", "/collections", body), 400, "EINVAL", message)
    names = call(plain, "GET", "/collections")[2]["collections"]
    assert body.get("name") not in names


def test_collection_name_in_path_is_checked(plain):
    expect_error(call(plain, "GET", "/collections/bad%20name"), 400, "EINVAL", "collection name")
    expect_error(call(plain, "POST", "/collections/" + "y" * 129 + "/search",
                      {"vector": [1.0]}), 400, "EINVAL")


# ---- Points -----------------------------------------------------------------------------------

def test_upsert_then_search_finds_the_point(plain):
    name = new_collection(plain)
    vecs = grid(20)
    ids = upsert(plain, name, vecs, ids=list(range(100, 120)))
    assert ids == list(range(100, 120))
    assert points(plain, name) == 20
    out = search(plain, name, vector=vecs[7], k=3)
    assert out["results"][0][0] == {"id": 107, "distance": 0}
    assert len(out["results"][0]) == 3
    assert out["coverage"]["answered"] == out["coverage"]["total"] >= 1


def test_upsert_assigns_ids(plain):
    name = new_collection(plain)
    ids = upsert(plain, name, grid(5))
    assert len(ids) == 5 and len(set(ids)) == 5
    assert all(isinstance(i, int) and i >= 0 for i in ids)
    got = call(plain, "POST", f"/collections/{name}/get", {"ids": ids})[2]["points"]
    assert [p["vector"] for p in got] == grid(5)


def test_upsert_replaces(plain):
    name = new_collection(plain)
    upsert(plain, name, [[1, 1, 1, 1]], ids=[5])
    upsert(plain, name, [[2, 2, 2, 2]], ids=[5])
    assert points(plain, name) == 1
    got = call(plain, "POST", f"/collections/{name}/get", {"ids": [5]})[2]["points"]
    assert got[0]["vector"] == [2, 2, 2, 2]


def test_search_vector_and_vectors_agree(plain):
    name = new_collection(plain)
    vecs = grid(30)
    upsert(plain, name, vecs)
    queries = [[0.3, 0.1, -0.2, 1.0], [10.2, 5.0, -9.9, 1.0], [29.0, 14.5, -29.0, 1.0]]
    batch = search(plain, name, vectors=queries, k=5)["results"]
    assert len(batch) == 3
    for q, rows in zip(queries, batch):
        assert search(plain, name, vector=q, k=5)["results"] == [rows]
        assert len(rows) == 5
        dists = [r["distance"] for r in rows]
        assert dists == sorted(dists)


def test_search_default_k_and_exact(plain):
    name = new_collection(plain)
    upsert(plain, name, grid(25))
    assert len(search(plain, name, vector=[0, 0, 0, 1])["results"][0]) == 10
    exact = search(plain, name, vector=[3, 1.5, -3, 1], k=4, exact=True, ef=50)
    assert [r["distance"] for r in exact["results"][0]][0] == 0


def test_search_distance_is_squared_l2(plain):
    name = new_collection(plain)
    upsert(plain, name, [[1, 2, 3, 4]], ids=[1])
    row = search(plain, name, vector=[0, 0, 0, 0], k=1)["results"][0]
    assert row == [{"id": 1, "distance": 30}]


def test_search_filter_drops_padding(plain):
    name = new_collection(plain)
    vecs = grid(10)
    meta = [{"tag": "even" if i % 2 == 0 else "odd", "i": i} for i in range(10)]
    upsert(plain, name, vecs, ids=list(range(10)), metadata=meta)
    rows = search(plain, name, vector=vecs[0], k=10, filter={"tag": "odd"})["results"][0]
    assert sorted(r["id"] for r in rows) == [1, 3, 5, 7, 9]
    rows = search(plain, name, vector=vecs[0], k=3, filter={"i": {"$gte": 8}})["results"][0]
    assert [r["id"] for r in rows] == [8, 9]  # fewer than k match: no padding entries
    rows = search(plain, name, vector=vecs[0], k=3, filter={"tag": "none"})["results"][0]
    assert rows == []


def test_get_returns_vectors_metadata_and_nulls(plain):
    name = new_collection(plain)
    meta = [{"title": "Caf\u00e9", "year": 2021, "ok": True}, None]
    upsert(plain, name, [[1, 2, 3, 4], [0.5, -0.25, 1e-3, 7]], ids=[1, 2], metadata=meta)
    status, _, body = call(plain, "POST", f"/collections/{name}/get", {"ids": [2, 99, 1]})
    assert status == 200
    p2, missing, p1 = body["points"]
    assert missing is None
    assert p1 == {"id": 1, "vector": [1, 2, 3, 4], "metadata": meta[0]}
    assert p2["id"] == 2 and p2["metadata"] is None
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(p2["vector"], [0.5, -0.25, 1e-3, 7]))


def test_delete_then_not_found(plain):
    name = new_collection(plain)
    vecs = grid(6)
    upsert(plain, name, vecs, ids=[10, 11, 12, 13, 14, 15])
    status, _, body = call(plain, "POST", f"/collections/{name}/delete", {"ids": [12, 13, 77]})
    assert status == 200 and body == {"deleted": 2}
    got = call(plain, "POST", f"/collections/{name}/get", {"ids": [12, 13, 14]})[2]["points"]
    assert got[0] is None and got[1] is None and got[2]["id"] == 14
    ids = [r["id"] for r in search(plain, name, vector=vecs[2], k=4)["results"][0]]
    assert 12 not in ids and 13 not in ids
    assert points(plain, name) == 4


def test_points_routes_on_missing_collection(plain):
    for action, body in [("upsert", {"vectors": [[1.0]]}), ("search", {"vector": [1.0]}),
                         ("get", {"ids": [1]}), ("delete", {"ids": [1]})]:
        expect_error(call(plain, "POST", f"/collections/nope_{action}/{action}", body),
                     404, "ENOTFOUND")


# ---- Bad input: 400 with a precise message, nothing written -----------------------------------

BAD_UPSERTS = [
    ({"vectors": [[1, "x", 3, 4]]}, "vectors[0][1] is not a number"),
    ({"vectors": [[1, 2, 3, 4], [1, True, 3, 4]]}, "vectors[1][1] is not a number"),
    ({"vectors": [[1, 2, 3, 4], [1, None, 3, 4]]}, "vectors[1][1] is not a number"),
    ({"vectors": [[1, 2, 3, 4], [1, 2, 3]]}, "vectors[1] has 3 numbers"),
    ({"vectors": [[1, 2, 3, 4], 5]}, "vectors[1]"),
    ({"vectors": [[1, 2, 3, 1e39]]}, "float32"),
    ({"vectors": []}, "'vectors'"),
    ({"vectors": [[]]}, "vectors[0]"),
    ({"vectors": [1, 2, 3, 4]}, "vectors[0]"),
    ({}, "'vectors'"),
    ({"vectors": [[1, 2, 3, 4]], "ids": [-1]}, "ids[0] must be a non-negative integer"),
    ({"vectors": [[1, 2, 3, 4]], "ids": [1.5]}, "ids[0] must be a non-negative integer"),
    ({"vectors": [[1, 2, 3, 4]], "ids": ["1"]}, "ids[0] must be a non-negative integer"),
    ({"vectors": [[1, 2, 3, 4]], "ids": [1, 2]}, "'ids' has 2 entries"),
    ({"vectors": [[1, 2, 3, 4]] * 2, "ids": [3, 3]}, "'ids': id 3 appears twice"),
    ({"vectors": [[1, 2, 3, 4]], "ids": 1}, "'ids'"),
    ({"vectors": [[1, 2, 3, 4]], "metadata": [1]}, "metadata[0]"),
    ({"vectors": [[1, 2, 3, 4]], "metadata": [{}, {}]}, "'metadata'"),
    ({"vectors": [[1, 2, 3, 4]], "metadata": [{"a": [1]}]}, "metadata[0]: metadata key 'a'"),
    ({"vectors": [[1, 2, 3, 4]], "metadata": [{"a": None}]}, "metadata[0]: metadata key 'a'"),
    ({"vectors": [[1, 2, 3, 4]], "metadata": [{"$a": 1}]}, "metadata[0]"),
    ({"vectors": [[1, 2, 3, 4]], "vector": [1, 2, 3, 4]}, "unknown field 'vector'"),
    ({"vectors": [[1, 2, 3]]}, None),  # wrong dimension: refused by the collection
]


@pytest.mark.parametrize("body,message", BAD_UPSERTS)
def test_upsert_rejects_bad_input(plain, body, message):
    name = new_collection(plain)
    upsert(plain, name, [[9, 9, 9, 9]], ids=[1000])
    expect_error(call(plain, "POST", f"/collections/{name}/upsert", body), 400, "EINVAL", message)
    assert points(plain, name) == 1
    got = call(plain, "POST", f"/collections/{name}/get", {"ids": [1000, 0, 1, 2, 3]})
    assert got[2]["points"][0]["vector"] == [9, 9, 9, 9]
    assert got[2]["points"][1:] == [None] * 4


@pytest.mark.parametrize("raw,message", [
    (b'{"vectors": [[1, 2, 3, 4]', "malformed JSON"),
    (b'{"vectors": [[NaN, 2, 3, 4]]}', "malformed JSON"),
    (b'{"vectors": [[Infinity, 2, 3, 4]]}', "malformed JSON"),
    (b'{"vectors": [[1, 2, 3, 4]], "vectors": [[1, 2, 3, 4]]}', "malformed JSON"),
    (b'[[1, 2, 3, 4]]', "JSON object"),
    (b'', "malformed JSON"),
    (b'\xff\xfe', "malformed JSON"),
    (b'{"vectors": [[1, 2, 3, 4]], "ids": [99999999999999999999]}', "malformed JSON"),
])
def test_malformed_json_is_400(plain, raw, message):
    name = new_collection(plain)
    expect_error(call(plain, "POST", f"/collections/{name}/upsert", raw=raw), 400, "EINVAL",
                 message)
    assert points(plain, name) == 0


@pytest.mark.parametrize("body,message", [
    ({"vector": [1, 2, 3, 4], "vectors": [[1, 2, 3, 4]]}, "exactly one"),
    ({}, "exactly one"),
    ({"vector": [1, "2", 3, 4]}, "vector[1] is not a number"),
    ({"vector": [[1, 2, 3, 4]]}, "vector[0] is not a number"),
    ({"vectors": [[1, 2, 3, 4], [1, 2]]}, "vectors[1] has 2 numbers"),
    ({"vector": [1, 2, 3, 4], "k": 0}, "'k'"),
    ({"vector": [1, 2, 3, 4], "k": 16385}, "'k'"),
    ({"vector": [1, 2, 3, 4], "k": "3"}, "'k'"),
    ({"vector": [1, 2, 3, 4], "ef": -1}, "'ef'"),
    ({"vector": [1, 2, 3, 4], "exact": 1}, "'exact'"),
    ({"vector": [1, 2, 3, 4], "partial": "yes"}, "'partial'"),
    ({"vector": [1, 2, 3, 4], "filter": "tag = 1"}, "'filter'"),
    ({"vector": [1, 2, 3, 4], "filter": {"tag": {"$regex": "x"}}}, None),
    ({"vector": [1, 2, 3, 4], "topk": 3}, "unknown field 'topk'"),
    ({"vector": [1, 2, 3]}, None),  # wrong dimension
])
def test_search_rejects_bad_input(plain, body, message):
    name = new_collection(plain)
    upsert(plain, name, grid(3))
    expect_error(call(plain, "POST", f"/collections/{name}/search", body), 400, "EINVAL", message)


@pytest.mark.parametrize("action", ["get", "delete"])
@pytest.mark.parametrize("body,message", [
    ({}, "'ids'"),
    ({"ids": [-5]}, "ids[0] must be a non-negative integer"),
    ({"ids": [1, 2.5]}, "ids[1] must be a non-negative integer"),
    ({"ids": "1"}, "'ids'"),
    ({"ids": [1], "id": 1}, "unknown field 'id'"),
])
def test_get_delete_reject_bad_input(plain, action, body, message):
    name = new_collection(plain)
    upsert(plain, name, grid(2), ids=[1, 2])
    expect_error(call(plain, "POST", f"/collections/{name}/{action}", body), 400, "EINVAL",
                 message)
    assert points(plain, name) == 2


def test_empty_id_lists(plain):
    name = new_collection(plain)
    assert call(plain, "POST", f"/collections/{name}/get", {"ids": []})[2] == {"points": []}
    assert call(plain, "POST", f"/collections/{name}/delete", {"ids": []})[2] == {"deleted": 0}


# ---- Index builds: POST /collections/NAME/build, search's nprobe ---------------------------

def mixture(n, dim, seed):
    """n points of a Gaussian mixture (16 centres spread 10 apart per dimension, unit noise),
    from the standard library's generator."""
    import random
    rnd = random.Random(seed)
    centres = [[rnd.gauss(0, 10) for _ in range(dim)] for _ in range(16)]
    return [[c + rnd.gauss(0, 1) for c in rnd.choice(centres)] for _ in range(n)]


def ivf_collection(cluster, n, shards=2, dim=8):
    name = "ivf_" + uuid.uuid4().hex[:8]
    status, _, out = call(cluster, "POST", "/collections",
                          {"name": name, "dim": dim, "shards": shards})
    assert status == 201, out
    vecs = mixture(n, dim, n)
    for at in range(0, n, 2000):
        upsert(cluster, name, vecs[at:at + 2000], ids=list(range(at, min(n, at + 2000))))
    return name, vecs


def build(cluster, name, **body):
    return call(cluster, "POST", f"/collections/{name}/build", body)


def test_build_ivf_and_search_with_nprobe(plain):
    """IVF on both logical shards (3,000 points, about 1,500 a shard) with the parameters of the
    body; the statistics show them; nprobe reaches the shards; bad values are 400 and change
    nothing."""
    name, vecs = ivf_collection(plain, 3000)
    status, _, out = build(plain, name, type="ivf", nlist=16, bits=1)
    assert status == 200 and out == {"built": name, "type": "ivf"}, out
    st = call(plain, "GET", f"/collections/{name}")[2]
    assert (st["index"], st["indexed"], st["ivf_nlist"], st["ivf_bits"]) == ("ivf", 3000, 16, 1)
    assert 1 <= st["ivf_nprobe"] <= 16
    assert (st["hnsw_m"], st["hnsw_ef_construction"], st["hnsw_int8"]) == (0, 0, False)
    queries = [[x + 0.05 for x in vecs[i]] for i in range(0, 3000, 150)]
    exact = search(plain, name, vectors=queries, k=10, exact=True)["results"]
    every = search(plain, name, vectors=queries, k=10, nprobe=16)["results"]
    hits = sum(len({r["id"] for r in e} & {r["id"] for r in a}) for e, a in zip(exact, every))
    assert hits >= 0.99 * 10 * len(queries)
    assert len(search(plain, name, vectors=queries, k=10)["results"]) == len(queries)
    path = f"/collections/{name}/search"
    expect_error(call(plain, "POST", path, {"vector": queries[0], "nprobe": 17}), 400, "EINVAL",
                 "nprobe 17 exceeds the index's 16 lists")
    for bad in (-1, 0, 65537, "4"):
        expect_error(call(plain, "POST", path, {"vector": queries[0], "nprobe": bad}), 400,
                     "EINVAL", "'nprobe'")
    for body, message in [({"type": "ivf", "nlist": 2000}, "no shard was changed"),
                          ({"type": "ivf", "nlist": 65537}, "'nlist'"),
                          ({"type": "ivf", "nlist": -1}, "'nlist'"),
                          ({"type": "ivf", "nlist": 0}, "'nlist'"),
                          ({"type": "ivf", "bits": 5}, "'bits'"),
                          ({"type": "ivf", "bits": 0}, "'bits'"),
                          ({"type": "ivf", "ram_budget": -1}, "'ram_budget'"),
                          ({"type": "btree"}, "'type'"),
                          ({"type": "hnsw", "m": 2}, "'m'"),
                          ({"type": "ivf", "nprobe": 4}, "unknown field 'nprobe'")]:
        expect_error(build(plain, name, **body), 400, "EINVAL", message)
    assert call(plain, "GET", f"/collections/{name}")[2] == st
    expect_error(build(plain, "nope_" + uuid.uuid4().hex[:6], type="ivf"), 404, "ENOTFOUND")


def test_build_ivf_on_too_few_points_changes_nothing(plain):
    """1,500 points on 2 logical shards: neither has the 1,000 an IVF index needs; both are
    named, and the HNSW index they have stays."""
    name, _ = ivf_collection(plain, 1500)
    status, _, out = build(plain, name, type="hnsw", m=8, ef_construction=40)
    assert status == 200 and out["type"] == "hnsw", out
    before = call(plain, "GET", f"/collections/{name}")[2]
    message = expect_error(build(plain, name, type="ivf"), 400, "EINVAL", "no shard was changed")
    assert message.count("an IVF index needs at least 1000 live points") == 2, message
    assert call(plain, "GET", f"/collections/{name}")[2] == before
    status, _, out = build(plain, name, type="flat")
    assert status == 200 and call(plain, "GET", f"/collections/{name}")[2]["index"] == "flat"


# ---- Routing, methods, limits -----------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/nope"), ("POST", "/nope"), ("GET", "/collectionsx"),
    ("POST", "/collections/abc/bogus"), ("GET", "/collections/abc/search/more"),
    ("GET", "/health/x"),
])
def test_unknown_route_is_404_json(plain, method, path):
    expect_error(call(plain, method, path), 404, "ENOTFOUND", "no route")


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/health", "GET"),
    ("POST", "/metrics", "GET"),
    ("DELETE", "/collections", "GET, POST"),
    ("POST", "/collections/abc", "GET, DELETE"),
    ("GET", "/collections/abc/search", "POST"),
    ("DELETE", "/collections/abc/upsert", "POST"),
    ("GET", "/collections/abc/build", "POST"),
])
def test_wrong_method_is_405_json(plain, method, path, allow):
    resp = call(plain, method, path)
    expect_error(resp, 405, "ENOTSUP", "not allowed")
    assert resp[1]["Allow"] == allow


def test_oversized_body_is_413(secure):
    name = new_collection(secure)
    # a body that really is over the cap
    big = {"vectors": [[0.123456789] * 4] * (SECURE_MAX // 40)}
    raw = json.dumps(big).encode()
    assert len(raw) > SECURE_MAX
    expect_error(call(secure, "POST", f"/collections/{name}/upsert", raw=raw), 413, "ELIMIT")
    assert points(secure, name) == 0
    # a Content-Length far over the cap is refused before any byte of the body is read
    host, port = urllib.parse.urlsplit(secure.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", f"/collections/{name}/upsert")
    conn.putheader("Authorization", "Bearer " + TOKEN)
    conn.putheader("Content-Length", str(1 << 40))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413
    assert json.loads(r.read())["error"]["code"] == "ELIMIT"
    conn.close()
    # just under the cap is fine
    ok = {"vectors": [[1.0, 2.0, 3.0, 4.0]] * 100}
    status, _, body = call(secure, "POST", f"/collections/{name}/upsert", ok)
    assert status == 200 and len(body["ids"]) == 100


def test_keep_alive_serves_many_requests(plain):
    name = new_collection(plain)
    host, port = urllib.parse.urlsplit(plain.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for i in range(20):
        body = json.dumps({"vectors": [[i, 0, 0, 0]], "ids": [i]})
        conn.request("POST", f"/collections/{name}/upsert", body=body)
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"ids": [i]}
    conn.request("GET", "/nope")  # an error keeps the connection usable too
    r = conn.getresponse()
    assert r.status == 404
    r.read()
    conn.request("GET", f"/collections/{name}")
    r = conn.getresponse()
    assert json.loads(r.read())["points"] == 20
    conn.close()


def test_concurrent_searches(plain):
    name = new_collection(plain)
    vecs = grid(50)
    upsert(plain, name, vecs)
    errors = []

    def worker(i):
        try:
            for j in range(10):
                q = vecs[(i * 10 + j) % 50]
                row = search(plain, name, vector=q, k=1)["results"][0]
                assert row[0]["distance"] == 0
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


# ---- Metrics ------------------------------------------------------------------------------------

def metric_value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def test_metrics_count_requests(plain):
    name = new_collection(plain)
    upsert(plain, name, grid(4), ids=[0, 1, 2, 3])
    before = call(plain, "GET", "/metrics")[2]
    search(plain, name, vector=[0, 0, 0, 1], k=2)
    search(plain, name, vector=[0, 0, 0, 1], k=2)
    expect_error(call(plain, "POST", f"/collections/{name}/search", {"vector": [1]}), 400,
                 "EINVAL")
    status, headers, text = call(plain, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for family, kind in [("omendb_requests_total", "counter"),
                         ("omendb_request_errors_total", "counter"),
                         ("omendb_request_duration_seconds", "histogram"),
                         ("omendb_shard_points", "gauge")]:
        assert f"# TYPE {family} {kind}\n" in text
        assert f"# HELP {family} " in text
    series = 'omendb_requests_total{endpoint="http",op="search"}'
    assert metric_value(text, series) - (metric_value(before, series) or 0) == 3
    errs = 'omendb_request_errors_total{endpoint="http",op="search",code="EINVAL"}'
    assert metric_value(text, errs) - (metric_value(before, errs) or 0) == 1
    count = metric_value(text, 'omendb_request_duration_seconds_count{endpoint="http",op="search"}')
    inf = metric_value(text, 'omendb_request_duration_seconds_bucket{endpoint="http",op="search",'
                             'le="+Inf"}')
    assert count == inf and count >= 3
    assert metric_value(text, 'omendb_requests_total{endpoint="http",op="upsert"}') >= 1
    shard_lines = [l for l in text.splitlines()
                   if l.startswith(f'omendb_shard_points{{collection="{name}"')]
    assert shard_lines, text
    assert sum(float(l.split()[-1]) for l in shard_lines) == 4
    assert all('shard="' in l and 'node="tcp://127.0.0.1:' in l for l in shard_lines)


# ---- Token --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/health"), ("GET", "/metrics"), ("GET", "/collections"),
    ("POST", "/collections"), ("GET", "/collections/abc"),
    ("POST", "/collections/abc/search"), ("GET", "/nope"),
])
def test_token_required_on_every_route(secure, method, path):
    body = {"name": "tok", "dim": 2} if method == "POST" else None
    for auth in [None, "Bearer wrong", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
                 TOKEN, "Basic " + TOKEN, "Bearer"]:
        headers = {"Authorization": auth} if auth else {}
        resp = call(secure, method, path, body, token="", headers=headers)
        expect_error(resp, 401, "EAUTH")
        assert resp[1]["WWW-Authenticate"] == "Bearer"
    assert "tok" not in call(secure, "GET", "/collections")[2]["collections"]


def test_right_token_is_accepted(secure):
    status, _, body = call(secure, "GET", "/health", token=TOKEN)
    assert status == 200 and body["status"] == "ok"
    name = new_collection(secure)
    upsert(secure, name, grid(3), ids=[1, 2, 3])
    assert search(secure, name, vector=grid(3)[1], k=1)["results"][0][0]["id"] == 2
    status, _, _ = call(secure, "GET", "/health", token="",
                        headers={"Authorization": "bearer " + TOKEN})
    assert status == 200  # the scheme is case-insensitive


def test_plain_cluster_needs_no_token(plain):
    assert call(plain, "GET", "/health", token="")[0] == 200


# ---- A shard node down --------------------------------------------------------------------------

def test_shard_down_is_503_or_partial(secure):
    name = new_collection(secure)
    upsert(secure, name, grid(40))
    subprocess.run([CLUSTER, "kill", "shard1", "--dir", secure.dir], check=True,
                   capture_output=True, timeout=60)
    try:
        q = {"vector": [0, 0, 0, 1], "k": 5, "deadline_ms": 1000}
        expect_error(call(secure, "POST", f"/collections/{name}/search", q), 503, "EUNAVAIL")
        out = search(secure, name, partial=True, **q)
        cov = out["coverage"]
        assert 0 < cov["answered"] < cov["total"], out
        status, _, health = call(secure, "GET", "/health")
        assert status == 200 and health["shards_up"] == SHARDS - 1
    finally:
        subprocess.run([CLUSTER, "start", "shard1", "--dir", secure.dir], capture_output=True,
                       timeout=60)


# ---- A logical shard being moved ------------------------------------------------------------

def fence(cluster, shard_node, name, shard, mode):
    """Sends FENCE mode for logical shard `shard` of `name` to a shard node (ops/cluster name)."""
    out = subprocess.run([CLUSTER, "status", "--dir", cluster.dir], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    url = next(l.split()[1] for l in out.splitlines() if l.endswith(" name=" + shard_node))
    r = subprocess.run([WIRE_CALL, url, "fence", f"name={name}", f"shard={shard}",
                        f"mode={mode}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_frozen_shard_is_503_estale(plain):
    """A logical shard frozen for a move (docs/CLUSTER.md, "Rebalancing") refuses writes with
    ESTALE, which HTTP answers with 503: the shard map changed until the deadline, retry. This
    coordinator runs without Raft, so no newer map can come and it answers at once; one on Raft
    retries until the request's deadline first. Reads go on meanwhile; after the release the
    same write succeeds."""
    name = "frozen_" + uuid.uuid4().hex[:8]
    status, _, out = call(plain, "POST", "/collections", {"name": name, "dim": 4, "shards": 1})
    assert status == 201, out
    upsert(plain, name, grid(3), ids=[1, 2, 3])
    holder = next(n for n in ("shard0", "shard1")
                  if os.path.isdir(os.path.join(plain.dir, n, "shard", "shards", f"{name}@0")))
    fence(plain, holder, name, 0, FENCE_TRACK)
    fence(plain, holder, name, 0, FENCE_FREEZE)
    try:
        write = {"vectors": [[7, 7, 7, 7]], "ids": [7]}
        resp = call(plain, "POST", f"/collections/{name}/upsert", write)
        expect_error(resp, 503, "ESTALE", "being moved")
        assert search(plain, name, vector=grid(3)[2], k=1)["results"][0][0]["id"] == 3
        assert points(plain, name) == 3
    finally:
        fence(plain, holder, name, 0, FENCE_RELEASE)
    assert upsert(plain, name, [[7, 7, 7, 7]], ids=[7]) == [7]
    assert points(plain, name) == 4
