/*
 * The floor under a cluster call's latency on this machine: the round trip of a small message
 * between two threads over loopback TCP, with plain sockets and with nng REQ/REP (the
 * transport the cluster uses). A call through a coordinator makes two such round trips.
 *
 *   omendb-bench-nng-floor [--rounds N]      prints one JSON object
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

#define MSG 256 /* bytes: about a single-query search request at d = 32 */

static int tcp_listener;
static nng_socket rep_sock;

static void *tcp_echo(void *arg)
{
	(void)arg;
	int c = accept(tcp_listener, NULL, NULL), one = 1;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char b[MSG];
	while (read(c, b, MSG) == MSG && write(c, b, MSG) == MSG)
		;
	close(c);
	return NULL;
}

static void *nng_echo(void *arg)
{
	(void)arg;
	nng_msg *m;
	while (nng_recvmsg(rep_sock, &m, 0) == 0)
		if (nng_sendmsg(rep_sock, m, 0) != 0)
			nng_msg_free(m);
	return NULL;
}

static void tcp_rounds(double *lat, size_t n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int one = 1;
	tcp_listener = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(tcp_listener, (struct sockaddr *)&a, sizeof a) || listen(tcp_listener, 1) ||
	    getsockname(tcp_listener, (struct sockaddr *)&a, &len))
		bu_die("tcp", "cannot listen on loopback");
	pthread_t t;
	pthread_create(&t, NULL, tcp_echo, NULL);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&a, sizeof a))
		bu_die("tcp", "cannot connect");
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char b[MSG] = {0};
	for (size_t i = 0; i < n; i++) {
		double t0 = bu_now();
		if (write(c, b, MSG) != MSG || read(c, b, MSG) != MSG)
			bu_die("tcp", "echo failed");
		lat[i] = bu_now() - t0;
	}
	close(c);
	pthread_join(t, NULL);
	close(tcp_listener);
}

static void nng_rounds(double *lat, size_t n)
{
	nng_socket req;
	nng_listener l;
	int port;
	char url[64];
	if (nng_rep0_open(&rep_sock) || nng_listen(rep_sock, "tcp://127.0.0.1:0", &l, 0) ||
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port))
		bu_die("nng", "cannot listen");
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	pthread_t t;
	pthread_create(&t, NULL, nng_echo, NULL);
	if (nng_req0_open(&req) || nng_dial(req, url, NULL, 0))
		bu_die("nng", "cannot dial %s", url);
	for (size_t i = 0; i < n; i++) {
		nng_msg *m;
		if (nng_msg_alloc(&m, MSG))
			bu_die("nng", "out of memory");
		double t0 = bu_now();
		if (nng_sendmsg(req, m, 0) || nng_recvmsg(req, &m, 0))
			bu_die("nng", "echo failed");
		lat[i] = bu_now() - t0;
		nng_msg_free(m);
	}
	nng_close(req);
	nng_close(rep_sock);
	pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
	size_t n =
	    argc == 3 && strcmp(argv[1], "--rounds") == 0 ? strtoull(argv[2], NULL, 10) : 5000;
	if (n < 100)
		bu_die("omendb-bench-nng-floor",
		       "usage: omendb-bench-nng-floor [--rounds N >= 100]");
	double *tcp = bu_xmalloc(n * sizeof *tcp), *nn = bu_xmalloc(n * sizeof *nn);
	tcp_rounds(tcp, n / 10); /* warm-up */
	nng_rounds(nn, n / 10);
	tcp_rounds(tcp, n);
	nng_rounds(nn, n);
	printf("{\"message_bytes\": %d, \"rounds\": %zu,\n"
	       "  \"tcp\": {\"p50_us\": %.1f, \"p99_us\": %.1f},\n"
	       "  \"nng_reqrep\": {\"p50_us\": %.1f, \"p99_us\": %.1f}\n}\n",
	       MSG, n, 1e6 * bu_median(tcp, n), 1e6 * bu_quantile(tcp, n, 0.99),
	       1e6 * bu_median(nn, n), 1e6 * bu_quantile(nn, n, 0.99));
	free(tcp);
	free(nn);
	nng_fini();
	return 0;
}
