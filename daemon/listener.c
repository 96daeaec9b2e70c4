// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

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
