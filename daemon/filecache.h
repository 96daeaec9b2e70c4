/* SPDX-License-Identifier: MIT */
/*
 * A worker's open-file cache (as nginx's open_file_cache): descriptors of
 * location roots and of regular files under them, with the file's stat,
 * so a small file that is asked for again costs a pread() instead of
 * openat2(), fstat() and close(). Per worker thread, no locks; bounded
 * (FILECACHE_ROOT_SLOTS roots, FILECACHE_FILE_SLOTS files); an entry is
 * for one configuration generation (a reload misses) and lives
 * FILECACHE_TTL_MS: a file replaced or removed on disk is served as before for
 * at most that long, as with a new open.
 */
#ifndef MTLSGW_FILECACHE_H
#define MTLSGW_FILECACHE_H

#include <stdbool.h>
#include <sys/stat.h>

#define FILECACHE_ROOT_SLOTS 4
#define FILECACHE_FILE_SLOTS 64
#define FILECACHE_TTL_MS     1000
#define FILECACHE_PATH_MAX   256 /* longer relative paths are not cached */

/* An O_PATH descriptor of ROOT owned by the cache (the caller does not
 * close it), or -1 with errno. GEN is the configuration generation it is for.
 */
int filecache_root_fd(unsigned gen, const char *root);

/* The cached descriptor of REL under ROOT (owned by the cache: do not
 * close it) with its stat in *ST, or -1 when there is none that is fresh. */
int filecache_get(unsigned gen, const char *root, const char *rel,
		  struct stat *st);

/* Hand FD (a regular file REL under ROOT, stat ST) to the cache. True when
 * the cache took it (and owns it now); false: the caller still owns it. */
bool filecache_put(unsigned gen, const char *root, const char *rel, int fd,
		   const struct stat *st);

/* Forget REL under ROOT (its content no longer matches its stat). */
void filecache_drop(unsigned gen, const char *root, const char *rel);

/* Close everything the calling thread's cache holds (as its thread ends). */
void filecache_thread_cleanup(void);

#endif
