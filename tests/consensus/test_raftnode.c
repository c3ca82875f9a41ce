/*
 * Tests of the Raft node (consensus/raftnode.c): its raft_fsm driven through raft's in-memory
 * fixture (replication, a killed leader, a partition, a snapshot installed on a lagging
 * server), then real raft_uv nodes on loopback (follower refusal, failover, restarts without
 * loss or double application, transfer, a node added and removed, callers that time out or
 * wait across cons_stop, start-up errors).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include <raft.h>
#include <raft/fixture.h>

#include "consensus/consensus.h"
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "fixture.h"

/* ---- raft's in-memory fixture, through the raft_fsm of raftnode.c ---- */

#define FX_N 3

typedef struct fxc {
	struct raft_fixture fx;
	struct raft_fsm rf[FX_N];
	tfsm t[FX_N];
} fxc;

typedef struct fx_req {
	struct raft_apply req; /* first */
	fsm *f;
	int done, status;
	fsm_result res;
	uint64_t applied_then; /* the applying fsm's last applied index inside the callback */
} fx_req;

static void fx_open(fxc *c, unsigned threshold, unsigned trailing)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(raft_fixture_initialize(&c->fx), 0);
	for (unsigned i = 0; i < FX_N; i++) {
		tf_open(&c->t[i], "fx");
		assert_omen_ok(cons_fsm_init(&c->rf[i], c->t[i].f, &c->fx.servers[i].raft));
		assert_int_equal(raft_fixture_grow(&c->fx, &c->rf[i]), 0);
		assert_ptr_equal(raft_fixture_get(&c->fx, i), &c->fx.servers[i].raft);
		if (threshold) {
			raft_set_snapshot_threshold(raft_fixture_get(&c->fx, i), threshold);
			raft_set_snapshot_trailing(raft_fixture_get(&c->fx, i), trailing);
		}
	}
	struct raft_configuration conf;
	assert_int_equal(raft_fixture_configuration(&c->fx, FX_N, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&c->fx, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&c->fx), 0);
	raft_fixture_elect(&c->fx, 0);
}

static void fx_close(fxc *c)
{
	raft_fixture_close(&c->fx);
	for (unsigned i = 0; i < FX_N; i++) {
		cons_fsm_close(&c->rf[i]);
		tf_close(&c->t[i]);
	}
}

static void fx_applied(struct raft_apply *req, int status, void *result)
{
	fx_req *r = (fx_req *)req;
	r->done = 1;
	r->status = status;
	if (status == 0) {
		r->res = *(const fsm_result *)result;
		r->applied_then = fsm_last_applied(r->f);
	}
}

static bool fx_is_done(struct raft_fixture *f, void *arg)
{
	(void)f;
	return ((fx_req *)arg)->done;
}

static void fx_submit(fxc *c, unsigned i, meta_cmd cmd, fx_req *r)
{
	memset(r, 0, sizeof *r);
	r->f = c->t[i].f;
	struct raft_buffer b;
	assert_omen_ok(cmd_encode(&cmd, 1, &b.base, &b.len));
	assert_int_equal(raft_apply(raft_fixture_get(&c->fx, i), &r->req, &b, 1, fx_applied), 0);
}

/* Applies cmd through server i (the leader) and returns its result. */
static fsm_result fx_apply(fxc *c, unsigned i, meta_cmd cmd)
{
	fx_req r;
	fx_submit(c, i, cmd, &r);
	assert_true(raft_fixture_step_until(&c->fx, fx_is_done, &r, 10000));
	assert_int_equal(r.status, 0);
	/* The index the raft_fsm gave the entry (last_applied + 1) is the entry's own. */
	assert_int_equal(r.applied_then, r.req.index);
	return r.res;
}

/* Steps until every live server applied everything the leader applied; all agree. */
static void fx_converge(fxc *c)
{
	unsigned l = FX_N; /* the leader of the highest term (a revived one may think it leads) */
	for (unsigned i = 0; i < FX_N; i++) {
		struct raft *r = raft_fixture_get(&c->fx, i);
		if (raft_fixture_alive(&c->fx, i) && raft_state(r) == RAFT_LEADER &&
		    (l == FX_N || r->current_term > raft_fixture_get(&c->fx, l)->current_term))
			l = i;
	}
	assert_true(l < FX_N);
	raft_index idx = raft_last_applied(raft_fixture_get(&c->fx, l));
	for (unsigned i = 0; i < FX_N; i++)
		if (raft_fixture_alive(&c->fx, i))
			assert_true(raft_fixture_step_until_applied(&c->fx, i, idx, 10000));
	for (unsigned i = 0; i < FX_N; i++)
		if (raft_fixture_alive(&c->fx, i))
			assert_same_state(c->t[l].f, c->t[i].f);
}

