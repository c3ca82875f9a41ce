#!/bin/bash
# A/B of two builds of omendb-bench-flat (one exact query over the whole collection, against
# the memory bandwidth measured in the same process): the two run one after the other, each
# alone on the machine, a then b, then b then a in the next round; prints per side the median
# query time and the ratio to the read bandwidth, per round and as the median of the rounds.
#
#   bench/flat_ab.sh ROUNDS BIN_A DB_A BIN_B DB_B [omendb-bench-flat options...]
#
# e.g. bench/flat_ab.sh 6 old/bench/omendb-bench-flat /tmp/fa build/bench/omendb-bench-flat \
#        /tmp/fb --data data/synth-clustered-1000000-128.fvecs \
#        --query data/synth-clustered-1000000-128.query.fvecs --runs 51 --threads 2
# Each binary builds its database on its first run (the DBs must be different directories).
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,12p "$0" >&2; exit 2; }
rounds=$1 bin_a=$2 db_a=$3 bin_b=$4 db_b=$5
shift 5
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for v in a b; do # builds, untimed
	if [ $v = a ]; then bin=$bin_a db=$db_a; else bin=$bin_b db=$db_b; fi
	"$bin" "$@" --db "$db" --runs 3 --json "$out/warm.$v" 2>/dev/null
done
for r in $(seq "$rounds"); do
	for v in $([ $((r % 2)) = 1 ] && echo a b || echo b a); do
		if [ $v = a ]; then bin=$bin_a db=$db_a; else bin=$bin_b db=$db_b; fi
		"$bin" "$@" --db "$db" --json "$out/$v.$r" 2>/dev/null
	done
done
/usr/bin/python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {v: [json.load(open(f"{out}/{v}.{r}")) for r in range(1, rounds + 1)] for v in "ab"}
for v in "ab":
    q = [x["query_s_median"] * 1e3 for x in rows[v]]
    ratio = [x["ratio"] for x in rows[v]]
    print(f"{v} query ms per round: " + " ".join(f"{t:.3f}" for t in q))
    print(f"{v} median query {statistics.median(q):.3f} ms, ratio to read bandwidth "
          f"{statistics.median(ratio):.3f} (rounds {min(ratio):.3f}..{max(ratio):.3f})")
qa = statistics.median(x["query_s_median"] for x in rows["a"])
qb = statistics.median(x["query_s_median"] for x in rows["b"])
print(f"b / a query time: {qb / qa:.3f}")
PY
