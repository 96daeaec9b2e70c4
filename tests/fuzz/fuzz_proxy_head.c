// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the reverse proxy's parser of an upstream response
 * head (daemon/proxy_upstream.c), as proxy_read_head drives it: find the
 * end of a head in what the upstream sent, split it in place, and read a
 * Content-Length; then the next head (interim 1xx responses come first).
 * Checked beyond memory safety: the status is three digits, names are
 * non-empty tokens, values carry no LF and no edge whitespace, and a
 * Content-Length is taken only when it is all digits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/proxy_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_head(const struct proxy_hdr *h, int n, unsigned status)
{
	if (status < 100 || status > 999 || n > PROXY_MAX_RESPONSE_HEADERS)
		__builtin_trap();
	for (int i = 0; i < n; i++) {
		const char *v = h[i].value;
		size_t vl = strlen(v);
		uint64_t len;

		if (!h[i].name[0] || strpbrk(h[i].name, " \t\r\n:"))
			__builtin_trap();
		if (strchr(v, '\n') ||
		    (vl && (v[0] == ' ' || v[0] == '\t' || v[vl - 1] == ' ' ||
			    v[vl - 1] == '\t')))
			__builtin_trap();
		if (proxy_parse_length(v, &len) == 0 &&
		    (!vl || strspn(v, "0123456789") != vl))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr h[PROXY_MAX_RESPONSE_HEADERS];
	char *buf, *cur, *end;
	const char *why;
	unsigned status;
	bool http10;
	int n;

	if (size > PROXY_BUF_SIZE)
		return 0;
	/* An exact-size copy: ASan sees any read past what was received. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	cur = buf;
	while ((end = proxy_head_end(cur, size - (size_t)(cur - buf)))) {
		if (end <= cur || end > buf + size)
			__builtin_trap();
		n = proxy_split_head(cur, end, &status, &http10, h,
				     PROXY_MAX_RESPONSE_HEADERS, &why);
		if (n < 0) {
			if (!why || !why[0])
				__builtin_trap();
			break;
		}
		fuzz_check_head(h, n, status);
		cur = end;
	}
	free(buf);
	return 0;
}