static void fx_setup_cluster(fxc *c, unsigned l)
{
	assert_int_equal(fx_apply(c, l, c_node(11, "tcp://s11:1", 2, 0)).status, 0);
	assert_int_equal(fx_apply(c, l, c_node(12, "tcp://s12:1", 2, 0)).status, 0);
	fsm_result r = fx_apply(c, l, c_coll("docs", 16, 0, 4));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.epoch, 1);
	assert_int_equal(fx_apply(c, l, c_coll("docs", 16, 0, 4)).status, OMEN_EEXIST);
	r = fx_apply(c, l, c_ids("docs", 100));
	assert_int_equal(r.value, 0);
}

static bool fx_majority_leader(struct raft_fixture *f, void *arg)
{
	(void)arg;
	return raft_state(raft_fixture_get(f, 1)) == RAFT_LEADER ||
	       raft_state(raft_fixture_get(f, 2)) == RAFT_LEADER;
}

static void test_fixture_replicate(void **state)
{
	(void)state;
	fxc c;
	fx_open(&c, 0, 0);
	assert_int_equal(raft_fixture_leader_index(&c.fx), 0);
	fx_setup_cluster(&c, 0);
	fx_converge(&c);
	/* Bytes that do not decode still take their index, as EPROTO, everywhere. */
	fx_req r;
	memset(&r, 0, sizeof r);
	r.f = c.t[0].f;
	struct raft_buffer b = {raft_malloc(3), 3};
	memcpy(b.base, "\x81\xa1z", 3);
	assert_int_equal(raft_apply(raft_fixture_get(&c.fx, 0), &r.req, &b, 1, fx_applied), 0);
	assert_true(raft_fixture_step_until(&c.fx, fx_is_done, &r, 10000));
	assert_int_equal(r.res.status, OMEN_EPROTO);
	assert_int_equal(r.applied_then, r.req.index);
	fx_converge(&c);
	/* Kill the leader; another is elected and takes commands; the old one catches up. */
	raft_fixture_kill(&c.fx, 0);
	assert_true(raft_fixture_step_until(&c.fx, fx_majority_leader, NULL, 20000));
	unsigned l = raft_state(raft_fixture_get(&c.fx, 1)) == RAFT_LEADER ? 1 : 2;
	fsm_result res = fx_apply(&c, l, c_ids("docs", 5));
	assert_int_equal(res.value, 100);
	assert_int_equal(fx_apply(&c, l, c_assign("docs", 1, 11)).status, 0);
	assert_int_equal(fx_apply(&c, l, c_named(CMD_COLL_DROP, "docs")).status, 0);
	assert_int_equal(fx_apply(&c, l, c_coll("docs", 8, 2, 3)).status, 0);
	fx_converge(&c);
	raft_fixture_revive(&c.fx, 0);
	res = fx_apply(&c, l, c_ids("docs", 1));
	assert_int_equal(res.value, 0);
	fx_converge(&c);
	assert_int_equal(fsm_epoch(c.t[0].f), 4);
	fx_close(&c);
}

static bool fx_both_applied(struct raft_fixture *f, void *arg)
{
	raft_index idx = *(raft_index *)arg;
	return raft_last_applied(raft_fixture_get(f, 1)) >= idx &&
	       raft_last_applied(raft_fixture_get(f, 2)) >= idx;
}

