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
	const char *root; /* the location's string, by address; NULL: free */
	int fd;
	uint64_t expires_ms;
	struct stat st;
	char rel[FILECACHE_PATH_MAX];
};

static _Thread_local struct filecache_root
	filecache_roots[FILECACHE_ROOT_SLOTS];
static _Thread_local struct filecache_file
	filecache_files[FILECACHE_FILE_SLOTS];

static uint64_t filecache_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define FILECACHE_ROOTS_END (filecache_roots + FILECACHE_ROOT_SLOTS)

/* ROOT's slot for GEN, or NULL. */
static struct filecache_root *filecache_root_find(unsigned gen,
						  const char *root)
{
	struct filecache_root *e;

	for (e = filecache_roots; e < FILECACHE_ROOTS_END; e++)
		if (e->path && e->gen == gen && strcmp(e->path, root) == 0)
			return e;
	return NULL;
}

/* A free root slot, else the one that expires first. */
static struct filecache_root *filecache_root_victim(void)
{
	struct filecache_root *e, *victim = filecache_roots;

	for (e = filecache_roots; e < FILECACHE_ROOTS_END; e++) {
		if (!e->path)
			return e;
		if (e->expires_ms < victim->expires_ms)
			victim = e;
	}
	return victim;
}

int filecache_root_fd(unsigned gen, const char *root)
{
	struct filecache_root *victim = filecache_root_find(gen, root);
	uint64_t now = filecache_now_ms();
	char *path;
	int fd;

	if (victim && now < victim->expires_ms)
		return victim->fd;
	if (!victim)
		victim = filecache_root_victim();
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

	for (; *rel; rel++)
		h = (h ^ (unsigned char)*rel) * 1099511628211ULL;
	return &filecache_files[h % FILECACHE_FILE_SLOTS];
}

static void filecache_file_clear(struct filecache_file *e)
{
	if (e->root)
		close(e->fd);
	e->root = NULL;
}

int filecache_get(unsigned gen, const char *root, const char *rel,
		  struct stat *st)
{
	struct filecache_file *e = filecache_slot(root, rel);

	if (e->root != root || e->gen != gen || strcmp(e->rel, rel) != 0)
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
	struct filecache_root *r = filecache_root_find(gen, root);
	size_t len = strlen(rel);

	if (len >= sizeof(e->rel))
		return false;
	filecache_file_clear(e);
	e->gen = gen;
	e->root = root;
	e->fd = fd;
	e->st = *st;
	/* FD was opened through ROOT's descriptor: it goes with it, so a
	 * replaced root is not served for longer than one TTL. */
	e->expires_ms = filecache_now_ms() + FILECACHE_TTL_MS;
	if (r && r->expires_ms < e->expires_ms)
		e->expires_ms = r->expires_ms;
	memcpy(e->rel, rel, len + 1);
	return true;
}

void filecache_drop(unsigned gen, const char *root, const char *rel)
{
	struct filecache_file *e = filecache_slot(root, rel);

	if (e->root == root && e->gen == gen && strcmp(e->rel, rel) == 0)
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
	for (i = 0; i < FILECACHE_FILE_SLOTS; i++)
		filecache_file_clear(&filecache_files[i]);
}
