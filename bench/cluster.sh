#!/bin/bash
# Cluster benchmarks (docs/BENCHMARKS.md, section Cluster): writes bench/results/cluster-*.json.
#   1. the floor: one loopback round trip with plain TCP and with nng REQ/REP;
#   2. latency: single queries (k = 10, d = 128) through a coordinator and one shard node (one
#      logical shard) against the same search on an embedded database, alternating;
#   3. throughput: loading 100,000 x 128 points and exact single-query search from 4 client
#      threads with 1, 2 and 4 shard nodes (8 logical shards), and embedded for reference.
# About 4 minutes on 2 cores. Environment: OMEN_BUILD (default build-bench), OMEN_SCRATCH
# (default data/scratch), CLUSTER_N (points, default 100000), CLUSTER_SECONDS (default 10).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${OMEN_BUILD:-$ROOT/build-bench}
SCRATCH=${OMEN_SCRATCH:-$ROOT/data/scratch}
RES=$ROOT/bench/results
N=${CLUSTER_N:-100000}
SECS=${CLUSTER_SECONDS:-10}

[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$ROOT" >/dev/null
ninja -C "$BUILD" omendb-node bench/omendb-bench-cluster bench/omendb-bench-nng-floor >/dev/null
export OMEN_NODE=$BUILD/omendb-node
mkdir -p "$SCRATCH" "$RES"
dir=$SCRATCH/cluster
trap '"$ROOT/ops/cluster" down --dir "$dir" 2>/dev/null || true' EXIT

"$BUILD/bench/omendb-bench-nng-floor" --rounds 5000 | tee "$RES/cluster-floor.json"

rm -rf "$dir"
url=$("$ROOT/ops/cluster" up 1 --dir "$dir" --shards 1)
"$BUILD/bench/omendb-bench-cluster" latency "$url" "$SCRATCH/cluster-embedded" --n 20000 \
	--dim 128 --queries 1000 --rounds 5 | tee "$RES/cluster-latency.json"
"$ROOT/ops/cluster" down --dir "$dir"

for nodes in 1 2 4; do
	rm -rf "$dir"
	url=$("$ROOT/ops/cluster" up "$nodes" --dir "$dir")
	embedded=()
	[ "$nodes" = 1 ] && embedded=("$SCRATCH/cluster-embedded")
	"$BUILD/bench/omendb-bench-cluster" throughput "$url" "${embedded[@]}" --n "$N" --dim 128 \
		--threads 4 --seconds "$SECS" | tee "$RES/cluster-throughput-$nodes.json"
	"$ROOT/ops/cluster" down --dir "$dir"
done
rm -rf "$dir" "$SCRATCH/cluster-embedded"
