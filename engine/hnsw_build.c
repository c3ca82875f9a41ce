/*
 * HNSW build in memory: INSERT (Algorithm 1 of Yu. A. Malkov and D. A. Yashunin, "Efficient
 * and robust approximate nearest neighbor search using Hierarchical Navigable Small World
 * graphs", IEEE TPAMI 42(4), 2020) with SEARCH-LAYER (Algorithm 2) and
 * SELECT-NEIGHBORS-HEURISTIC (Algorithm 4, without extendCandidates and keepPrunedConnections,
 * as in their reference implementation), run by OpenMP threads that insert nodes concurrently,
 * each node's links guarded by a striped spinlock. A build extends the persisted graph when
 * its parameters match, repairs what pruning left unreachable, and hands the graph to
 * hnsw_persist.
 */
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw.h"

#define LOCK_STRIPES (1u << 16)

typedef struct builder {
	hnsw_build_graph g;
	const snapshot *s;
	qctx q;
	atomic_flag *locks;       /* LOCK_STRIPES spinlocks, node & (LOCK_STRIPES - 1) */
	pthread_mutex_t entry_mu; /* guards g.entry and g.max_level */
	bool empty;               /* no node inserted yet */
	double ml;                /* level multiplier 1 / ln(M) */
} builder;

static inline void node_lock(builder *b, uint64_t n)
{
	while (atomic_flag_test_and_set_explicit(&b->locks[n & (LOCK_STRIPES - 1)],
	                                         memory_order_acquire))
		__builtin_ia32_pause();
}

static inline void node_unlock(builder *b, uint64_t n)
{
	atomic_flag_clear_explicit(&b->locks[n & (LOCK_STRIPES - 1)], memory_order_release);
}

/* A node's level, drawn as floor(-ln(U) mL) from a hash of its row, so builds repeat. */
static uint32_t draw_level(uint64_t row, double ml)
{
	uint64_t z = row * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	double u = ((double)(z >> 11) + 0.5) * 0x1p-53;
	double l = -log(u) * ml;
	return l < HNSW_MAX_LEVEL - 1 ? (uint32_t)l : HNSW_MAX_LEVEL - 1;
}

/* Copies node's links at level lc into buf (1 + cap words) under its lock. */
static uint32_t links_copy(builder *b, uint64_t node, uint32_t lc, uint32_t *buf)
{
	uint32_t cap = lc ? b->g.m : b->g.m0;
	node_lock(b, node);
	const uint32_t *l = mem_links(&b->g, node, lc);
	uint32_t n = l[0] < cap ? l[0] : cap;
	memcpy(buf, l + 1, n * sizeof *buf);
	node_unlock(b, node);
	return n;
}

/* SEARCH-LAYER (Algorithm 2) at level lc from ep, with the sorted array of the search's
 * search_l0_sorted (nothing is excluded while building): leaves the ef nearest found in
 * x->sel[0..*n_out), closest first, which is the order the heuristic wants them in. */
static bool layer_search(builder *b, hnsw_scratch *x, const float *qv, uint32_t ep, float dep,
                         uint32_t ef, uint32_t lc, size_t *n_out)
{
	uint32_t buf[4 * OMEN_HNSW_M_MAX];
	float d[4 * OMEN_HNSW_M_MAX];
	if (!hnsw_scratch_begin(x, b->g.n) || !hnsw_scratch_sel(x, ef + 1))
		return false;
	hitem *r = x->sel;
	size_t size = 1, k = 0;
	r[0] = (hitem){dep, ep};
	visit(x, ep);
	while (k < size) {
		size_t nk = size;
		if (!(r[k].id & HNSW_EXPANDED)) {
			uint32_t n = links_copy(b, r[k].id, lc, buf), nf = 0;
			r[k].id |= HNSW_EXPANDED;
			for (uint32_t i = 0; i < n;
			     i++) { /* the unvisited ones, their vectors fetched */
				uint32_t nb = buf[i];
				if (!visit(x, nb))
					continue;
				buf[nf++] = nb;
				__builtin_prefetch(snap_vec(b->s, nb));
			}
			qdist_many(&b->q, qv, buf, nf, d, size == ef ? r[size - 1].d : INFINITY);
			for (uint32_t i = 0; i < nf; i++) {
				if (size == ef && d[i] >= r[size - 1].d)
					continue;
				sorted_insert(r, &size, ef, d[i], buf[i], &nk);
			}
		}
		k = nk <= k ? nk : k + 1;
	}
	sorted_unmark(r, size);
	*n_out = size;
	return true;
}

