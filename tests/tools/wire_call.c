/*
 * Sends one wire request to a node and prints the reply: what the tests use to play a step of
 * a shard move by hand (as a leader that died in the middle of it would have left things).
 *
 * usage: wire_call URL OP [name=NAME] [shard=S] [mode=M] [epoch=E] [dim=D] [token=T]
 * prints: "status=N count=C n=N" then one line per name in the reply ("NAME ID FOUND")
 * exit: 0 when the reply's status is OMEN_OK, 1 otherwise, 2 on a usage or transport error
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

static int set_field(wire_req *q, const char *arg)
{
	const char *v = strchr(arg, '=');
	if (!v)
		return -1;
	size_t k = (size_t)(v++ - arg);
	unsigned long long n = strtoull(v, NULL, 10);
	if (k == 4 && strncmp(arg, "name", k) == 0)
		snprintf(q->name, sizeof q->name, "%s", v);
	else if (k == 5 && strncmp(arg, "shard", k) == 0)
		q->shard = (int32_t)n;
	else if (k == 4 && strncmp(arg, "mode", k) == 0)
		q->mode = (uint32_t)n;
	else if (k == 5 && strncmp(arg, "epoch", k) == 0)
		q->epoch = n;
	else if (k == 3 && strncmp(arg, "dim", k) == 0)
		q->dim = (uint32_t)n;
	else if (k == 5 && strncmp(arg, "token", k) == 0)
		q->token = (char *)v;
	else
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: wire_call URL OP [key=value...]\n");
		return 2;
	}
	wire_req q;
	wire_req_init(&q);
	int op = 0;
	while (op < WIRE_OP_COUNT && strcmp(wire_op_name((wire_op)op), argv[2]) != 0)
		op++;
	if (op == WIRE_OP_COUNT) {
		fprintf(stderr, "wire_call: unknown op '%s'\n", argv[2]);
		return 2;
	}
	q.op = (wire_op)op;
	for (int i = 3; i < argc; i++)
		if (set_field(&q, argv[i]) != 0) {
			fprintf(stderr, "wire_call: bad argument '%s'\n", argv[i]);
			return 2;
		}
	peer *p;
	if (peer_open(argv[1], WIRE_MAX_MSG_DEFAULT, &p) != OMEN_OK) {
		fprintf(stderr, "wire_call: cannot open %s\n", argv[1]);
		return 2;
	}
	wire_rep r;
	wire_rep_init(&r);
	int st = peer_request(p, &q, 5000, &r);
	printf("status=%d count=%llu n=%llu\n", st, (unsigned long long)r.count,
	       (unsigned long long)r.n);
	for (uint64_t i = 0; i < r.nnames; i++)
		printf("%s %llu %d\n", r.names[i],
		       r.ids && i < r.n ? (unsigned long long)r.ids[i] : 0ull,
		       r.found && i < r.n ? r.found[i] : -1);
	if (st != OMEN_OK && r.message)
		printf("message=%s\n", r.message);
	wire_rep_free(&r);
	peer_close(p);
	return st == OMEN_OK ? 0 : 1;
}
