// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the reverse proxy's chunked decoder of upstream
 * response bodies (proxy_dechunk in daemon/proxy.c), fed as
 * proxy_body_chunked feeds it: the input is the upstream's byte stream,
 * delivered in reads of 1 to 256 bytes (sizes taken from the input's first
 * bytes) into the 32 KiB receive buffer, compacted between calls, with
 * output buffers of varying size. Checked beyond memory safety: offsets
 * stay inside the buffer, no more bytes come out than went in, and once
 * the body is complete nothing more is produced.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/proxy_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_req pr;
	char out[300];
	size_t pos, in_total = 0, out_total = 0, step, max, rd;
	uint8_t sizes[4] = {1, 7, 64, 255};
	ssize_t n;

	if (size < 4)
		return 0;
	memcpy(sizes, data, 4);
	data += 4;
	size -= 4;
	memset(&pr, 0, sizeof(pr));
	pr.ibuf = malloc(PROXY_BUF_SIZE);
	if (!pr.ibuf)
		return 0;
	pr.framing = PROXY_FRAME_CHUNKED;
	pr.chunk_state = PROXY_CH_SIZE;
	for (pos = 0, step = 0; !pr.body_complete; step++) {
		max = (size_t)(sizes[step % 2] % sizeof(out)) + 1;
		n = proxy_dechunk(&pr, out, max);
		if (n < 0)
			break;
		if ((size_t)n > max || pr.ioff > pr.ilen ||
		    pr.ilen > PROXY_BUF_SIZE)
			__builtin_trap();
		out_total += (size_t)n;
		if (out_total > in_total)
			__builtin_trap();
		if (n > 0 || pr.body_complete)
			continue;
		/* Needs input: compact, then "recv" what the upstream sent. */
		if (pr.ioff) {
			memmove(pr.ibuf, pr.ibuf + pr.ioff, pr.ilen - pr.ioff);
			pr.ilen -= pr.ioff;
			pr.ioff = 0;
		}
		if (pos == size || pr.ilen == PROXY_BUF_SIZE)
			break; /* closed mid-body, or a line that never ends */
		rd = (size_t)sizes[2 + step % 2] + 1;
		if (rd > size - pos)
			rd = size - pos;
		if (rd > PROXY_BUF_SIZE - pr.ilen)
			rd = PROXY_BUF_SIZE - pr.ilen;
		memcpy(pr.ibuf + pr.ilen, data + pos, rd);
		pr.ilen += rd;
		pos += rd;
		in_total += rd;
	}
	if (pr.body_complete) {
		n = proxy_dechunk(&pr, out, sizeof(out));
		if (n != 0)
			__builtin_trap();
	}
	free(pr.ibuf);
	return 0;
}