/* SELECT-NEIGHBORS-HEURISTIC (Algorithm 4): keeps a candidate only when it is closer to the
 * base than to every neighbour already kept. c: n candidates sorted closest first (distances to
 * the base). Writes up to m ids to out; returns how many. */
static uint32_t select_heuristic(builder *b, const hitem *c, size_t n, uint32_t m, uint32_t *out)
{
	uint32_t kept = 0;
	for (size_t i = 0; i < n && kept < m; i++) {
		const float *cv = snap_vec(b->s, c[i].id);
		bool good = true;
		for (uint32_t j = 0; j < kept && good; j++)
			good = qdist_below(&b->q, cv, out[j], c[i].d) >= c[i].d;
		if (good)
			out[kept++] = c[i].id;
	}
	return kept;
}

/* Sorts c[0..n) by distance, closest first (insertion sort: n is at most 2m + 1). */
static void sort_by_dist(hitem *c, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t j = i; j > 0 && c[j].d < c[j - 1].d; j--) {
			hitem t = c[j];
			c[j] = c[j - 1];
			c[j - 1] = t;
		}
}

/* Adds node to e's links at level lc, shrinking them with the heuristic when full. */
static void link_back(builder *b, uint32_t e, uint32_t node, uint32_t lc)
{
	uint32_t cap = lc ? b->g.m : b->g.m0;
	hitem c[4 * OMEN_HNSW_M_MAX + 1];
	const float *ev = snap_vec(b->s, e);
	node_lock(b, e);
	uint32_t *l = mem_links(&b->g, e, lc);
	if (l[0] < cap) {
		l[1 + l[0]++] = node;
	} else {
		uint32_t ids[4 * OMEN_HNSW_M_MAX + 1];
		float d[4 * OMEN_HNSW_M_MAX + 1];
		memcpy(ids, l + 1, cap * sizeof *ids);
		ids[cap] = node;
		qdist_many(&b->q, ev, ids, cap + 1, d, INFINITY);
		for (uint32_t i = 0; i <= cap; i++)
			c[i] = (hitem){d[i], ids[i]};
		sort_by_dist(c, cap + 1);
		l[0] = select_heuristic(b, c, cap + 1, cap, l + 1);
	}
	node_unlock(b, e);
}

/* Greedy descent (ef = 1) from ep through levels top..stop+1, reading links under locks. */
static uint32_t greedy(builder *b, const float *qv, uint32_t ep, float *dep, uint32_t top,
                       uint32_t stop)
{
	uint32_t buf[OMEN_HNSW_M_MAX];
	float d[OMEN_HNSW_M_MAX];
	for (uint32_t lc = top; lc > stop; lc--)
		for (bool changed = true; changed;) {
			changed = false;
			uint32_t n = links_copy(b, ep, lc, buf);
			qdist_many(&b->q, qv, buf, n, d, INFINITY);
			for (uint32_t i = 0; i < n; i++) {
				if (d[i] < *dep) {
					*dep = d[i];
					ep = buf[i];
					changed = true;
				}
			}
		}
	return ep;
}

/* Links node at level lc to the heuristic's choice among the candidates c[0..n) (closest
 * first), and each chosen neighbour back to node. */
static void connect(builder *b, uint32_t node, uint32_t lc, const hitem *c, size_t n)
{
	uint32_t sel[OMEN_HNSW_M_MAX];
	uint32_t kept = select_heuristic(b, c, n, b->g.m, sel);
	node_lock(b, node);
	uint32_t *l = mem_links(&b->g, node, lc);
	memcpy(l + 1, sel, kept * sizeof *sel);
	l[0] = kept;
	node_unlock(b, node);
	for (uint32_t i = 0; i < kept; i++)
		link_back(b, sel[i], node, lc);
}

/* INSERT (Algorithm 1) of one node. False when out of memory. */
static bool insert(builder *b, hnsw_scratch *x, uint32_t node)
{
	hnsw_build_graph *g = &b->g;
	uint32_t level = g->level[node];
	const float *qv = snap_vec(b->s, node);
	pthread_mutex_lock(&b->entry_mu);
	if (b->empty) {
		g->entry = node;
		g->max_level = level;
		b->empty = false;
		pthread_mutex_unlock(&b->entry_mu);
		return true;
	}
	uint32_t ep = (uint32_t)g->entry, top = g->max_level;
	bool raise = level > top; /* keep the lock: this node becomes the entry point */
	if (!raise)
		pthread_mutex_unlock(&b->entry_mu);
	float dep = qdist(&b->q, qv, ep);
	ep = greedy(b, qv, ep, &dep, top, level);
	bool ok = true;
	for (uint32_t lc = level < top ? level : top; ok; lc--) {
		size_t n;
		ok = layer_search(b, x, qv, ep, dep, g->efc, lc, &n);
		if (!ok)
			break;
		connect(b, node, lc, x->sel, n);
		ep = x->sel[0].id;
		dep = x->sel[0].d;
		if (lc == 0)
			break;
	}
	if (raise) {
		g->entry = node;
		g->max_level = level;
		pthread_mutex_unlock(&b->entry_mu);
	}
	return ok;
}