static void test_fixture_partition(void **state)
{
	(void)state;
	fxc c;
	fx_open(&c, 0, 0);
	fx_setup_cluster(&c, 0);
	fx_converge(&c);
	uint64_t applied0 = fsm_last_applied(c.t[0].f);
	/* Cut the leader off from both followers. */
	for (unsigned j = 1; j < FX_N; j++) {
		raft_fixture_saturate(&c.fx, 0, j);
		raft_fixture_saturate(&c.fx, j, 0);
	}
	fx_req lost;
	fx_submit(&c, 0, c_coll("lost", 4, 0, 1), &lost);
	assert_true(raft_fixture_step_until(&c.fx, fx_majority_leader, NULL, 20000));
	unsigned l = raft_state(raft_fixture_get(&c.fx, 1)) == RAFT_LEADER ? 1 : 2;
	/* The minority committed nothing. */
	assert_int_equal(fsm_last_applied(c.t[0].f), applied0);
	/* The majority commits. */
	fx_req won;
	fx_submit(&c, l, c_coll("won", 4, 0, 2), &won);
	assert_true(raft_fixture_step_until(&c.fx, fx_is_done, &won, 10000));
	assert_int_equal(won.status, 0);
	assert_int_equal(won.res.status, 0);
	raft_index idx = won.req.index;
	assert_true(raft_fixture_step_until(&c.fx, fx_both_applied, &idx, 10000));
	assert_same_state(c.t[1].f, c.t[2].f);
	meta_coll mc;
	assert_omen_status(fsm_coll_get(c.t[0].f, "won", &mc), OMEN_ENOTFOUND);
	/* Heal: the old leader's entry is dropped, its request failed, everyone agrees. */
	for (unsigned j = 1; j < FX_N; j++) {
		raft_fixture_desaturate(&c.fx, 0, j);
		raft_fixture_desaturate(&c.fx, j, 0);
	}
	raft_fixture_step_until_elapsed(&c.fx, 3000);
	assert_true(lost.done);
	assert_int_not_equal(lost.status, 0);
	assert_true(raft_fixture_step_until_has_leader(&c.fx, 20000));
	fx_converge(&c);
	for (unsigned i = 0; i < FX_N; i++) {
		assert_omen_status(fsm_coll_get(c.t[i].f, "lost", &mc), OMEN_ENOTFOUND);
		assert_omen_ok(fsm_coll_get(c.t[i].f, "won", &mc));
	}
	fx_close(&c);
}

static void test_fixture_snapshot(void **state)
{
	(void)state;
	fxc c;
	fx_open(&c, 4, 2);
	fx_setup_cluster(&c, 0);
	fx_converge(&c);
	raft_fixture_kill(&c.fx, 2);
	uint64_t behind = raft_last_applied(raft_fixture_get(&c.fx, 2));
	uint64_t first = 0;
	for (int k = 0; k < 30; k++) {
		fsm_result r = fx_apply(&c, 0, c_ids("docs", 3));
		if (k == 0)
			first = r.value;
		assert_int_equal(r.value, first + 3 * (uint64_t)k);
	}
	assert_int_equal(fx_apply(&c, 0, c_assign("docs", 3, 11)).status, 0);
	/* The leader's log no longer holds what server 2 lacks: it must install a snapshot. */
	struct raft *lr = raft_fixture_get(&c.fx, 0);
	assert_true(lr->log.snapshot.last_index > 0);
	assert_true(lr->log.offset + 1 > behind + 1);
	raft_fixture_revive(&c.fx, 2);
	fx_converge(&c);
	assert_true(fsm_last_applied(c.t[2].f) > behind);
	/* And carries on from there. */
	fsm_result r = fx_apply(&c, 0, c_ids("docs", 1));
	assert_int_equal(r.value, first + 90);
	fx_converge(&c);
	fx_close(&c);
}

/* ---- real raft_uv nodes on loopback ---- */

#define UV_N         4
#define ELECTION_MS  300
#define HEARTBEAT_MS 50

typedef struct unode {
	uint64_t id;
	char addr[32];
	char rdir[600], fdir[600];
	fsm *f;
	cons *c;
} unode;

typedef struct ucl {
	char base[512];
	unode n[UV_N];
	cons_peer peers[3];
} ucl;

/* A TCP socket bound to a loopback port the system chose, which goes into *port. */
static int loopback_bind(int *port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return s;
}

/* A loopback port that was free a moment ago. */
static int free_port(void)
{
	int port;
	close(loopback_bind(&port));
	return port;
}

