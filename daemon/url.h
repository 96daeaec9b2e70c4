/* SPDX-License-Identifier: MIT */
/*
 * http:// URLs as the configuration and OCSP (AIA, ocsp_responder) give
 * them: host (name, IPv4 or [IPv6]), port, path. No user info, no query
 * rewriting; the caller decides whether a name is acceptable.
 */
#ifndef MTLSGW_URL_H
#define MTLSGW_URL_H

#define URL_HOST_MAX 256
#define URL_PATH_MAX 256

struct url_http {
	char host[URL_HOST_MAX]; /* without [] for IPv6 */
	char port[6];
	char path[URL_PATH_MAX];
};

/* "http://HOST[:PORT][/PATH]" into U; -1 with *WHY on a bad URL. */
int url_parse_http(const char *url, struct url_http *u, const char **why);

#endif
