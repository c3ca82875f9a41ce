#!/bin/bash
# Runs the OmenDB benchmarks and writes bench/results/*.json, bench/results/summary.csv, and a
# table on stdout. See docs/BENCHMARKS.md for what each one measures.
#
#   bench/run.sh [all|load|flat|batch|memory|fashion|report|plot]
#   bench/run.sh hnsw fashion|minilm|synth|all
#   bench/run.sh ivf fashion|synth1m|synth10m|synth2m768|all
#   bench/run.sh replicas [ARGS of bench/replicas.py]
#   bench/run.sh history [SECONDS [SEED]]
#
# all runs fashion, load, flat, batch and memory (about 5 minutes on 2 cores); report only
# prints the table of the results present; plot also redraws docs/bench-*.png.
# hnsw DATASET runs OmenDB's HNSW index against hnswlib and FAISS on one data set (bench/hnsw.py;
# about 12 minutes for fashion, 2 for minilm, 100 for synth at 1M on 2 cores; "all" runs the
# three in turn); it is not part of "all".
#
# Environment: OMEN_BUILD (build directory, default build-bench), OMEN_DATA (data directory,
# default data/), OMEN_SCRATCH (databases written by the benchmarks, default $OMEN_DATA/scratch),
# RUNS_LOAD (default 7), ROUNDS_BATCH (default 5), RUNS_FLAT (default 101).
# hnsw: HNSW_N (synthetic rows, default and at most 1000000), HNSW_NQ (queries; default 1000
# for fashion, all for minilm and synth), HNSW_THREADS (default 1,2), HNSW_ROUNDS (3; minilm 5;
# synth 5), HNSW_EFS (synth only; default 10,16,32,64,96,128,192,256,384),
# HNSW_REPS (3; at least, and more until 0.3 s per ef), HNSW_FAISS_DEFAULT (1: also FAISS without OMP_WAIT_POLICY=PASSIVE),
# HNSW_SYSTEMS (default omendb,hnswlib,faiss,hnswlib-native).
# ivf DATASET runs OmenDB's IVF index against FAISS's IndexIVFFlat, IndexIVFScalarQuantizer
# (SQ8) and IndexIVFPQFastScan + IndexRefineFlat at the same nlist (bench/ivf.py); it makes the
# synthetic sets (1M x 128, 10M x 128, 2M x 768) with bench/data.py when missing, and prints
# the tables of bench/ivf_report.py; "all" runs fashion, synth1m, synth2m768 and synth10m in
# turn; not part of "all". ivf: IVF_N (rows; default all, smaller for a trial), IVF_NQ
# (queries; default 1000), IVF_THREADS (default 1,2), IVF_ROUNDS (default 3), IVF_REPS
# (default 3), IVF_NLIST (default: the engine's choice, given to FAISS too), IVF_NPROBES
# (0 = the calibrated default; default per data set, bench/ivf.py), IVF_K_FACTORS (default
# 4,8,16,32), IVF_SYSTEMS (default omendb,faiss-ivfflat,faiss-ivfsq8,faiss-ivfpqfs-rflat, and
# omendb-hnsw for synth1m).
# replicas runs bench/replicas.py (copies of logical shards: write throughput by replicas,
# a shard node killed/paused under load, restore of a 1M-point shard; local 3-node clusters)
# with the node and Python package of $BUILD, passes ARGS on and writes
# bench/results/replicas.json unless ARGS name --json; not part of "all", no report or plot.
# history runs tests/cluster/test_history.py (clients through three Raft coordinators under
# random kills, pauses and partitions, the history checked) for SECONDS (default 300) with
# SEED (default random; printed), the longer form of the test the suite runs for 20 s.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${OMEN_BUILD:-$ROOT/build-bench}
DATA=${OMEN_DATA:-$ROOT/data}
SCRATCH=${OMEN_SCRATCH:-$DATA/scratch}
RES=$ROOT/bench/results
PY=/usr/bin/python3 # Debian's interpreter: numpy, faiss, matplotlib
THREADS=2
what=${1:-all}