static void un_start(ucl *u, unsigned i, int bootstrap)
{
	unode *n = &u->n[i];
	if (!n->f)
		assert_omen_ok(fsm_open(n->fdir, &n->f));
	cons_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.id = n->id;
	cfg.raft_addr = n->addr;
	cfg.dir = n->rdir;
	cfg.peers = bootstrap ? u->peers : NULL;
	cfg.npeers = bootstrap ? 3 : 0;
	cfg.election_ms = ELECTION_MS;
	cfg.heartbeat_ms = HEARTBEAT_MS;
	cfg.snapshot_threshold = 8;
	cfg.snapshot_trailing = 4;
	assert_omen_ok(cons_start(&cfg, n->f, &n->c));
}

static void un_stop(ucl *u, unsigned i, int close_fsm)
{
	cons_stop(u->n[i].c);
	u->n[i].c = NULL;
	if (close_fsm) {
		fsm_close(u->n[i].f);
		u->n[i].f = NULL;
	}
}

static void ucl_open(ucl *u)
{
	memset(u, 0, sizeof *u);
	char base[512];
	tmp_dir(base, sizeof base, "uv");
	memcpy(u->base, base, sizeof base);
	for (unsigned i = 0; i < UV_N; i++) {
		unode *n = &u->n[i];
		n->id = i + 1;
		snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", free_port());
		snprintf(n->rdir, sizeof n->rdir, "%s/raft%u", base, i + 1);
		snprintf(n->fdir, sizeof n->fdir, "%s/fsm%u", base, i + 1);
		if (i < 3) {
			u->peers[i].id = n->id;
			u->peers[i].raft_addr = n->addr;
		}
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits until every running node names the same leader, which says it leads. */
static unsigned wait_leader(ucl *u, double timeout)
{
	double end = now_s() + timeout;
	while (now_s() < end) {
		uint64_t l = 0;
		int agree = 1, running = 0;
		for (unsigned i = 0; i < UV_N; i++) {
			if (!u->n[i].c)
				continue;
			running++;
			uint64_t li = cons_leader(u->n[i].c);
			if (li == 0 || (l && li != l))
				agree = 0;
			l = li;
		}
		if (running && agree && l && u->n[l - 1].c && cons_is_leader(u->n[l - 1].c))
			return (unsigned)(l - 1);
		usleep(10000);
	}
	fail_msg("no leader within %.1f s", timeout);
	return 0;
}

/* Waits until node i's state has applied at least index. */
static void wait_applied(ucl *u, unsigned i, uint64_t index, double timeout)
{
	double end = now_s() + timeout;
	while (fsm_last_applied(u->n[i].f) < index) {
		if (now_s() > end)
			fail_msg("node %u applied %llu, not %llu", i + 1,
			         (unsigned long long)fsm_last_applied(u->n[i].f),
			         (unsigned long long)index);
		usleep(5000);
	}
}

/* Applies through the leader, retrying while leadership moves. */
static fsm_result u_apply(ucl *u, meta_cmd cmd)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		unsigned l = wait_leader(u, 10);
		fsm_result r;
		uint64_t leader = 0;
		int st = cons_apply(u->n[l].c, &cmd, 5000, &r, &leader);
		if (st == OMEN_OK)
			return r;
		assert_int_equal(st, OMEN_EBUSY);
		usleep(20000);
	}
	fail_msg("no leader took the command");
	fsm_result none = {0, 0, 0};
	return none;
}

static void wait_all_applied(ucl *u, unsigned l)
{
	uint64_t idx = fsm_last_applied(u->n[l].f);
	for (unsigned i = 0; i < UV_N; i++)
		if (u->n[i].c) {
			wait_applied(u, i, idx, 10);
			assert_same_state(u->n[l].f, u->n[i].f);
		}
}

typedef struct waiter {
	cons *c;
	uint32_t timeout_ms;
	int entered, status, done;
	double waited;
} waiter;

