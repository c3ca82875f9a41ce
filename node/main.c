/*
 * omendb-node: runs a coordinator, a shard service, or both, as its configuration file says.
 * SIGTERM or SIGINT stops it cleanly: no new requests are taken, those in flight finish and
 * send their replies, and every database is closed.
 */
#include <nng/nng.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/coordinator.h"
#include "net/net.h"
#include "node/node.h"
#include "shard/shard.h"

static int usage(void)
{
	fprintf(stderr, "usage: omendb-node CONFIG.json\n"
	                "       omendb-node --check CONFIG.json   (check the file and exit)\n"
	                "See docs/CLUSTER.md for the configuration keys.\n");
	return 2;
}

/* Starts the shard service under DATA/shard and logs where it listens and, for a node that
 * registers itself, the id it registers under (kept in DATA/shard/node.id). */
static int start_shard(const node_config *cfg, shard_node **out)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/shard", cfg->data);
	shard_config sc = {dir,
	                   cfg->shard_listen,
	                   cfg->token,
	                   cfg->max_message,
	                   cfg->workers,
	                   cfg->relaxed,
	                   (const char *const *)cfg->shard_coordinators,
	                   cfg->nshard_coordinators,
	                   cfg->advertise,
	                   0};
	shard_node *sh;
	int st = shard_start(&sc, &sh);
	if (st != OMEN_OK)
		return st;
	if (shard_id(sh))
		log_msg(LOG_INFO,
		        "shard node %llu listening on %s (port %d), registering with %zu "
		        "coordinators",
		        (unsigned long long)shard_id(sh), cfg->shard_listen, shard_port(sh),
		        cfg->nshard_coordinators);
	else
		log_msg(LOG_INFO, "shard listening on %s (port %d)", cfg->shard_listen,
		        shard_port(sh));
	*out = sh;
	return OMEN_OK;
}

static int run(const node_config *cfg)
{
	shard_node *sh = NULL;
	coord *co = NULL;
	int st = OMEN_OK;
	if (dir_create(cfg->data) != OMEN_OK) {
		log_msg(LOG_ERROR, "cannot create the data directory: %s", status_msg());
		return 1;
	}
	if (cfg->shard)
		st = start_shard(cfg, &sh);
	if (st == OMEN_OK && cfg->coordinator) {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/coordinator", cfg->data);
		coord_peer *peers = calloc(cfg->npeers ? cfg->npeers : 1, sizeof *peers);
		for (size_t i = 0; peers && i < cfg->npeers; i++)
			peers[i] =
			    (coord_peer){cfg->peer_ids[i], cfg->peer_raft[i], cfg->peer_listen[i]};
		coord_config cc = {dir,
		                   cfg->coord_listen,
		                   cfg->coord_http,
		                   (const char *const *)cfg->shards,
		                   cfg->nshards,
		                   cfg->token,
		                   cfg->deadline_ms,
		                   cfg->max_message,
		                   cfg->workers,
		                   cfg->default_shards,
		                   cfg->raft_id,
		                   cfg->raft,
		                   peers,
		                   cfg->npeers,
		                   cfg->election_ms,
		                   cfg->raft_join,
		                   cfg->replica_grace_ms};
		if ((st = coord_start(&cc, &co)) == OMEN_OK)
			log_msg(
			    LOG_INFO,
			    "coordinator listening on %s (port %d), http %s, %zu shard nodes, %s",
			    cfg->coord_listen, coord_port(co),
			    cfg->coord_http ? cfg->coord_http : "off", cfg->nshards,
			    cfg->raft_id ? "Raft" : "no Raft");
		free(peers); /* coord_start copied it */
	}
	if (st != OMEN_OK) {
		log_msg(LOG_ERROR, "cannot start: %s", status_msg());
	} else {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		int sig = 0;
		sigwait(&set, &sig);
		log_msg(LOG_INFO, "%s: stopping (requests in flight finish)", strsignal(sig));
	}
	coord_stop(co);
	shard_stop(sh);
	if (st == OMEN_OK)
		log_msg(LOG_INFO, "stopped");
	return st == OMEN_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	int check = argc == 3 && strcmp(argv[1], "--check") == 0;
	if (argc != 2 && !check)
		return usage();
	node_config cfg;
	char err[512];
	if (node_config_load(argv[argc - 1], &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "omendb-node: %s\n", err);
		return 2;
	}
	if (check) {
		node_config_free(&cfg);
		return 0;
	}
	/* Signals are taken by sigwait in the main thread; every thread inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_init(cfg.log_level, cfg.name);
	int rc = run(&cfg);
	node_config_free(&cfg);
	nng_fini();
	return rc;
}