static void build_graph_free(hnsw_build_graph *g)
{
	if (g->up)
		for (uint64_t i = 0; i < g->n; i++)
			mem_free(g->up[i]);
	mem_free(g->up);
	mem_free(g->l0);
	mem_free(g->level);
	hnsw_quant_free(&g->quant);
	mem_free(g->codes);
	memset(g, 0, sizeof *g);
}

/* Sizes the in-memory graph for n nodes, keeping what rows below the old size already hold;
 * the new rows get their levels and empty lists. */
static int graph_alloc(hnsw_build_graph *g, uint64_t n, double ml)
{
	uint64_t old = g->l0 ? g->n : 0;
	uint32_t *l0 = mem_realloc(g->l0, n * (1 + g->m0) * sizeof *l0);
	uint8_t *level = l0 ? mem_realloc(g->level, n) : NULL;
	uint32_t **up = level ? mem_realloc(g->up, n * sizeof *up) : NULL;
	if (l0)
		g->l0 = l0;
	if (level)
		g->level = level;
	if (up)
		g->up = up;
	if (!up)
		return status_set(OMEN_ENOMEM, "out of memory for the index");
	memset(l0 + old * (1 + g->m0), 0, (n - old) * (1 + g->m0) * sizeof *l0);
	for (uint64_t i = old; i < n; i++) {
		level[i] = (uint8_t)draw_level(i, ml);
		up[i] = level[i] ? mem_calloc((size_t)level[i] * (1 + g->m), sizeof **up) : NULL;
		if (level[i] && !up[i]) {
			g->n = i;
			return status_set(OMEN_ENOMEM, "out of memory for the index");
		}
	}
	g->n = n;
	return OMEN_OK;
}

/* Copies the mapped graph's level-0 lists into g (sized for m->n nodes). */
static int load_l0(const hnsw_mapped *m, hnsw_build_graph *g)
{
	size_t rec = 1 + m->m0;
	for (uint64_t i = 0; i < m->n; i++) {
		uint32_t n;
		const unsigned char *l = l0_links(m, i, &n);
		if (n > m->m0)
			return status_set(OMEN_ECORRUPT,
			                  "index links of node %llu are inconsistent",
			                  (unsigned long long)i);
		uint32_t *to = g->l0 + i * rec;
		memset(to, 0, rec * 4);
		to[0] = n;
		for (uint32_t j = 0; j < n; j++)
			to[1 + j] = link_id(m, 0, l, j);
	}
	return OMEN_OK;
}

/* Copies the mapped graph's upper levels into g: each node's level and lists. */
static int load_upper(const hnsw_mapped *m, hnsw_build_graph *g)
{
	for (uint32_t u = 0; u < m->n_up; u++) {
		uint32_t node = ld32(m->up_ids + 4 * (size_t)u);
		size_t off = ld32(m->up_off + 4 * (size_t)u), end = ld32(m->up_off + 4 * (u + 1));
		size_t words = end - off, levels = words / (1 + m->m);
		if (node >= m->n || levels == 0 || levels >= HNSW_MAX_LEVEL)
			return status_set(OMEN_ECORRUPT, "index levels are inconsistent");
		g->level[node] = (uint8_t)levels;
		g->up[node] = mem_alloc(words * 4);
		if (!g->up[node])
			return status_set(OMEN_ENOMEM, "out of memory for the index");
		memcpy(g->up[node], m->up_links + 4 * off, words * 4);
	}
	return OMEN_OK;
}

