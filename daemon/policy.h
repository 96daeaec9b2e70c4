/* SPDX-License-Identifier: MIT */
/*
 * Request routing and certificate policy: pure functions over the parsed
 * config and the connection's identity (unit-tested without a network).
 */
#ifndef MTLSGW_POLICY_H
#define MTLSGW_POLICY_H

#include <stddef.h>

#include "config.h"
#include "identity.h"

/*
 * Decode and normalise a request target's path (the part before '?').
 * Percent escapes are decoded; "//" collapses; "." segments drop. Refused
 * (-1, *why set to a short static reason): bad escapes, an encoded '/',
 * '\\' or NUL, a raw NUL/control byte, any ".." segment (before or after
 * decoding), a path not starting with '/'. OUT gets the result.
 */
int path_normalise(const char *raw, char *out, size_t out_len,
		   const char **why);

/* Longest-prefix match on path-segment boundaries ("/protectedx" is not
 * under "/protected"); NULL when nothing matches. */
const struct config_location *policy_match_location(const struct config *cfg,
						    const char *path);

enum policy_verdict {
	POLICY_ALLOW,
	POLICY_DENY_NO_CERT,	 /* client_cert = require, none verified */
	POLICY_DENY_NOT_ALLOWED, /* verified, but not on the allow lists */
};

enum policy_verdict policy_check(const struct config_location *loc,
				 const struct identity *id);
const char *policy_verdict_text(enum policy_verdict v);

#endif
