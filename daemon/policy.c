// SPDX-License-Identifier: MIT
/*
 * Request routing and certificate policy. path_normalise() is the only
 * place a request path is decoded: the HTTP layer passes the raw target
 * (libmicrohttpd's own unescaping is turned off) so that an encoded '/',
 * '\\', NUL or dot segment can be refused here rather than slip through a
 * second decoding somewhere else.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "policy.h"

static int policy_refuse(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -1;
}

int path_normalise(const char *raw, char *out, size_t out_len, const char **why)
{
	size_t o = 0, seg_start;
	const char *p;
	bool trailing = false;

	if (!raw || raw[0] != '/')
		return policy_refuse(why, "path does not start with '/'");
	if (!out || out_len < 2)
		return policy_refuse(why, "path too long");

	/*
	 * One pass, segment by segment. Each byte is decoded as it is read;
	 * because an encoded '/' is refused, decoding before or after the
	 * split gives the same segments, and a dot segment is recognised in
	 * any spelling ("..", "%2e%2e", ".%2E").
	 */
	p = raw;
	while (*p && *p != '?' && *p != '#') {
		/* p is at a '/' */
		while (*p == '/')
			p++;
		if (!*p || *p == '?' || *p == '#') {
			trailing = true;
			break;
		}
		if (o + 1 >= out_len)
			return policy_refuse(why, "path too long");
		out[o++] = '/';
		seg_start = o;
		while (*p && *p != '/' && *p != '?' && *p != '#') {
			unsigned char c = (unsigned char)*p;

			if (c == '%') {
				int hi = hex_value(p[1]), lo;

				lo = hi < 0 ? -1 : hex_value(p[2]);
				if (hi < 0 || lo < 0)
					return policy_refuse(
						why, "bad percent escape");
				c = (unsigned char)(hi << 4 | lo);
				p += 3;
				if (c == '/')
					return policy_refuse(why,
							     "encoded slash");
				if (c == '\\')
					return policy_refuse(
						why, "encoded backslash");
				if (c == 0)
					return policy_refuse(why,
							     "encoded NUL");
				if (c < 0x20 || c == 0x7f)
					return policy_refuse(
						why, "encoded control byte");
			} else {
				if (c == '\\')
					return policy_refuse(why, "backslash");
				if (c < 0x20 || c == 0x7f)
					return policy_refuse(why,
							     "control byte");
				p++;
			}
			if (o + 1 >= out_len)
				return policy_refuse(why, "path too long");
			out[o++] = (char)c;
		}
		if (o - seg_start == 2 && out[seg_start] == '.' &&
		    out[seg_start + 1] == '.')
			return policy_refuse(why, "dot-dot segment");
		/* A "." segment drops; as the last one, "/a/." names "/a/". */
		if (o - seg_start == 1 && out[seg_start] == '.') {
			o = seg_start - 1;
			trailing = true;
			continue;
		}
		trailing = false;
	}
	if (trailing || o == 0) {
		if (o + 1 >= out_len)
			return policy_refuse(why, "path too long");
		out[o++] = '/';
	}
	out[o] = '\0';
	return 0;
}

const struct config_location *policy_match_location(const struct config *cfg,
						    const char *path)
{
	const struct config_location *best = NULL;
	size_t best_len = 0;

	if (!cfg || !path || path[0] != '/')
		return NULL;
	for (size_t i = 0; i < cfg->n_locations; i++) {
		const struct config_location *loc = &cfg->locations[i];
		size_t n = strlen(loc->prefix);

		/* "/" matches everything; else a whole-segment prefix. */
		if (!(n == 1 && loc->prefix[0] == '/') &&
		    (strncmp(path, loc->prefix, n) ||
		     (path[n] != '\0' && path[n] != '/')))
			continue;
		if (!best || n > best_len) {
			best = loc;
			best_len = n;
		}
	}
	return best;
}

