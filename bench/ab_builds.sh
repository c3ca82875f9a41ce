#!/bin/bash
# Before/after of two build directories of this project on the same machine in one run:
#  - HNSW on Fashion-MNIST (60K x 784: 2-byte level-0 ids) and on the first 200K rows of the
#    synthetic clustered 1M x 128 set (4-byte ids): M 16, efConstruction 200, indexes built by
#    each side with ONE thread, so that both sides search the same graph (the recall and the
#    index bytes per vector printed after each build must agree); one search thread, ef
#    16/64/256, bench/hnsw_ab.sh with the two sides one after the other, alternating;
#  - exact search (synthetic 1M x 128, one query, two threads; bench/flat_ab.sh);
#  - the instructions each side executes inside omen_search for the same work (valgrind
#    --tool=callgrind, which counts instructions, not seconds: repeatable on a noisy machine):
#    200 queries at ef 16, 64 and 256 on each HNSW graph, two exact queries on 1M x 128.
# "a" is BEFORE, "b" AFTER.
#
#   bench/ab_builds.sh BEFORE_BUILD AFTER_BUILD [ROUNDS]      (default 8 rounds)
#
# Needs data/ (bench/data.py fashion data; bench/data.py synthetic data --n 1000000 --dim 128),
# valgrind, and a quiet machine: nothing else may use the cores while it runs (about 25
# minutes on 2 cores).
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,18p "$0" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$1 B=$2 ROUNDS=${3:-8}
DATA=$ROOT/data SCRATCH=${OMEN_SCRATCH:-$ROOT/data/scratch/ab}
mkdir -p "$SCRATCH" "$DATA/gt"
F=$DATA/fashion-mnist S=$DATA/synth-clustered-1000000-128
gt() { # gt NAME BASE QUERY N
	[ -s "$DATA/gt/$1.ivecs" ] || "$B/bench/omendb-bench-gt" --base "$2" --query "$3" \
		--metric l2 --out "$DATA/gt/$1.ivecs" --n "$4" --nq 1000 --k 100 >&2
}
gt fashion-1000 "$F/base.fvecs" "$F/query.fvecs" 0
gt synth-200000 "$S.fvecs" "$S.query.fvecs" 200000

side() { [ "$1" = a ] && echo "$A" || echo "$B"; }

hnsw() { # hnsw NAME BASE QUERY GT N
	local opts=(--base "$2" --query "$3" --metric l2 --gt "$4" --n "$5" --m 16 --efc 200)
	echo "== HNSW $1: builds (one thread each)"
	for v in a b; do
		rm -rf "$SCRATCH/$1-$v"
		"$(side $v)/bench/omendb-bench-hnsw" "${opts[@]}" --nq 1000 --db "$SCRATCH/$1-$v" \
			--threads 1 --efs 64 --single 0 2>&1 |
			grep -oE 'build_s": [0-9.]+|index_per_vector": [0-9.]+|ef +64: recall@10 [0-9.]+' |
			tr '\n' ' ' | sed "s/^/$v /"
		echo
	done
	echo "== HNSW $1: 1 thread, 1000 queries as one batch, $ROUNDS rounds, sequential"
	AB_SEQUENTIAL=1 "$ROOT/bench/hnsw_ab.sh" "$ROUNDS" 16,64,256 \
		"$A/bench/omendb-bench-hnsw" "$SCRATCH/$1-a" "$B/bench/omendb-bench-hnsw" \
		"$SCRATCH/$1-b" "${opts[@]}" --nq 1000 --threads 1 --reps 3 --min-time 1
	echo "== HNSW $1: instructions in omen_search, 200 queries at ef 16, 64, 256 (twice each)"
	for v in a b; do
		valgrind --tool=callgrind --toggle-collect=omen_search \
			--callgrind-out-file="$SCRATCH/cg.$1.$v" "$(side $v)/bench/omendb-bench-hnsw" \
			"${opts[@]}" --nq 200 --db "$SCRATCH/$1-$v" --threads 1 --efs 16,64,256 \
			--single 0 --reuse --reps 1 2>&1 | grep -oE 'Collected : [0-9]+' | sed "s/^/$v /"
	done
}
hnsw fashion "$F/base.fvecs" "$F/query.fvecs" "$DATA/gt/fashion-1000.ivecs" 0
hnsw synth200k "$S.fvecs" "$S.query.fvecs" "$DATA/gt/synth-200000.ivecs" 200000

echo "== flat: 1M x 128, one query, 2 threads, $ROUNDS rounds of 51 queries, sequential"
"$ROOT/bench/flat_ab.sh" "$ROUNDS" "$A/bench/omendb-bench-flat" "$SCRATCH/flat-a" \
	"$B/bench/omendb-bench-flat" "$SCRATCH/flat-b" --data "$S.fvecs" --query "$S.query.fvecs" \
	--runs 51 --threads 2
echo "== flat: instructions in omen_search, 2 exact queries over 1M x 128, one thread"
for v in a b; do
	valgrind --tool=callgrind --toggle-collect=omen_search --callgrind-out-file="$SCRATCH/cg.flat.$v" \
		"$(side $v)/bench/omendb-bench-flat" --data "$S.fvecs" --query "$S.query.fvecs" \
		--db "$SCRATCH/flat-$v" --runs 2 --threads 1 2>&1 | grep -oE 'Collected : [0-9]+' |
		sed "s/^/$v /"
done
