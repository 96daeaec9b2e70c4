// SPDX-License-Identifier: MIT
/* libFuzzer target: request paths (path_normalise) and Range headers
 * (files_parse_range), both straight from clients. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/files.h"
#include "daemon/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), out[4096];
	const char *why;
	unsigned long long first, last;

	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (path_normalise(in, out, sizeof(out), &why) == 0) {
		/* what is accepted never climbs or hides a NUL */
		if (out[0] != '/' || strstr(out, "/../") ||
		    (strlen(out) >= 3 && !strcmp(out + strlen(out) - 3, "/..")))
			__builtin_trap();
	}
	if (files_parse_range(in, 1000, &first, &last) == 1 &&
	    (first > last || last >= 1000))
		__builtin_trap();
	free(in);
	return 0;
}