static void *wait_apply(void *arg)
{
	waiter *w = arg;
	meta_cmd cmd = c_named(CMD_NOOP, "");
	fsm_result r;
	uint64_t leader;
	double t = now_s();
	__atomic_store_n(&w->entered, 1, __ATOMIC_RELEASE);
	w->status = cons_apply(w->c, &cmd, w->timeout_ms, &r, &leader);
	w->waited = now_s() - t;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_uv_cluster(void **state)
{
	(void)state;
	ucl u;
	ucl_open(&u);
	double t0 = now_s();
	for (unsigned i = 0; i < 3; i++)
		un_start(&u, i, 1);
	unsigned l = wait_leader(&u, 10 * ELECTION_MS / 1000.0 + 5);
	fprintf(stderr, "# leader %u after %.2f s\n", l + 1, now_s() - t0);
	/* A follower refuses with the leader's id. */
	unsigned fo = (l + 1) % 3;
	meta_cmd cmd = c_node(101, "tcp://s101:1", 2, 0);
	fsm_result r;
	uint64_t leader = 0;
	assert_omen_status(cons_apply(u.n[fo].c, &cmd, 2000, &r, &leader), OMEN_EBUSY);
	assert_int_equal(leader, u.n[l].id);
	assert_omen_status(cons_add(u.n[fo].c, 9, "127.0.0.1:1", 2000, &leader), OMEN_EBUSY);
	assert_int_equal(leader, u.n[l].id);
	/* The leader commits; every state machine shows it. */
	assert_omen_ok(cons_apply(u.n[l].c, &cmd, 5000, &r, &leader));
	assert_int_equal(r.status, 0);
	assert_int_equal(u_apply(&u, c_node(102, "tcp://s102:1", 2, 0)).status, 0);
	r = u_apply(&u, c_coll("docs", 32, 0, 6));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.epoch, 1);
	assert_int_equal(u_apply(&u, c_coll("docs", 32, 0, 6)).status, OMEN_EEXIST);
	uint64_t next = 0;
	for (int k = 0; k < 5; k++) {
		r = u_apply(&u, c_ids("docs", 10));
		assert_int_equal(r.status, 0);
		assert_int_equal(r.value, next);
		next += 10;
	}
	wait_all_applied(&u, l);
	/* Stop the leader: the two left elect one and take commands. */
	un_stop(&u, l, 0);
	unsigned old = l;
	l = wait_leader(&u, 10);
	assert_int_not_equal(l, old);
	for (int k = 0; k < 12; k++) {
		r = u_apply(&u, c_ids("docs", 7));
		assert_int_equal(r.value, next);
		next += 7;
	}
	assert_int_equal(u_apply(&u, c_assign("docs", 2, 101)).status, 0);
	wait_all_applied(&u, l);
	/* Restart it on its directories: it catches up (the others took snapshots meanwhile). */
	un_start(&u, old, 1);
	l = wait_leader(&u, 10);
	r = u_apply(&u, c_ids("docs", 1));
	assert_int_equal(r.value, next);
	next += 1;
	wait_all_applied(&u, l);
	/* Restart all three: nothing lost, nothing applied twice. */
	meta_coll before;
	assert_omen_ok(fsm_coll_get(u.n[l].f, "docs", &before));
	assert_int_equal(before.next_id, next);
	uint64_t epoch = fsm_epoch(u.n[l].f);
	for (unsigned i = 0; i < 3; i++)
		un_stop(&u, i, 1);
	for (unsigned i = 0; i < 3; i++)
		un_start(&u, i, 1);
	l = wait_leader(&u, 10);
	for (unsigned i = 0; i < 3; i++) {
		meta_coll c;
		assert_omen_ok(fsm_coll_get(u.n[i].f, "docs", &c));
		assert_int_equal(c.next_id, next);
		assert_int_equal(fsm_epoch(u.n[i].f), epoch);
	}
	r = u_apply(&u, c_ids("docs", 3));
	assert_int_equal(r.value, next);
	next += 3;
	wait_all_applied(&u, l);
	/* Leadership transfer. */
	unsigned to = (l + 1) % 3;
	assert_omen_ok(cons_transfer(u.n[l].c, u.n[to].id, 5000, &leader));
	l = wait_leader(&u, 10);
	assert_int_equal(l, to);
	/* A fourth node joins as a voter, follows, and leaves. */
	un_start(&u, 3, 0);
	assert_omen_ok(cons_add(u.n[l].c, 4, u.n[3].addr, 10000, &leader));
	r = u_apply(&u, c_ids("docs", 2));
	assert_int_equal(r.value, next);
	next += 2;
	wait_all_applied(&u, l);
	l = wait_leader(&u, 10);
	assert_omen_ok(cons_add(u.n[l].c, 4, u.n[3].addr, 5000, &leader)); /* already a voter */
	assert_omen_status(cons_add(u.n[l].c, 4, "127.0.0.1:1", 5000, &leader), OMEN_EEXIST);
	assert_omen_ok(cons_remove(u.n[l].c, 4, 10000, &leader));
	un_stop(&u, 3, 1);
	r = u_apply(&u, c_ids("docs", 1));
	assert_int_equal(r.value, next);
	wait_all_applied(&u, wait_leader(&u, 10));
	/* Without a majority: one caller times out (its request is completed later by the loop),
	 * another is still waiting when the node stops: it gets its answer, cons_stop waits for it,
	 * and nothing is used after it is freed. */
	l = wait_leader(&u, 10);
	for (unsigned i = 0; i < 3; i++)
		if (i != l)
			un_stop(&u, i, 0);
	waiter w[2] = {{u.n[l].c, 50, 0, -1, 0, 0}, {u.n[l].c, 5000, 0, -1, 0, 0}};
	pthread_t th[2];
	for (int k = 0; k < 2; k++)
		pthread_create(&th[k], NULL, wait_apply, &w[k]);
	for (int k = 0; k < 2; k++)
		while (!__atomic_load_n(&w[k].entered, __ATOMIC_ACQUIRE))
			usleep(1000);
	usleep(100000);
	int blocked = !__atomic_load_n(&w[1].done, __ATOMIC_ACQUIRE);
	double ts = now_s();
	un_stop(&u, l, 0);
	for (int k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
		assert_true(w[k].status == OMEN_EUNAVAIL || w[k].status == OMEN_EBUSY);
	}
	assert_true(now_s() - ts < 4.0);
	fprintf(stderr, "# stopped with a caller waiting: %s\n", blocked ? "yes" : "no");
	for (unsigned i = 0; i < UV_N; i++)
		fsm_close(u.n[i].f);
	fprintf(stderr, "# cluster test %.2f s\n", now_s() - t0);
	rm_tree(u.base);
}

