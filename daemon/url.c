// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

int url_parse_http(const char *url, struct url_http *u, const char **why)
{
	const char *p, *host, *end, *slash;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "http://", 7) != 0) {
		*why = "must be an http:// URL (OCSP goes over plain HTTP)";
		return -1;
	}
	host = url + 7;
	slash = strchr(host, '/');
	end = slash ? slash : host + strlen(host);
	snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
	if (slash && strlen(slash) >= sizeof(u->path)) {
		*why = "path too long";
		return -1;
	}
	if (*host == '[') {
		p = memchr(host, ']', (size_t)(end - host));
		if (!p) {
			*why = "unterminated [IPv6] address";
			return -1;
		}
		n = (size_t)(p - host - 1);
		if (n == 0 || n >= sizeof(u->host))
			goto bad_host;
		memcpy(u->host, host + 1, n);
		p++;
	} else {
		p = memchr(host, ':', (size_t)(end - host));
		if (!p)
			p = end;
		n = (size_t)(p - host);
		if (n == 0 || n >= sizeof(u->host))
			goto bad_host;
		memcpy(u->host, host, n);
	}
	if (p == end) {
		strcpy(u->port, "80");
		return 0;
	}
	if (*p != ':' || end - p < 2 || end - p > 6) {
		*why = "bad port";
		return -1;
	}
	memcpy(u->port, p + 1, (size_t)(end - p - 1));
	n = strspn(u->port, "0123456789");
	if (u->port[n] || atoi(u->port) < 1 || atoi(u->port) > 65535) {
		*why = "bad port (1-65535)";
		return -1;
	}
	return 0;
bad_host:
	*why = "missing or too long host";
	return -1;
}
