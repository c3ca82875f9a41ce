#!/bin/bash
# Before/after of two build directories of this project on the same machine in one run: HNSW
# (Fashion-MNIST 60K x 784 and synthetic clustered 1M x 128, M 16, efConstruction 200, one
# search thread, ef 16/64/256, bench/hnsw_ab.sh one side after the other) and exact search
# (synthetic 1M x 128, one query, two threads, bench/flat_ab.sh). Each side builds its own
# databases with its own binary first (untimed). Prints every A/B table; "a" is BEFORE.
#
#   bench/ab_builds.sh BEFORE_BUILD AFTER_BUILD [ROUNDS]      (default 6 rounds)
#
# Needs data/ (bench/data.py fashion data; bench/data.py synthetic data --n 1000000 --dim 128)
# and a quiet machine: nothing else may use the cores while it runs (about 25 minutes).
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,11p "$0" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$1 B=$2 ROUNDS=${3:-6}
DATA=$ROOT/data SCRATCH=${OMEN_SCRATCH:-$ROOT/data/scratch/ab}
mkdir -p "$SCRATCH" "$DATA/gt"
F=$DATA/fashion-mnist S=$DATA/synth-clustered-1000000-128
gt() { # gt NAME BASE QUERY
	[ -s "$DATA/gt/$1.ivecs" ] || "$B/bench/omendb-bench-gt" --base "$2" --query "$3" \
		--metric l2 --out "$DATA/gt/$1.ivecs" --nq 1000 --k 100 >&2
}
gt fashion-1000 "$F/base.fvecs" "$F/query.fvecs"
gt synth-1000000-128-1000 "$S.fvecs" "$S.query.fvecs"

hnsw() { # hnsw NAME BASE QUERY GT
	local opts=(--base "$2" --query "$3" --metric l2 --gt "$4" --nq 1000 --m 16 --efc 200)
	for v in a b; do # builds with two threads, untimed here
		local bin=$A && [ $v = b ] && bin=$B
		rm -rf "$SCRATCH/$1-$v"
		"$bin/bench/omendb-bench-hnsw" "${opts[@]}" --db "$SCRATCH/$1-$v" --threads 2 \
			--efs 64 --single 0 >/dev/null 2>&1
	done
	echo "== HNSW $1: 1 thread, 1000 queries as one batch, $ROUNDS rounds, sequential"
	AB_SEQUENTIAL=1 "$ROOT/bench/hnsw_ab.sh" "$ROUNDS" 16,64,256 \
		"$A/bench/omendb-bench-hnsw" "$SCRATCH/$1-a" "$B/bench/omendb-bench-hnsw" \
		"$SCRATCH/$1-b" "${opts[@]}" --threads 1 --reps 3 --min-time 0.3
}
hnsw fashion "$F/base.fvecs" "$F/query.fvecs" "$DATA/gt/fashion-1000.ivecs"
hnsw synth1m "$S.fvecs" "$S.query.fvecs" "$DATA/gt/synth-1000000-128-1000.ivecs"

echo "== flat: 1M x 128, one query, 2 threads, $ROUNDS rounds of 51 queries, sequential"
"$ROOT/bench/flat_ab.sh" "$ROUNDS" "$A/bench/omendb-bench-flat" "$SCRATCH/flat-a" \
	"$B/bench/omendb-bench-flat" "$SCRATCH/flat-b" --data "$S.fvecs" --query "$S.query.fvecs" \
	--runs 51 --threads 2