build() {
	if [ ! -f "$BUILD/build.ninja" ]; then
		meson setup "$BUILD" "$ROOT" >/dev/null
	fi
	# Only the benchmark programs (and the library they link), not the rest of the tree.
	ninja -C "$BUILD" bench/omendb-fashion bench/omendb-bench-load bench/omendb-bench-flat \
		bench/omendb-bench-batch bench/omendb-bench-memory >/dev/null
}

synth() { # synth N DIM
	$PY "$ROOT/bench/data.py" synthetic "$DATA" --n "$1" --dim "$2" >&2
}

synth_file() { # synth_file N DIM [query]
	echo "$DATA/synth-clustered-$1-$2${3:+.query}.fvecs"
}

run_load() {
	synth 1000000 128
	synth 200000 768
	for nd in "1000000 128" "200000 768"; do
		set -- $nd
		# LMDB values: first as many vectors as the engine puts in one chunk (the largest power
		# of two whose chunk fits in 1 MiB at 4 dim + 12 bytes a row, storage/chunk.c), then
		# 256 per value (the same at 768-d, so that variant is run once).
		local fit=$((1048576 / (4 * $2 + 12))) cap=16
		while ((cap * 2 <= fit && cap < 65536)); do cap=$((cap * 2)); done
		local variants="$cap,256"
		((cap == 256)) && variants=256
		echo "== load: $1 x $2, durable, batches of 10000, ${RUNS_LOAD:-7} runs each" >&2
		"$BUILD/bench/omendb-bench-load" --data "$(synth_file "$1" "$2")" \
			--dir "$SCRATCH/load" --runs "${RUNS_LOAD:-7}" --batch 10000 \
			--per-value "$variants" --json "$RES/load-$1-$2.json"
	done
}

run_flat() {
	synth 1000000 128
	echo "== flat: 1M x 128, one query, $THREADS threads" >&2
	"$BUILD/bench/omendb-bench-flat" --data "$(synth_file 1000000 128)" \
		--query "$(synth_file 1000000 128 query)" --db "$SCRATCH/flat" \
		--runs "${RUNS_FLAT:-101}" --threads $THREADS --json "$RES/flat.json"
}

run_batch() {
	$PY "$ROOT/bench/data.py" fashion "$DATA" >&2
	echo "== batch: Fashion-MNIST, 1000 queries, k=10, $THREADS threads, vs FAISS" >&2
	$PY "$ROOT/bench/batch.py" --bin "$BUILD/bench/omendb-bench-batch" --data "$DATA" \
		--db "$SCRATCH/batch" --nq 1000 --k 10 --threads $THREADS \
		--rounds "${ROUNDS_BATCH:-5}" --reps 5 --json "$RES/batch.json"
}

run_memory() {
	synth 1000000 128
	local data query
	data=$(synth_file 1000000 128)
	query=$(synth_file 1000000 128 query)
	# name: points, batch size, threads
	for cfg in "250000 10000 2" "1000000 10000 2" "1000000 2500 2" "1000000 10000 1"; do
		set -- $cfg
		echo "== memory: $1 x 128, batches of $2, $3 threads" >&2
		"$BUILD/bench/omendb-bench-memory" --data "$data" --query "$query" \
			--db "$SCRATCH/memory" --n "$1" --batch "$2" --nq 1000 --threads "$3" \
			--json "$RES/memory-$1-b$2-t$3.json"
	done
}

