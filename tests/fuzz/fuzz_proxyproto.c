// SPDX-License-Identifier: MIT
/* libFuzzer target: PROXY protocol headers from the network. */
#include <stddef.h>
#include <stdint.h>

#include "daemon/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	size_t used = 0;
	const char *why;

	if (proxyproto_parse(data, size, &used, &ss, &sl, &why) ==
		    PROXYPROTO_DONE &&
	    used > size)
		__builtin_trap();
	return 0;
}
