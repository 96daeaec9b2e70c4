// SPDX-License-Identifier: MIT
/* libFuzzer target: a request head from the network, parsed in place the
 * way libmicrohttpd 0.9.75 does it (line ends and the colon turned into
 * NULs, an obs-fold continuation appended to the name in a new block),
 * then http_framing_layout and http_framing_check on the result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/http_framing.h"

#define FUZZ_MAX_FIELDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Next line at *POS: zero its CRLF or LF, return its start (NULL: none). */
static char *fuzz_line(char *buf, size_t size, size_t *pos)
{
	char *line = buf + *pos, *lf = memchr(line, '\n', size - *pos);

	if (!lf)
		return NULL;
	if (lf > line && lf[-1] == '\r')
		lf[-1] = '\0';
	*lf = '\0';
	*pos = (size_t)(lf - buf) + 1;
	return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_framing_field f[FUZZ_MAX_FIELDS];
	char *buf = malloc(size + 1), *moved[FUZZ_MAX_FIELDS], *line, *sp;
	struct http_framing_req r = {.version = "HTTP/1.1", .fields = f};
	size_t pos = 0, n = 0, n_moved = 0, i;
	const char *note;
	unsigned status;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	line = fuzz_line(buf, size, &pos);
	if (!line)
		goto done;
	r.method = line;
	sp = strchr(line, ' ');
	if (sp) {
		*sp = '\0';
		r.target = sp + 1;
	}
	while ((line = fuzz_line(buf, size, &pos)) != NULL) {
		char *colon;

		if (!line[0]) {
			http_framing_layout(f, n, buf, pos);
			r.n_fields = n;
			status = http_framing_check(&r, &note);
			if ((status != 0 && status != 400 && status != 501) ||
			    (!status != !note))
				__builtin_trap();
			for (i = 0; !status && i < n; i++)
				if (f[i].folded ||
				    memchr(f[i].value, '\0', f[i].value_len))
					__builtin_trap();
			break;
		}
		if ((line[0] == ' ' || line[0] == '\t') && n) {
			/* obs-fold: MHD appends it to the name elsewhere */
			size_t nl = strlen(f[n - 1].name), tl;
			char *nn;

			while (*line == ' ' || *line == '\t')
				line++;
			tl = strlen(line);
			if (n_moved == FUZZ_MAX_FIELDS)
				break;
			nn = malloc(nl + tl + 1);
			if (!nn)
				break;
			memcpy(nn, f[n - 1].name, nl);
			memcpy(nn + nl, line, tl + 1);
			moved[n_moved++] = nn;
			f[n - 1].name = nn;
			f[n - 1].name_len = nl + tl;
			continue;
		}
		colon = strchr(line, ':');
		if (!colon || n == FUZZ_MAX_FIELDS)
			break; /* MHD answers 400 itself */
		*colon++ = '\0';
		while (*colon == ' ' || *colon == '\t')
			colon++;
		f[n++] = (struct http_framing_field){line, strlen(line), colon,
						     strlen(colon), false};
	}
	for (i = 0; i < n_moved; i++)
		free(moved[i]);
done:
	free(buf);
	return 0;
}
