/*
 * Sends hostile messages to a running node (coordinator or shard) and checks that each gets an
 * error reply and that the node goes on serving: garbage, a truncated request, a request over
 * the node's size cap, a wrong protocol version, wrong field types, an unknown call, a missing
 * or wrong token. Run by tests/test_cluster.py against nodes started by ops/cluster.
 *
 * usage: wire_probe URL MAX_MESSAGE_BYTES [TOKEN]   (exit 0 when every case behaved)
 */
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

static nng_socket sock;
static int failures;

/* Sends len bytes and decodes the reply into r; returns -1 when no reply came. */
static int roundtrip(const void *buf, size_t len, wire_rep *r)
{
	nng_msg *m;
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, buf, len) != 0)
		return -1;
	if (nng_sendmsg(sock, m, 0) != 0) {
		nng_msg_free(m);
		return -1;
	}
	if (nng_recvmsg(sock, &m, 0) != 0)
		return -1;
	char err[WIRE_ERRLEN];
	int st = wire_rep_decode(nng_msg_body(m), nng_msg_len(m), 1u << 30, r, err);
	nng_msg_free(m);
	if (st != OMEN_OK)
		fprintf(stderr, "undecodable reply: %s\n", err);
	return st == OMEN_OK ? 0 : -1;
}

/* One case: the reply must carry status want (or any error when want < 0). */
static void expect(const char *what, const void *buf, size_t len, int want)
{
	wire_rep r;
	wire_rep_init(&r);
	int got = roundtrip(buf, len, &r) == 0 ? r.status : -100;
	int ok = got != -100 && (want < 0 ? got != OMEN_OK : got == want);
	printf("%-28s status %3d %s%s%s\n", what, got, ok ? "ok" : "FAILED", r.message ? ": " : "",
	       r.message ? r.message : "");
	failures += !ok;
	wire_rep_free(&r);
}

static void health(const char *token)
{
	wire_req q;
	wire_req_init(&q);
	q.op = WIRE_HEALTH;
	q.token = (char *)token;
	void *buf;
	size_t len;
	if (wire_req_encode(&q, &buf, &len) != OMEN_OK)
		exit(2);
	expect("  then a health request", buf, len, OMEN_OK);
	free(buf);
}

/* A msgpack map {"v": version, "op": op, "name": name_int} built by hand. */
static void raw_map(msgpack_sbuffer *sb, int version, const char *op, int name_int)
{
	msgpack_packer pk;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, name_int ? 3 : 2);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_int(&pk, version);
	msgpack_pack_str_with_body(&pk, "op", 2);
	msgpack_pack_str_with_body(&pk, op, strlen(op));
	if (name_int) {
		msgpack_pack_str_with_body(&pk, "name", 4);
		msgpack_pack_int(&pk, 123);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: wire_probe URL MAX_MESSAGE_BYTES [TOKEN]\n");
		return 2;
	}
	const char *token = argc > 3 ? argv[3] : NULL;
	size_t max = strtoull(argv[2], NULL, 10);
	if (nng_req0_open(&sock) != 0 || nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000) != 0 ||
	    nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0 ||
	    nng_dial(sock, argv[1], NULL, 0) != 0) {
		fprintf(stderr, "cannot connect to %s\n", argv[1]);
		return 2;
	}
	expect("garbage", "hello, node", 11, OMEN_EPROTO);
	health(token);
	wire_req q;
	wire_req_init(&q);
	q.op = WIRE_SEARCH;
	strcpy(q.name, "docs");
	q.n = 1, q.dim = 4, q.k = 3;
	float v[4] = {1, 2, 3, 4};
	q.vectors = v;
	q.token = (char *)token;
	void *buf;
	size_t len;
	if (wire_req_encode(&q, &buf, &len) != OMEN_OK)
		return 2;
	for (size_t cut = 1; cut < len; cut += (len / 7) + 1)
		expect("truncated", buf, cut, OMEN_EPROTO);
	free(buf);
	health(token);
	char *big = calloc(1, max + 4096);
	expect("oversized", big, max + 4096, OMEN_ELIMIT);
	free(big);
	health(token);
	msgpack_sbuffer sb;
	raw_map(&sb, 99, "health", 0);
	expect("wrong version", sb.data, sb.size, OMEN_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	raw_map(&sb, WIRE_VERSION, "stats", 1);
	expect("wrong type", sb.data, sb.size, OMEN_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	raw_map(&sb, WIRE_VERSION, "explode", 0);
	expect("unknown call", sb.data, sb.size, OMEN_EPROTO);
	msgpack_sbuffer_destroy(&sb);
	if (token) {
		raw_map(&sb, WIRE_VERSION, "health", 0);
		expect("no token", sb.data, sb.size, OMEN_EAUTH);
		msgpack_sbuffer_destroy(&sb);
	}
	health(token);
	nng_close(sock);
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
