/* SPDX-License-Identifier: MIT */
/*
 * PROXY protocol v1 (text) and v2 (binary) headers, as sent by load
 * balancers (HAProxy's spec) in front of a listener marked
 * "proxy_protocol". The header is read with MSG_PEEK first and consumed
 * exactly, so not one byte of the TLS ClientHello is taken with it.
 */
#ifndef MTLSGW_PROXYPROTO_H
#define MTLSGW_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct config_cidr;

#define PROXYPROTO_V1_MAX 107 /* the spec's longest v1 line, CRLF included */
#define PROXYPROTO_V2_MAX (16 + 65535)

enum proxyproto_result {
	PROXYPROTO_DONE,    /* header consumed; *src set or kept */
	PROXYPROTO_MORE,    /* part of a header is there: look again soon */
	PROXYPROTO_WAIT,    /* nothing to read yet: wait for readability */
	PROXYPROTO_INVALID, /* not a PROXY header, or a malformed one */
};

/*
 * Parse a complete or partial header in BUF (LEN bytes). On DONE, *USED is
 * the header's length, and SRC/SRC_LEN hold the client address it carries
 * (left untouched for "UNKNOWN" / LOCAL: the connection is the balancer's
 * own, e.g. a health check). WHY names the problem on INVALID.
 */
enum proxyproto_result proxyproto_parse(const unsigned char *buf, size_t len,
					size_t *used,
					struct sockaddr_storage *src,
					socklen_t *src_len, const char **why);

/* Read the header from non-blocking socket FD (peek, parse, consume). */
enum proxyproto_result proxyproto_read(int fd, struct sockaddr_storage *src,
				       socklen_t *src_len, const char **why);

/*
 * Is PEER (the socket's address, before any header) one of the N networks
 * of proxy_from? N = 0 means anyone. An IPv4-mapped IPv6 address matches
 * the IPv4 networks.
 */
bool proxyproto_source_allowed(const struct config_cidr *nets, size_t n,
			       const struct sockaddr *peer);

#endif