/*
 * "CN=value" with a single RDN: *VALUE_OUT gets the unescaped value
 * (RFC 2253 backslash escapes: "\," and "\2C" both give ','). Returns 0 when
 * ENTRY is such a single-CN name, -1 otherwise.
 */
static int policy_single_cn(const char *entry, char *value_out, size_t len)
{
	size_t o = 0;
	const char *p;

	if (strncasecmp(entry, "CN=", 3))
		return -1;
	for (p = entry + 3; *p; p++) {
		char c = *p;

		if (c == ',' || c == '+' || c == ';')
			return -1; /* a second RDN or attribute */
		if (c == '\\') {
			int hi = hex_value(p[1]), lo;

			lo = hi < 0 ? -1 : hex_value(p[2]);
			if (hi >= 0 && lo >= 0) {
				c = (char)(hi << 4 | lo);
				p += 2;
			} else if (p[1]) {
				c = *++p;
			} else {
				return -1;
			}
		}
		if (o + 1 >= len)
			return -1;
		value_out[o++] = c;
	}
	value_out[o] = '\0';
	return 0;
}

static bool policy_subject_matches(const char *entry, const struct identity *id)
{
	char cn[256];

	if (id->subject && !strcmp(entry, id->subject))
		return true;
	if (!policy_single_cn(entry, cn, sizeof(cn)))
		return id->subject_cn && !strcmp(cn, id->subject_cn);
	return false;
}

/* "*.example.com" matches exactly one leftmost label: "a.example.com". */
static bool policy_dns_matches(const char *entry, const char *san)
{
	const char *dot;

	if (!strcasecmp(entry, san))
		return true;
	if (strncmp(entry, "*.", 2))
		return false;
	dot = strchr(san, '.');
	return dot && dot != san && !strcasecmp(dot + 1, entry + 2);
}

static bool policy_san_matches(const char *entry, const struct identity *id)
{
	for (size_t i = 0; i < id->n_san_dns && i < IDENTITY_MAX_SANS; i++)
		if (id->san_dns[i] && policy_dns_matches(entry, id->san_dns[i]))
			return true;
	for (size_t i = 0; i < id->n_san_uri && i < IDENTITY_MAX_SANS; i++)
		if (id->san_uri[i] && !strcmp(entry, id->san_uri[i]))
			return true;
	return false;
}

enum policy_verdict policy_check(const struct config_location *loc,
				 const struct identity *id)
{
	bool verified = id && id->verified;
	size_t i;

	if (!loc)
		return POLICY_DENY_NOT_ALLOWED;
	if (loc->client_cert == CONFIG_CLIENT_CERT_NONE)
		return POLICY_ALLOW;
	if (!loc->allow_subject.count && !loc->allow_san.count &&
	    !loc->allow_fingerprint.count) {
		if (loc->client_cert == CONFIG_CLIENT_CERT_REQUIRE && !verified)
			return POLICY_DENY_NO_CERT;
		return POLICY_ALLOW;
	}
	if (!verified)
		return POLICY_DENY_NO_CERT;
	for (i = 0; i < loc->allow_fingerprint.count; i++)
		if (strlen(id->fingerprint) == IDENTITY_FP_HEX_LEN &&
		    !strcasecmp(loc->allow_fingerprint.items[i],
				id->fingerprint))
			return POLICY_ALLOW;
	for (i = 0; i < loc->allow_subject.count; i++)
		if (policy_subject_matches(loc->allow_subject.items[i], id))
			return POLICY_ALLOW;
	for (i = 0; i < loc->allow_san.count; i++)
		if (policy_san_matches(loc->allow_san.items[i], id))
			return POLICY_ALLOW;
	return POLICY_DENY_NOT_ALLOWED;
}

const char *policy_verdict_text(enum policy_verdict v)
{
	switch (v) {
	case POLICY_ALLOW:
		return "allowed";
	case POLICY_DENY_NO_CERT:
		return "no verified client certificate";
	case POLICY_DENY_NOT_ALLOWED:
		return "client certificate not allowed here";
	}
	return "unknown";
}
