/* SPDX-License-Identifier: MIT */
/* Listening sockets: one per (worker, listen address), SO_REUSEPORT, so
 * the kernel spreads new connections over the workers' accept loops. */
#ifndef MTLSGW_LISTENER_H
#define MTLSGW_LISTENER_H

#include "config.h"

#define LISTENER_BACKLOG 4096

/* A bound, listening, non-blocking socket, or -1 (logged). */
int listener_open(const struct config_listen *l);

/*
 * Close FD, accepted from PEER on a proxy_protocol listener LISTEN but not
 * from a proxy_from network, before reading a byte: it could forge any
 * client address. Counted; logged at most once a second (a flood of them
 * must not flood the log), with how many went unlogged since.
 */
void listener_refuse_untrusted(int fd, const struct sockaddr *peer,
			       const char *listen);

/* "1.2.3.4:5" / "[::1]:5" of a socket address. */
void listener_format_addr(const struct sockaddr *sa, char *out, size_t len);

#endif
