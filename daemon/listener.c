// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

#define LISTENER_REFUSE_LOG_MS 1000 /* at most one such line a second */

static _Atomic uint64_t listener_refuse_logged_ms;
static atomic_ulong listener_refuse_unlogged;

int listener_open(const struct config_listen *l)
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->addr.ss;
	int fd, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		log_error("listen %s: socket: %s", l->addr.text,
			  strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) <
		     0)) {
		log_error("listen %s: setsockopt: %s", l->addr.text,
			  strerror(errno));
		goto bad;
	}
	if (bind(fd, sa, l->addr.len) < 0) {
		log_error("listen %s: bind: %s", l->addr.text, strerror(errno));
		goto bad;
	}
	if (listen(fd, LISTENER_BACKLOG) < 0) {
		log_error("listen %s: %s", l->addr.text, strerror(errno));
		goto bad;
	}
	return fd;
bad:
	close(fd);
	return -1;
}

void listener_refuse_untrusted(int fd, const struct sockaddr *peer,
			       const char *listen)
{
	uint64_t now = loop_now_ms(),
		 last = atomic_load(&listener_refuse_logged_ms);
	unsigned long others;
	char text[64];

	/* Counted first: once the client sees the close, it is counted. */
	metrics_inc(METRICS_CONNS_REFUSED_PROXY_FROM);
	close(fd);
	if ((last && now - last < LISTENER_REFUSE_LOG_MS) ||
	    !atomic_compare_exchange_strong(&listener_refuse_logged_ms, &last,
					    now ? now : 1)) {
		atomic_fetch_add(&listener_refuse_unlogged, 1);
		return;
	}
	others = atomic_exchange(&listener_refuse_unlogged, 0);
	listener_format_addr(peer, text, sizeof(text));
	log_warn("listen %s: connection from %s closed: not in proxy_from "
		 "(%lu more since the last such line)",
		 listen, text, others);
}

void listener_format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, len, "unix");
	}
}
