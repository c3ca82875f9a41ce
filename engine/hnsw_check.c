/*
 * The HNSW index's integrity check (omen_check, omendb check): reads the persisted graph as a
 * search maps it and verifies its header, every link list (counts within their level's cap,
 * ids within the graph, no self links, neighbours present on the level), the upper-level
 * record's order and sizes, the entry point, and that every live point is reachable. It
 * reports the first problems in words and answers OMEN_ECORRUPT when it finds any.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw.h"

typedef struct check_ctx {
	const hnsw_mapped *g;
	const snapshot *s;
	check_report r;
} check_ctx;

#define say(x, ...) report_say(&(x)->r, __VA_ARGS__)
#define problem(x)  report_problem(&(x)->r)

/* Checks one link list (n ids at l): count within cap, ids valid, no self links, levels
 * consistent. */
static void check_list(check_ctx *x, uint64_t node, uint32_t lc, const unsigned char *l, uint32_t n,
                       uint32_t cap, const uint8_t *levels)
{
	if (n > cap) {
		if (problem(x))
			say(x, "node %llu level %u: %u links, at most %u allowed\n",
			    (unsigned long long)node, lc, n, cap);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t nb = link_id(x->g, lc, l, i);
		const char *bad = nb >= x->g->n     ? "points past the last node"
		                  : nb == node      ? "links to itself"
		                  : levels[nb] < lc ? "links to a node absent from that level"
		                                    : NULL;
		if (bad && problem(x))
			say(x, "node %llu level %u: link %u (%u) %s\n", (unsigned long long)node,
			    lc, i, nb, bad);
	}
}

/* Reads every node's level from the upper-level record, checking its order and sizes. NULL
 * when out of memory. */
static uint8_t *check_levels(check_ctx *x)
{
	const hnsw_mapped *g = x->g;
	uint8_t *levels = mem_calloc(g->n ? g->n : 1, 1);
	if (!levels)
		return NULL;
	for (uint32_t u = 0; u < g->n_up; u++) {
		uint32_t node = ld32(g->up_ids + 4 * (size_t)u);
		uint32_t w = ld32(g->up_off + 4 * (u + 1)) - ld32(g->up_off + 4 * (size_t)u);
		bool sorted = u == 0 || node > ld32(g->up_ids + 4 * (size_t)(u - 1));
		if (node >= g->n || !sorted || w == 0 || w % (1 + g->m) ||
		    w / (1 + g->m) > g->max_level) {
			if (problem(x))
				say(x, "upper levels: entry %u (node %u) is inconsistent\n", u,
				    node);
			continue;
		}
		levels[node] = (uint8_t)(w / (1 + g->m));
	}
	if (g->n && levels[g->entry] != g->max_level && problem(x))
		say(x, "entry point %llu has level %u, the graph's top level is %u\n",
		    (unsigned long long)g->entry, levels[g->entry], g->max_level);
	return levels;
}

/* Breadth-first search from the entry point over every level, marking seen[]. */
static void reach(const hnsw_mapped *g, const uint8_t *levels, uint8_t *seen, uint32_t *queue)
{
	uint64_t head = 0, tail = 0;
	if (g->n) {
		seen[g->entry] = 1;
		queue[tail++] = (uint32_t)g->entry;
	}
	while (head < tail) {
		uint32_t node = queue[head++];
		for (uint32_t lc = 0; lc <= levels[node]; lc++) {
			uint32_t n, cap = lc ? g->m : g->m0;
			const unsigned char *l = links_at(g, node, lc, &n);
			for (uint32_t i = 0; i < n && i < cap; i++) {
				uint32_t nb = link_id(g, lc, l, i);
				if (nb < g->n && !seen[nb]) {
					seen[nb] = 1;
					queue[tail++] = nb;
				}
			}
		}
	}
}

/* Returns the number of live (not tombstoned) nodes unreachable from the entry point, naming
 * the first of them. */
