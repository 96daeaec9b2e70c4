/* SPDX-License-Identifier: MIT */
/*
 * Static files under a location's root: GET and HEAD, Content-Type by
 * extension, index file for directories, Last-Modified / If-Modified-Since,
 * a single byte Range. Responses come from the file descriptor, so MHD
 * sends them with sendfile(2). Nothing outside root is ever opened:
 * openat2(RESOLVE_BENEATH) refuses ".." and symlinks that leave root.
 */
#ifndef MTLSGW_FILES_H
#define MTLSGW_FILES_H

#include "http_respond.h"

/* Serve rq->path from rq->loc->root. Always answers (200/206/304/403/
 * 404/405/416/500) through http_respond. */
enum MHD_Result files_handle(struct http_request *rq);

/* Content-Type for a file name, by extension (unit-tested). */
const char *files_mime_type(const char *name);

/*
 * Parse a Range header value against SIZE: single "bytes=A-B", "A-",
 * "-N". Returns 1 with [*first, *last] set, 0 when the header should be
 * ignored (absent, multi-range, other unit: serve 200), -1 when
 * unsatisfiable (416).
 */
int files_parse_range(const char *value, unsigned long long size,
		      unsigned long long *first, unsigned long long *last);

/* Close the calling thread's cached root directories (a worker, as its
 * thread ends). */
void files_thread_cleanup(void);

#endif
