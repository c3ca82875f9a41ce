#!/bin/bash
# A/B of two builds of omendb-bench-hnsw on indexes they built (--reuse): both run at the same
# time, each pinned to one of CPUs 0 and 1 (swapped every round), so that both see the same
# machine; prints per ef the recall and the best and mean queries/s over the rounds.
#
#   bench/hnsw_ab.sh ROUNDS EFS BIN_A DB_A BIN_B DB_B [omendb-bench-hnsw options...]
#
# e.g. bench/hnsw_ab.sh 6 16,64,256 old/bench/omendb-bench-hnsw /tmp/a \
#        build-hbench/bench/omendb-bench-hnsw /tmp/b --base data/fashion-mnist/base.fvecs \
#        --query data/fashion-mnist/query.fvecs --metric l2 --gt data/gt/fashion.ivecs --threads 1
# Each DB must have been built by its binary beforehand (the same options without --reuse), and
# the two must be different directories.
#
# AB_SEQUENTIAL=1 runs them one after the other instead (a then b, b then a in the next round),
# each alone on the machine: side by side, the two share the L3 cache and the memory bandwidth,
# which favours a change that saves cache or memory traffic more than a lone search would.
set -euo pipefail
[ $# -ge 6 ] || { sed -n 2,12p "$0" >&2; exit 2; }
rounds=$1 efs=$2 bin_a=$3 db_a=$4 bin_b=$5 db_b=$6
shift 6
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
	ca=$((r % 2)) cb=$((1 - r % 2))
	if [ "${AB_SEQUENTIAL:-0}" = 1 ]; then
		for v in $([ $ca = 1 ] && echo a b || echo b a); do
			if [ $v = a ]; then bin=$bin_a db=$db_a; else bin=$bin_b db=$db_b; fi
			"$bin" "$@" --db "$db" --efs "$efs" --single 0 --reuse >"$out/$v.$r" 2>&1
		done
		continue
	fi
	taskset -c $ca "$bin_a" "$@" --db "$db_a" --efs "$efs" --single 0 --reuse >"$out/a.$r" 2>&1 &
	taskset -c $cb "$bin_b" "$@" --db "$db_b" --efs "$efs" --single 0 --reuse >"$out/b.$r" 2>&1 &
	wait
done
for v in a b; do
	grep -h 'ef ' "$out"/$v.* | awk -v v=$v '{print v, $3, $5, $7}'
done | awk '{k = $1 " " $2; if ($4 > best[k]) best[k] = $4; sum[k] += $4; n[k]++; rec[k] = $3}
	END {for (k in best) printf "%s recall %s best %d mean %d\n", k, rec[k], best[k], sum[k] / n[k]}' |
	sort -k2,2n -k1,1