static uint64_t check_reach(check_ctx *x, const uint8_t *levels)
{
	const hnsw_mapped *g = x->g;
	uint8_t *seen = mem_calloc(g->n ? g->n : 1, 1);
	uint32_t *queue = mem_alloc((g->n ? g->n : 1) * sizeof *queue);
	uint64_t lost = 0;
	if (!seen || !queue) {
		x->r.errors++;
		say(x, "out of memory for the reachability check\n");
		mem_free(seen), mem_free(queue);
		return 0;
	}
	reach(g, levels, seen, queue);
	for (uint64_t i = 0; i < g->n; i++)
		if (!seen[i] && !snap_tomb(x->s, i) && lost++ < 10)
			say(x, "live node %llu (id %llu) is unreachable from the entry point\n",
			    (unsigned long long)i, (unsigned long long)snap_id(x->s, i));
	mem_free(seen);
	mem_free(queue);
	return lost;
}

/* Checks node's level-0 offsets: in order and within its record's id area. */
static void check_offsets(check_ctx *x, uint64_t node)
{
	const hnsw_l0rec *r = &x->g->l0r[node >> HNSW_L0_SHIFT];
	const unsigned char *o = r->off + 4 * (node & (HNSW_L0_NODES - 1));
	if ((ld32(o) > ld32(o + 4) || ld32(o + 4) > r->words) && problem(x))
		say(x, "node %llu level 0: link offsets %u..%u outside 0..%u\n",
		    (unsigned long long)node, ld32(o), ld32(o + 4), r->words);
}

static void check_graph(check_ctx *x)
{
	const hnsw_mapped *g = x->g;
	uint8_t *levels = check_levels(x);
	if (!levels) {
		x->r.errors++;
		say(x, "out of memory\n");
		return;
	}
	uint64_t links = 0;
	for (uint64_t i = 0; i < g->n; i++) {
		check_offsets(x, i);
		for (uint32_t lc = 0; lc <= levels[i]; lc++) {
			uint32_t n, cap = lc ? g->m : g->m0;
			const unsigned char *l = links_at(g, i, lc, &n);
			check_list(x, i, lc, l, n, cap, levels);
			links += lc == 0 && n <= cap ? n : 0;
		}
	}
	uint64_t lost = x->r.errors ? 0 : check_reach(x, levels);
	x->r.errors += lost;
	say(x,
	    "hnsw: %llu nodes, m=%u, ef_construction=%u, %u levels above 0 (%u nodes), "
	    "%.1f links per node on level 0\n",
	    (unsigned long long)g->n, g->m, g->efc, g->max_level, g->n_up,
	    g->n ? (double)links / (double)g->n : 0.0);
	say(x, "reachability: %llu live nodes unreachable\n", (unsigned long long)lost);
	mem_free(levels);
}

/* Maps the graph of collection c in txn and checks it into x. */
static int check_in(eng_coll *c, MDB_txn *txn, check_ctx *x)
{
	snapshot s;
	hnsw_mapped g = {0};
	int st = snap_open(c, txn, NULL, &s);
	if (st != OMEN_OK)
		return st;
	x->s = &s;
	int gs = hnsw_map(c, txn, &g);
	if (gs == OMEN_ENOTFOUND) {
		say(x, "collection '%s': no index (flat): nothing to check\n", c->name);
	} else if (gs != OMEN_OK) {
		x->r.errors++;
		say(x, "collection '%s': %s\n", c->name, status_msg());
	} else {
		x->g = &g;
		check_graph(x);
	}
	x->g = NULL;
	x->s = NULL;
	hnsw_mapped_free(&g);
	snap_close(&s);
	return OMEN_OK;
}

int hnsw_check(eng_coll *c, char **report)
{
	check_ctx x = {0};
	MDB_txn *txn;
	int st = store_read_begin(c->db->st, &txn);
	if (st != OMEN_OK)
		return st;
	st = check_in(c, txn, &x);
	store_read_end(c->db->st, txn);
	return report_finish(c, &x.r, st, report);
}