build_hnsw() {
	ninja -C "$BUILD" bench/omendb-bench-gt bench/omendb-bench-hnsw >/dev/null
	# hnswlib compiled here for this CPU (-march=native): Debian's python3-hnswlib is built for
	# baseline x86-64 (SSE only). Headers from Debian's libhnswlib-dev (bench/data.py).
	$PY "$ROOT/bench/data.py" hnswlib-headers "$DATA" >&2
	local exe="$BUILD/bench/hnswlib-native" src="$ROOT/bench/hnswlib_native.cpp"
	if [ ! -x "$exe" ] || [ "$src" -nt "$exe" ]; then
		g++ -O3 -march=native -std=c++17 -Wall -Wextra -Wshadow -Werror -pthread \
			-isystem "$DATA/hnswlib/include" "$src" -o "$exe"
	fi
}

run_hnsw_one() { # run_hnsw_one fashion|minilm|synth
	local args=()
	case "$1" in
	fashion) $PY "$ROOT/bench/data.py" fashion "$DATA" >&2 ;;
	minilm) $PY "$ROOT/bench/data.py" minilm "$DATA" >&2 ;;
	synth)
		synth 1000000 128
		# 1M rows: builds of 3 to 27 minutes per system and thread count, paid in round 1 only;
		# a round that reloads the saved indexes takes about a minute for all systems, so 5
		# rounds. ef up to 384 (hnswlib built with two threads once stayed below recall 0.99 at
		# 256), with 96 and 192 where recall crosses 0.95 and 0.99. About 100 minutes in all
		# on 2 cores.
		args+=(--n "${HNSW_N:-1000000}" --rounds "${HNSW_ROUNDS:-5}"
			--efs "${HNSW_EFS:-10,16,32,64,96,128,192,256,384}")
		;;
	*)
		echo "usage: $0 hnsw fashion|minilm|synth|all" >&2
		exit 2
		;;
	esac
	[ -n "${HNSW_NQ:-}" ] && args+=(--nq "$HNSW_NQ")
	[ "${HNSW_FAISS_DEFAULT:-0}" = 1 ] && args+=(--faiss-default-env)
	[ -n "${HNSW_SYSTEMS:-}" ] && args+=(--systems "$HNSW_SYSTEMS")
	[ -n "${HNSW_ROUNDS:-}" ] && args+=(--rounds "$HNSW_ROUNDS")
	[ -n "${HNSW_REPS:-}" ] && args+=(--reps "$HNSW_REPS")
	echo "== hnsw: $1, threads ${HNSW_THREADS:-1,2}" >&2
	$PY "$ROOT/bench/hnsw.py" --build "$BUILD" --data "$DATA" --scratch "$SCRATCH/hnsw" \
		--dataset "$1" --threads "${HNSW_THREADS:-1,2}" --out "$RES" "${args[@]}"
	rm -rf "$SCRATCH/hnsw"
}

run_hnsw() { # run_hnsw fashion|minilm|synth|all
	build_hnsw
	if [ "${1:-}" = all ]; then
		for d in minilm fashion synth; do run_hnsw_one $d; done
	else
		run_hnsw_one "${1:-}"
	fi
}

run_ivf_one() { # run_ivf_one fashion|synth1m|synth10m|synth2m768
	case "$1" in
	fashion) $PY "$ROOT/bench/data.py" fashion "$DATA" >&2 ;;
	synth1m) synth 1000000 128 ;;
	synth10m) synth 10000000 128 ;;
	synth2m768) synth 2000000 768 ;;
	*)
		echo "usage: $0 ivf fashion|synth1m|synth10m|synth2m768|all" >&2
		exit 2
		;;
	esac
	local args=()
	[ -n "${IVF_N:-}" ] && args+=(--n "$IVF_N")
	[ -n "${IVF_NQ:-}" ] && args+=(--nq "$IVF_NQ")
	[ -n "${IVF_ROUNDS:-}" ] && args+=(--rounds "$IVF_ROUNDS")
	[ -n "${IVF_REPS:-}" ] && args+=(--reps "$IVF_REPS")
	[ -n "${IVF_NLIST:-}" ] && args+=(--nlist "$IVF_NLIST")
	[ -n "${IVF_NPROBES:-}" ] && args+=(--nprobes "$IVF_NPROBES")
	[ -n "${IVF_K_FACTORS:-}" ] && args+=(--k-factors "$IVF_K_FACTORS")
	[ -n "${IVF_SYSTEMS:-}" ] && args+=(--systems "$IVF_SYSTEMS")
	echo "== ivf: $1, threads ${IVF_THREADS:-1,2}" >&2
	$PY "$ROOT/bench/ivf.py" --build "$BUILD" --data "$DATA" --scratch "$SCRATCH/ivf" \
		--dataset "$1" --threads "${IVF_THREADS:-1,2}" --out "$RES" "${args[@]}"
	rm -rf "$SCRATCH/ivf"
}