static void test_uv_errors(void **state)
{
	(void)state;
	char base[512], rdir[600], fdir[600];
	tmp_dir(base, sizeof base, "uverr");
	snprintf(rdir, sizeof rdir, "%s/raft", base);
	snprintf(fdir, sizeof fdir, "%s/fsm", base);
	fsm *f;
	assert_omen_ok(fsm_open(fdir, &f));
	cons *c;
	cons_peer peers[1] = {{2, "127.0.0.1:1"}};
	cons_config cfg = {1, "127.0.0.1:1", rdir, peers, 1, 0, 0, 0, 0};
	assert_omen_status(cons_start(&cfg, f, &c), OMEN_EINVAL); /* not among the peers */
	cfg.id = 0;
	assert_omen_status(cons_start(&cfg, f, &c), OMEN_EINVAL);
	/* A port already taken: raft_start fails and everything is released. */
	int port, s = loopback_bind(&port);
	assert_int_equal(listen(s, 1), 0);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	cons_peer self[1] = {{1, addr}};
	cons_config cfg2 = {1, addr, rdir, self, 1, 200, 50, 0, 0};
	int st = cons_start(&cfg2, f, &c);
	assert_int_not_equal(st, OMEN_OK);
	close(s);
	/* The same node once the port is free: a single voter elects itself. */
	st = cons_start(&cfg2, f, &c);
	assert_omen_ok(st);
	double end = now_s() + 10;
	while (!cons_is_leader(c) && now_s() < end)
		usleep(10000);
	assert_true(cons_is_leader(c));
	meta_cmd cmd = c_node(5, "tcp://s5:1", 2, 0);
	fsm_result r;
	uint64_t leader;
	assert_omen_ok(cons_apply(c, &cmd, 5000, &r, &leader));
	assert_int_equal(fsm_last_applied(f) > 0, 1);
	cons_stop(c);
	cons_stop(NULL);
	fsm_close(f);
	fsm_close(NULL);
	rm_tree(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* raft_uv writes to sockets that peers close */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixture_replicate), cmocka_unit_test(test_fixture_partition),
	    cmocka_unit_test(test_fixture_snapshot),  cmocka_unit_test(test_uv_errors),
	    cmocka_unit_test(test_uv_cluster),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