/* Copies the mapped graph m (and its quantizer) into the in-memory graph g, to extend it. */
static int graph_load(const hnsw_mapped *m, hnsw_build_graph *g)
{
	g->m = m->m;
	g->m0 = m->m0;
	g->efc = m->efc;
	g->entry = m->entry;
	g->max_level = m->max_level;
	g->n = 0;
	g->l0 = mem_alloc(m->n * (1 + m->m0) * sizeof *g->l0);
	g->level = mem_calloc(m->n ? m->n : 1, 1);
	g->up = mem_calloc(m->n ? m->n : 1, sizeof *g->up);
	if (!g->l0 || !g->level || !g->up)
		return status_set(OMEN_ENOMEM, "out of memory for the index");
	g->n = m->n;
	int st = load_l0(m, g);
	if (st == OMEN_OK)
		st = load_upper(m, g);
	if (st == OMEN_OK && g->int8)
		st = hnsw_quant_set(&g->quant, g->dim, m->quant.min, m->quant.step);
	return st;
}

/* Inserts rows first..n-1 that are live in the snapshot, in parallel, reporting progress. */
static int insert_all(builder *b, uint64_t first, const omen_index_params *p)
{
	uint64_t n = b->g.n, total = n - first;
	_Atomic uint64_t done = 0;
	uint64_t start = first;
	for (; b->empty && start < n; start++) /* the first node alone: it becomes the entry */
		if (!snap_tomb(b->s, start))
			insert(b, NULL, (uint32_t)start);
	int nthreads = p->threads > 0 ? p->threads : omp_get_max_threads(), failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
	{
		hnsw_scratch *x = mem_calloc(1, sizeof *x);
		failed = !x;
		uint64_t next_report = 0;
#pragma omp for schedule(dynamic, 64)
		for (uint64_t r = start; r < n; r++) {
			if (!failed &&
			    atomic_load_explicit(&b->s->c->db->cancel, memory_order_relaxed))
				failed = 2;
			if (!failed && !snap_tomb(b->s, r))
				failed = !insert(b, x, (uint32_t)r);
			uint64_t d = atomic_fetch_add_explicit(&done, 1, memory_order_relaxed) + 1;
			if (p->progress && omp_get_thread_num() == 0 && d >= next_report) {
				p->progress(p->progress_ctx, d + (start - first), total);
				next_report = d + total / 100 + 1;
			}
		}
		hnsw_scratch_free(x);
	}
	if (p->progress)
		p->progress(p->progress_ctx, total, total);
	if (failed & 2)
		return status_set(OMEN_EBUSY, "index build cancelled: the database is closing");
	return failed ? status_set(OMEN_ENOMEM, "out of memory while building the index") : OMEN_OK;
}

/* ---- repair: every live node reachable ---- */

/* Marks in seen[] every node reachable from `from` over all levels (breadth first). */
static void mark_reach(const hnsw_build_graph *g, uint32_t from, uint8_t *seen, uint32_t *queue)
{
	uint64_t head = 0, tail = 0;
	if (seen[from])
		return;
	seen[from] = 1;
	queue[tail++] = from;
	while (head < tail) {
		uint32_t node = queue[head++];
		for (uint32_t lc = 0; lc <= g->level[node]; lc++) {
			const uint32_t *l = mem_links(g, node, lc);
			for (uint32_t i = 0; i < l[0]; i++)
				if (!seen[l[1 + i]]) {
					seen[l[1 + i]] = 1;
					queue[tail++] = l[1 + i];
				}
		}
	}
}

/* The node among c[0..n) to link node from: the closest reachable one with a free level-0
 * slot, else the closest reachable one; UINT32_MAX when none is reachable. */
static uint32_t adopter(const hnsw_build_graph *g, uint32_t node, const hitem *c, size_t n,
                        const uint8_t *seen)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].id != node && seen[c[i].id] && mem_links(g, c[i].id, 0)[0] < g->m0)
			return c[i].id;
	for (size_t i = 0; i < n; i++)
		if (c[i].id != node && seen[c[i].id])
			return c[i].id;
	return UINT32_MAX;
}

/* Gives node an in-link on level 0 from the closest reachable node with a free slot, found by a
 * search for node's own vector; the farthest link of the closest one when none has room. */
static bool adopt(builder *b, hnsw_scratch *x, uint32_t node, const uint8_t *seen)
{
	hnsw_build_graph *g = &b->g;
	const float *qv = snap_vec(b->s, node);
	float d = qdist(&b->q, qv, g->entry);
	uint32_t ep = greedy(b, qv, (uint32_t)g->entry, &d, g->max_level, 0);
	size_t n;
	if (!layer_search(b, x, qv, ep, d, g->efc, 0, &n))
		return false;
	uint32_t parent = adopter(g, node, x->sel, n, seen);
	if (parent == UINT32_MAX)
		return true; /* nothing reachable near it: left for check to report */
	uint32_t *l = mem_links(g, parent, 0);
	if (l[0] < g->m0)
		l[1 + l[0]++] = node;
	else
		l[g->m0] = node;
	return true;
}