run_ivf() { # run_ivf fashion|synth1m|synth10m|synth2m768|all
	ninja -C "$BUILD" bench/omendb-bench-gt bench/omendb-bench-ivf bench/omendb-bench-hnsw \
		>/dev/null
	if [ "${1:-}" = all ]; then
		for d in fashion synth1m synth2m768 synth10m; do run_ivf_one $d; done
	else
		run_ivf_one "${1:-}"
	fi
	$PY "$ROOT/bench/ivf_report.py" "$RES"
}

build_cluster() { # omendb-node, the CLI and the Python package of $BUILD
	local py
	py=$(ninja -C "$BUILD" -t targets all |
		sed -n 's|^\(python/omendb/_omendb[^:/]*\.so\):.*|\1|p' | head -n 1)
	if [ -z "$py" ]; then
		echo "$0: $BUILD has no Python package (needs python3-dev and python3-numpy)" >&2
		exit 1
	fi
	ninja -C "$BUILD" omendb-node cli/omendb "$py" >/dev/null
}

run_replicas() { # run_replicas [ARGS of bench/replicas.py]
	build_cluster
	local args=("$@")
	[[ " $* " == *" --json"* ]] || args+=(--json "$RES/replicas.json")
	echo "== replicas: 3 shard nodes, 1 coordinator" >&2
	OMEN_NODE=$BUILD/omendb-node PYTHONPATH=$BUILD/python \
		$PY "$ROOT/bench/replicas.py" "${args[@]}"
}

run_history() { # run_history [SECONDS [SEED]]
	build_cluster
	env OMEN_HISTORY_SECONDS="${1:-300}" ${2:+OMEN_HISTORY_SEED="$2"} \
		OMEN_NODE="$BUILD/omendb-node" OMENDB_CLI="$BUILD/cli/omendb" PYTHONPATH="$BUILD/python" \
		$PY -m pytest -q -s -p no:cacheprovider "$ROOT/tests/cluster/test_history.py"
}

run_fashion() {
	$PY "$ROOT/bench/data.py" fashion "$DATA" >&2
	"$BUILD/bench/omendb-fashion" "$DATA" "$SCRATCH/fashion" | tee "$RES/fashion.txt"
}

mkdir -p "$RES" "$SCRATCH"
build
case "$what" in
all)
	run_fashion
	run_load
	run_flat
	run_batch
	run_memory
	;;
load | flat | batch | memory | fashion) "run_$what" ;;
hnsw) run_hnsw "${2:-}" ;;
ivf) run_ivf "${2:-}" ;;
replicas)
	run_replicas "${@:2}"
	exit 0
	;;
history)
	run_history "${@:2}"
	exit 0
	;;
report | plot) ;;
*)
	echo "usage: $0 [all|load|flat|batch|memory|fashion|report|plot] |" \
		"hnsw fashion|minilm|synth|all | ivf fashion|synth1m|synth10m|synth2m768|all |" \
		"replicas [ARGS] | history [SECONDS [SEED]]" >&2
	exit 2
	;;
esac
$PY "$ROOT/bench/report.py" "$RES"
if [ "$what" != report ]; then
	$PY "$ROOT/bench/plot.py" "$RES" "$ROOT/docs"
fi
