// SPDX-License-Identifier: MIT
/*
 * conn.c: the client's socket is released once on every path, so the
 * userspace limiter's count for a client goes back down whichever module
 * ended the connection. The case that leaked: the HTTP engine (a real MHD
 * daemon here, http_server_add) refusing a kTLS connection at hand-off,
 * after MHD has already closed the socket. With max_conns = 2 for the
 * client, one connection held by MHD plus one refused by MHD must leave a
 * slot for a third.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "daemon/conn.h"
#include "daemon/gen.h"
#include "daemon/http.h"
#include "daemon/limits.h"
#include "daemon/loop.h"

struct fixture {
	struct config *cfg;
	struct gen *gen;
	struct limits *limits;
	atomic_uint open_conns;
	struct conn_list list;
	struct http_server *http;
	int peers[8]; /* the client ends of the socketpairs */
	size_t n_peers;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(f);
	assert_non_null(cfg);
	cfg->max_connections = 1; /* MHD takes one connection, refuses more */
	cfg->max_header_size = 8192;
	cfg->max_body_size = 1 << 20;
	cfg->request_timeout_ms = 10000;
	/* An instance name limits_new refuses: mode auto then falls back to
	 * the userspace limiter, with no BPF and no privileges involved. */
	cfg->bpf_mode = CONFIG_BPF_AUTO;
	cfg->bpf_instance = strdup("not/valid");
	cfg->limit_anonymous.max_conns = 2; /* the clients here have no cert */
	cfg->limit_anonymous.set = CONFIG_LIMIT_MAX_CONNS;
	f->cfg = cfg;
	f->gen = gen_new(cfg, NULL, 1);
	assert_non_null(f->gen);
	f->limits = limits_new(cfg);
	assert_non_null(f->limits);
	assert_string_equal(limits_mode_name(f->limits), "userspace");
	atomic_init(&f->open_conns, 0);
	LIST_INIT(&f->list.head);
	LIST_INIT(&f->list.lingering);
	f->list.loop = loop_new();
	assert_non_null(f->list.loop);
	f->list.limits = f->limits;
	f->list.open_conns = &f->open_conns;
	f->list.max_conns = 100;
	f->http = http_server_new(f->list.loop, f->gen, f->limits,
				  &f->open_conns);
	assert_non_null(f->http);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	http_server_free(f->http);
	conn_list_close_lingering(&f->list);
	loop_free(f->list.loop);
	limits_free(f->limits);
	gen_unref(f->gen);
	for (i = 0; i < f->n_peers; i++)
		if (f->peers[i] >= 0)
			close(f->peers[i]);
	free(f);
	return 0;
}

/* A connection from 192.0.2.7 (no certificate: limited by address) that
 * finished its handshake on the kTLS path, counted by the limiter. */
static struct conn *kTLS_conn(struct fixture *f)
{
	struct sockaddr_storage peer = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer;
	struct conn *c;
	int sp[2];

	sin->sin_family = AF_INET;
	sin->sin_port = htons(40000);
	sin->sin_addr.s_addr = htonl(0xc0000207);
	assert_int_equal(
		socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
	f->peers[f->n_peers++] = sp[1];
	c = conn_new(&f->list, sp[0], f->gen, &peer, sizeof(*sin));
	assert_non_null(c);
	c->state = CONN_HTTP;
	c->path = CONN_PATH_KTLS;
	conn_admit(c);
	return c;
}

/* What handshake.c does on the kTLS path: MHD gets the TCP socket, the
 * handshake's reference goes. Returns http_server_add's result. */
static int handoff(struct fixture *f, struct conn *c)
{
	int r;

	conn_mhd_attach(c, c->fd, true);
	r = http_server_add(f->http, c, c->fd);
	conn_unref(c);
	return r;
}

static void test_conn_mhd_refusal_releases_limits(void **state)
{
	struct fixture *f = *state;
	struct conn *a, *b, *c;
	int fd_b, blocker;

	a = kTLS_conn(f);
	assert_true(a->limits_bound);
	assert_int_equal(handoff(f, a), 0); /* MHD holds it */
	assert_int_equal(f->list.n, 1);

	b = kTLS_conn(f);
	assert_true(b->limits_bound);
	fd_b = b->fd;
	assert_int_equal(handoff(f, b), -1); /* over MHD's limit */
	/* b is gone, its socket closed by MHD, and not counted any more. */
	assert_int_equal(f->list.n, 1);
	assert_int_equal(atomic_load(&f->open_conns), 1);
	assert_int_equal(fcntl(fd_b, F_GETFD), -1);
	/* Keep b's descriptor number taken, so the limiter cannot heal a
	 * leak by seeing that number admitted again. */
	blocker = open("/dev/null", O_RDONLY);
	assert_int_equal(blocker, fd_b);

	c = kTLS_conn(f);
	assert_int_not_equal(c->fd, fd_b);
	assert_false(c->limits_refused);
	assert_true(c->limits_bound);
	conn_unref(c);
	/* The limit is real: with a held, two are all there is. */
	b = kTLS_conn(f);
	c = kTLS_conn(f);
	assert_true(b->limits_bound);
	assert_true(c->limits_refused);
	conn_unref(b);
	conn_unref(c);
	close(blocker);
}

/* Every other end releases too: the last reference on a connection that
 * never reached MHD (handshake failure, drain, stop). */
static void test_conn_unref_releases_limits(void **state)
{
	struct fixture *f = *state;
	struct conn *c[3];
	int i;

	for (i = 0; i < 2; i++) {
		c[i] = kTLS_conn(f);
		assert_true(c[i]->limits_bound);
	}
	c[2] = kTLS_conn(f);
	assert_true(c[2]->limits_refused);
	conn_unref(c[2]);
	conn_unref(c[0]);
	c[0] = kTLS_conn(f);
	assert_true(c[0]->limits_bound);
	conn_unref(c[0]);
	conn_unref(c[1]);
	assert_int_equal(f->list.n, 0);
	assert_int_equal(atomic_load(&f->open_conns), 0);
}

/*
 * MHD ends an idle kTLS connection itself (here on the client's EOF; its
 * timeout, a KeyUpdate are the same path). With MHD_USE_TURBO it sends no
 * shutdown of its own: the gateway ends the socket, lingering on its own
 * duplicate, and MHD's close only drops MHD's descriptor.
 */
static void test_conn_mhd_close_lingers(void **state)
{
	struct fixture *f = *state;
	struct conn *a = kTLS_conn(f);
	int peer = f->peers[f->n_peers - 1], fd = a->fd, i;
	char b[16];
	ssize_t n;

	assert_int_equal(handoff(f, a), 0);
	assert_int_equal(shutdown(peer, SHUT_WR), 0);
	for (i = 0; i < 100 && f->list.n; i++)
		loop_run_once(f->list.loop, 100);
	assert_int_equal(f->list.n, 0); /* MHD closed it; the conn is gone */
	assert_int_equal(atomic_load(&f->open_conns), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* MHD's descriptor */
	assert_int_equal(f->list.n_lingering, 1);
	/* The gateway's FIN came (its shutdown on the duplicate), and the
	 * lingering socket ends when the client closes. */
	while ((n = read(peer, b, sizeof(b))) > 0)
		;
	assert_int_equal(n, 0);
	close(peer);
	f->peers[f->n_peers - 1] = -1;
	for (i = 0; i < 100 && f->list.n_lingering; i++)
		loop_run_once(f->list.loop, 100);
	assert_int_equal(f->list.n_lingering, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_conn_mhd_refusal_releases_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_unref_releases_limits,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_mhd_close_lingers,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