/* Heuristic pruning can leave a node without in-links, unreachable from the entry point. This
 * pass finds such live nodes and links each from a reachable neighbour, so that every live
 * point can be found (and omen_check passes). Runs single-threaded; few nodes need it. */
static int repair(builder *b)
{
	hnsw_build_graph *g = &b->g;
	uint8_t *seen = mem_calloc(g->n ? g->n : 1, 1);
	uint32_t *queue = mem_alloc((g->n ? g->n : 1) * sizeof *queue);
	hnsw_scratch *x = mem_calloc(1, sizeof *x);
	int st = seen && queue && x ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK && !b->empty)
		mark_reach(g, (uint32_t)g->entry, seen, queue);
	for (uint64_t i = 0; st == OMEN_OK && !b->empty && i < g->n; i++) {
		if (seen[i] || snap_tomb(b->s, i))
			continue;
		if (!adopt(b, x, (uint32_t)i, seen))
			st = status_set(OMEN_ENOMEM, "out of memory");
		mark_reach(g, (uint32_t)i, seen, queue);
	}
	mem_free(seen);
	mem_free(queue);
	hnsw_scratch_free(x);
	return st;
}

/* ---- omen_build_index for HNSW ---- */

/* Starts b->g from the persisted graph when its parameters match p and it covers no more rows
 * than the snapshot (an extension), else empty; *first: the first row to insert. */
static int graph_start(builder *b, MDB_txn *txn, const omen_index_params *p, uint64_t *first)
{
	hnsw_mapped mapped = {0};
	int st = hnsw_map(b->s->c, txn, &mapped);
	*first = 0;
	if (st == OMEN_OK && mapped.m == p->m && mapped.efc == p->ef_construction &&
	    mapped.int8 == b->g.int8 && mapped.n <= b->s->rec.rows) {
		st = graph_load(&mapped, &b->g);
		*first = mapped.n;
		b->empty = mapped.n == 0;
	} else if (st == OMEN_OK || st == OMEN_ENOTFOUND) {
		st = OMEN_OK;
		b->g.m = p->m;
		b->g.m0 = 2 * p->m;
		b->g.efc = p->ef_construction;
		b->empty = true;
	}
	hnsw_mapped_free(&mapped);
	return st;
}

/* Builds or extends the graph over the snapshot's rows into b->g. */
static int build_graph(builder *b, MDB_txn *txn, const omen_index_params *p)
{
	uint64_t first, n = b->s->rec.rows;
	if (n > HNSW_MAX_NODES)
		return status_set(OMEN_EINVAL,
		                  "collection '%s': %llu rows, an HNSW index holds at most %u "
		                  "(spread the collection over shards)",
		                  b->s->c->name, (unsigned long long)n, HNSW_MAX_NODES);
	b->g.dim = b->s->c->dim;
	b->g.int8 = p->int8 != 0;
	int st = graph_start(b, txn, p, &first);
	if (st == OMEN_OK)
		st = graph_alloc(&b->g, n, b->ml);
	if (st == OMEN_OK)
		st = insert_all(b, first, p);
	if (st == OMEN_OK)
		st = repair(b);
	if (st == OMEN_OK && b->g.int8 && !b->g.quant.min)
		st = hnsw_quant_train(&b->g.quant, b->s, n);
	if (st == OMEN_OK && b->g.int8)
		st = hnsw_quant_encode(&b->g.quant, b->s, n, &b->g.codes);
	return st;
}

int hnsw_build(eng_coll *c, const omen_index_params *p)
{
	builder b = {.ml = 1.0 / log((double)p->m)};
	b.locks = mem_calloc(LOCK_STRIPES, sizeof *b.locks);
	if (!b.locks)
		return status_set(OMEN_ENOMEM, "out of memory");
	pthread_mutex_init(&b.entry_mu, NULL);
	MDB_txn *txn;
	snapshot s;
	int st = store_read_begin(c->db->st, &txn);
	if (st == OMEN_OK) {
		st = snap_open(c, txn, NULL, &s);
		if (st == OMEN_OK) {
			b.s = &s;
			b.q = hnsw_qctx_make(&s);
			st = build_graph(&b, txn, p);
			snap_close(&s);
		}
		store_read_end(c->db->st, txn);
	}
	if (st == OMEN_OK)
		st = hnsw_persist(c, &b.g);
	build_graph_free(&b.g);
	pthread_mutex_destroy(&b.entry_mu);
	mem_free(b.locks);
	return st;
}
