// SPDX-License-Identifier: MIT
/*
 * The worker's open-file cache (see filecache.h). Roots: a handful of
 * slots, the oldest replaced. Files: direct-mapped by a hash of the path,
 * a collision replaces; nothing is ever kept past FILECACHE_TTL_MS, so a
 * file that changed on disk is seen within that time, and one removed
 * stops being served (its descriptor is closed at the next look-up).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "filecache.h"

struct filecache_root {
	unsigned gen;
	char *path; /* NULL: free slot */
	int fd;
	uint64_t expires_ms;
};

struct filecache_file {
	unsigned gen;
	const char *root; /* the location's string: compared by address */
	int fd;		  /* -1: free slot */
	uint64_t expires_ms;
	struct stat st;
	char rel[FILECACHE_PATH_MAX];
};

static _Thread_local struct filecache_root
	filecache_roots[FILECACHE_ROOT_SLOTS];
static _Thread_local struct filecache_file
	filecache_files[FILECACHE_FILE_SLOTS];
static _Thread_local bool filecache_ready; /* fd fields set to -1 */

static uint64_t filecache_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int filecache_root_fd(unsigned gen, const char *root)
{
	struct filecache_root *e, *victim = NULL;
	uint64_t now = filecache_now_ms();
	char *path;
	int fd, i;

	for (i = 0; i < FILECACHE_ROOT_SLOTS; i++) {
		e = &filecache_roots[i];
		if (e->path && e->gen == gen && strcmp(e->path, root) == 0) {
			if (now < e->expires_ms)
				return e->fd;
			victim = e;
			break;
		}
		if (!victim || !e->path ||
		    (victim->path && e->expires_ms < victim->expires_ms))
			victim = e;
	}
	fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	path = strdup(root);
	if (!path) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	if (victim->path) {
		close(victim->fd);
		free(victim->path);
	}
	victim->gen = gen;
	victim->path = path;
	victim->fd = fd;
	victim->expires_ms = now + FILECACHE_TTL_MS;
	return fd;
}

/* FNV-1a over the path and the root's address. */
static struct filecache_file *filecache_slot(const char *root, const char *rel)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)root;
	int i;

	if (!filecache_ready) {
		for (i = 0; i < FILECACHE_FILE_SLOTS; i++)
			filecache_files[i].fd = -1;
		filecache_ready = true;
	}
	for (; *rel; rel++)
		h = (h ^ (unsigned char)*rel) * 1099511628211ULL;
	return &filecache_files[h % FILECACHE_FILE_SLOTS];
}

static void filecache_file_clear(struct filecache_file *e)
{
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
}

int filecache_get(unsigned gen, const char *root, const char *rel,
		  struct stat *st)
{
	struct filecache_file *e = filecache_slot(root, rel);

	if (e->fd < 0 || e->gen != gen || e->root != root ||
	    strcmp(e->rel, rel) != 0)
		return -1;
	if (filecache_now_ms() >= e->expires_ms) {
		filecache_file_clear(e);
		return -1;
	}
	*st = e->st;
	return e->fd;
}

bool filecache_put(unsigned gen, const char *root, const char *rel, int fd,
		   const struct stat *st)
{
	struct filecache_file *e = filecache_slot(root, rel);
	size_t len = strlen(rel);

	if (len >= sizeof(e->rel))
		return false;
	filecache_file_clear(e);
	e->gen = gen;
	e->root = root;
	e->fd = fd;
	e->st = *st;
	e->expires_ms = filecache_now_ms() + FILECACHE_TTL_MS;
	memcpy(e->rel, rel, len + 1);
	return true;
}

void filecache_drop(unsigned gen, const char *root, const char *rel)
{
	struct filecache_file *e = filecache_slot(root, rel);

	if (e->fd >= 0 && e->gen == gen && e->root == root &&
	    strcmp(e->rel, rel) == 0)
		filecache_file_clear(e);
}

void filecache_thread_cleanup(void)
{
	int i;

	for (i = 0; i < FILECACHE_ROOT_SLOTS; i++) {
		if (!filecache_roots[i].path)
			continue;
		close(filecache_roots[i].fd);
		free(filecache_roots[i].path);
		filecache_roots[i].path = NULL;
	}
	if (filecache_ready)
		for (i = 0; i < FILECACHE_FILE_SLOTS; i++)
			filecache_file_clear(&filecache_files[i]);
}
