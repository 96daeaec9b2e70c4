/* SPDX-License-Identifier: MIT */
/*
 * Per-identity limits, BPF mode: the loader and daemon side of
 * bpf/mtlsgw.bpf.c.
 *
 * At start: mount bpffs if needed; find our cgroup v2 (a child of the
 * root cgroup made for us if we sit in the root); open the skeleton with
 * every map's pin path set, so that libbpf reuses the maps pinned by an
 * earlier run (counters and limits survive) or creates and pins them;
 * load; then per program either update the pinned link to the new
 * program (atomically: no packet goes uncounted across a restart) or
 * attach and pin a new one. Nothing is unpinned at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mtlsgw_abi.h"
#include "mtlsgw_limiter.h"
#include "mtlsgw.skel.h"

#include "limits.h"
#include "limits_private.h"
#include "log.h"

/* ---- BPF mode: environment */

__attribute__((format(printf, 2, 0))) static int
limits_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	if (level == LIBBPF_DEBUG && !log_enabled(LOG_LVL_DEBUG))
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	log_msg(level == LIBBPF_WARN ? LOG_LVL_WARN : LOG_LVL_DEBUG,
		"libbpf: %s", buf);
	return 0;
}

static int limits_mount_bpffs(char *why, size_t n)
{
	struct statfs sfs;

	if (statfs(LIMITS_BPFFS, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", LIMITS_BPFFS, "bpf", 0, "mode=0700") < 0) {
		limits_why(why, n, "mount bpffs on %s: %s", LIMITS_BPFFS,
			   strerror(errno));
		return -1;
	}
	log_info("limits: mounted bpffs on %s", LIMITS_BPFFS);
	return 0;
}

/* Undo the octal escapes of /proc/self/mountinfo ("\040" for a space). */
static void limits_unescape(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] &&
		    s[3]) {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = 0;
}

/* Mount point and root of the cgroup2 hierarchy. */
static int limits_cgroup2_mount(char *mnt, size_t mnt_len, char *root,
				size_t root_len)
{
	char line[4096];
	FILE *f;
	int found = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		char *field[5], *save = NULL, *p;
		int i;

		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		*sep = 0;
		p = line;
		for (i = 0; i < 5; i++, p = NULL) {
			field[i] = strtok_r(p, " ", &save);
			if (!field[i])
				break;
		}
		if (i < 5)
			continue;
		limits_unescape(field[3]);
		limits_unescape(field[4]);
		snprintf(root, root_len, "%s", field[3]);
		snprintf(mnt, mnt_len, "%s", field[4]);
		found = 1;
	}
	fclose(f);
	return found ? 0 : -1;
}

/* Our cgroup v2 path relative to the hierarchy root ("/" for the root). */
static int limits_own_cgroup(char *path, size_t len)
{
	char line[4096];
	FILE *f;
	int found = 0;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		if (snprintf(path, len, "%s", line + 3) >= (int)len)
			break;
		found = 1;
	}
	fclose(f);
	return found ? 0 : -1;
}

static int limits_write_pid(const char *cgdir)
{
	char path[600], buf[32];
	int fd, n, rc = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgdir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n)
		rc = -1;
	close(fd);
	return rc;
}

/* Undo limits_find_cgroup() when BPF mode cannot be set up after all. */
static void limits_leave_cgroup(struct limits *l)
{
	if (l->left_cgroup[0] && limits_write_pid(l->left_cgroup) == 0)
		l->left_cgroup[0] = 0;
	if (l->made_cgroup && !l->left_cgroup[0])
		rmdir(l->cgroup);
	l->made_cgroup = 0;
}

/*
 * Our cgroup directory in L->cgroup; made (and entered) if we are in the
 * root cgroup, where programs would see every socket of the host.
 */
static int limits_find_cgroup(struct limits *l, char *why, size_t n)
{
	char mnt[256], root[256], own[256];
	const char *rel;
	size_t rl;

	if (limits_cgroup2_mount(mnt, sizeof(mnt), root, sizeof(root)) < 0) {
		limits_why(why, n, "no cgroup2 hierarchy mounted");
		return -1;
	}
	if (limits_own_cgroup(own, sizeof(own)) < 0) {
		limits_why(why, n, "no cgroup v2 entry in /proc/self/cgroup");
		return -1;
	}
	/* Under a cgroup namespace the mount's root may be a subtree. */
	rel = own;
	rl = strlen(root);
	if (strcmp(root, "/") != 0 && !strncmp(own, root, rl) &&
	    (own[rl] == '/' || own[rl] == 0))
		rel = own + rl;
	if (rel[0] == 0 || !strcmp(rel, "/")) {
		snprintf(l->cgroup, sizeof(l->cgroup), "%s/%s%s", mnt,
			 LIMITS_CGROUP_PREFIX, l->instance);
		if (mkdir(l->cgroup, 0755) == 0)
			l->made_cgroup = 1;
		else if (errno != EEXIST) {
			limits_why(why, n, "mkdir %s: %s", l->cgroup,
				   strerror(errno));
			return -1;
		}
		if (limits_write_pid(l->cgroup) < 0) {
			limits_why(why, n, "move into %s: %s", l->cgroup,
				   strerror(errno));
			limits_leave_cgroup(l);
			return -1;
		}
		snprintf(l->left_cgroup, sizeof(l->left_cgroup), "%s", mnt);
		log_info("limits: moved into cgroup %s", l->cgroup);
		return 0;
	}
	snprintf(l->cgroup, sizeof(l->cgroup), "%s%s", mnt, rel);
	return 0;
}

static uint64_t limits_cgroup_id(const char *path)
{
	/* The cgroup id is the 64-bit file handle of its directory. */
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + sizeof(uint64_t)];
	} h;
	uint64_t id;
	int mount_id;

	h.fh.handle_bytes = sizeof(id);
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0 ||
	    h.fh.handle_bytes != sizeof(id))
		return 0;
	memcpy(&id, h.buf + sizeof(struct file_handle), sizeof(id));
	return id;
}

static int limits_mkdir_p(const char *dir)
{
	char tmp[256];
	char *p;

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* ---- BPF mode: load and attach */

static struct bpf_program *limits_prog(struct mtlsgw_bpf *skel, int i)
{
	switch (i) {
	case 0:
		return skel->progs.setsockopt_bind_identity;
	case 1:
		return skel->progs.sock_release_count;
	case 2:
		return skel->progs.skb_ingress_meter;
	default:
		return skel->progs.skb_egress_meter;
	}
}

/*
 * Attach program I: update the pinned link if it is ours (same cgroup,
 * same hook), else replace it by a new pinned link. *CREATED tells the
 * caller what to undo on a later failure.
 */
static int limits_link(struct limits *l, int i, int cgfd, uint64_t cgid,
		       int *created, char *why, size_t n)
{
	struct bpf_program *prog = limits_prog(l->skel, i);
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	char path[256];
	int fd, err;

	*created = 0;
	snprintf(path, sizeof(path), "%s/link_%s", l->pin_dir,
		 bpf_program__name(prog));
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		memset(&info, 0, sizeof(info));
		err = bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
		if (!err && info.type == BPF_LINK_TYPE_CGROUP &&
		    info.cgroup.cgroup_id == cgid &&
		    info.cgroup.attach_type ==
			    bpf_program__expected_attach_type(prog)) {
			l->links[i] = bpf_link__open(path);
			if (!l->links[i]) {
				limits_why(why, n, "open %s: %s", path,
					   strerror(errno));
				return -1;
			}
			err = bpf_link__update_program(l->links[i], prog);
			if (err) {
				limits_why(why, n, "update %s: %s", path,
					   strerror(-err));
				return -1;
			}
			return 0;
		}
		/* Pinned for another cgroup (we moved): unpinning and
		 * closing it detaches it. */
		if (unlink(path) < 0) {
			limits_why(why, n, "unlink %s: %s", path,
				   strerror(errno));
			return -1;
		}
	}
	l->links[i] = bpf_program__attach_cgroup(prog, cgfd);
	if (!l->links[i]) {
		limits_why(why, n, "attach %s to %s: %s",
			   bpf_program__name(prog), l->cgroup, strerror(errno));
		return -1;
	}
	*created = 1;
	err = bpf_link__pin(l->links[i], path);
	if (err) {
		limits_why(why, n, "pin %s: %s", path, strerror(-err));
		return -1;
	}
	return 0;
}

/*
 * cert_buckets pinned by a version with another value layout would make
 * the load fail: replace it (the limiter state restarts; connections open
 * at that moment no longer count against max_conns). Other maps keep
 * their layout, and libbpf refuses them if not.
 */
static void limits_drop_old_buckets(const char *path)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
	    info.value_size != sizeof(struct mtlsgw_state) && unlink(path) == 0)
		log_warn("limits: %s was pinned by an older version (values "
			 "of %u bytes, now %zu): replaced; limiter state "
			 "starts afresh",
			 path, info.value_size, sizeof(struct mtlsgw_state));
	close(fd);
}

/* Open the skeleton, pin each map under pin_dir (reusing a map pinned by
 * an earlier run: NEW_MAP[i] says which were created) and load the
 * programs. The caller's cleanup undoes it. */
static int limits_bpf_load(struct limits *l, struct bpf_map *maps[4],
			   int new_map[4], char *why, size_t n)
{
	char path[256];
	int err, i;

	l->skel = mtlsgw_bpf__open();
	if (!l->skel) {
		limits_why(why, n, "open BPF object: %s", strerror(errno));
		return -1;
	}
	maps[0] = l->skel->maps.cert_stats;
	maps[1] = l->skel->maps.cert_limits;
	maps[2] = l->skel->maps.cert_buckets;
	maps[3] = l->skel->maps.conn_identity;
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", l->pin_dir,
			 bpf_map__name(maps[i]));
		if (maps[i] == l->skel->maps.cert_buckets)
			limits_drop_old_buckets(path);
		new_map[i] = access(path, F_OK) != 0;
		err = bpf_map__set_pin_path(maps[i], path);
		if (err) {
			limits_why(why, n, "pin path %s: %s", path,
				   strerror(-err));
			return -1;
		}
	}
	err = mtlsgw_bpf__load(l->skel);
	if (err) {
		/* libbpf refuses to reuse a pinned map of another layout. */
		limits_why(why, n, "load BPF programs: %s%s%s%s",
			   strerror(-err),
			   err == -EINVAL ? " (maps pinned by an older version "
					    "in "
					  : "",
			   err == -EINVAL ? l->pin_dir : "",
			   err == -EINVAL ? "? remove them with rm -r)" : "");
		return -1;
	}
	l->fd_stats = bpf_map__fd(l->skel->maps.cert_stats);
	l->fd_limits = bpf_map__fd(l->skel->maps.cert_limits);
	l->fd_buckets = bpf_map__fd(l->skel->maps.cert_buckets);
	l->fd_conns = bpf_map__fd(l->skel->maps.conn_identity);

	return 0;
}

int limits_bpf_open(struct limits *l, const struct config *cfg, char *why,
		    size_t n)
{
	struct bpf_map *maps[4] = {NULL};
	int created[LIMITS_NPROGS] = {0}, new_map[4] = {0};
	int cgfd = -1, i, rc = -1, made_dir;
	uint64_t cgid;

	libbpf_set_print(limits_libbpf_print);
	if (limits_mount_bpffs(why, n) < 0)
		return -1;
	snprintf(l->pin_dir, sizeof(l->pin_dir), "%s/%s", MTLSGW_PIN_ROOT,
		 l->instance);
	made_dir = access(l->pin_dir, F_OK) != 0;
	if (limits_mkdir_p(l->pin_dir) < 0) {
		limits_why(why, n, "mkdir %s: %s", l->pin_dir, strerror(errno));
		return -1;
	}
	if (limits_find_cgroup(l, why, n) < 0)
		goto cleanup;
	cgfd = open(l->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cgid = limits_cgroup_id(l->cgroup);
	if (cgfd < 0 || !cgid) {
		limits_why(why, n, "open %s: %s", l->cgroup, strerror(errno));
		goto cleanup;
	}

	if (limits_bpf_load(l, maps, new_map, why, n) < 0)
		goto cleanup;
	if (limits_bpf_sync(l, cfg) < 0) {
		limits_why(why, n, "write %s/cert_limits: %s", l->pin_dir,
			   strerror(errno));
		goto cleanup;
	}
	for (i = 0; i < LIMITS_NPROGS; i++)
		if (limits_link(l, i, cgfd, cgid, &created[i], why, n) < 0)
			goto cleanup;
	/* GC talks to the program through a socket of our cgroup. */
	l->gc_sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	l->gc_keys = calloc(LIMITS_GC_BATCH, sizeof(*l->gc_keys));
	l->gc_vals = calloc(LIMITS_GC_BATCH, sizeof(*l->gc_vals));
	if (l->gc_sock < 0 || !l->gc_keys || !l->gc_vals) {
		limits_why(why, n, "GC socket or buffers: %s", strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (rc < 0) {
		for (i = 0; i < LIMITS_NPROGS; i++) {
			if (l->links[i] && created[i])
				bpf_link__unpin(l->links[i]);
			bpf_link__destroy(l->links[i]);
			l->links[i] = NULL;
		}
		for (i = 0; l->skel && i < 4; i++)
			if (new_map[i])
				bpf_map__unpin(maps[i], NULL);
		mtlsgw_bpf__destroy(l->skel);
		l->skel = NULL;
		if (made_dir)
			rmdir(l->pin_dir);
		limits_leave_cgroup(l);
	}
	if (cgfd >= 0)
		close(cgfd);
	return rc;
}

/* ---- BPF mode: connection path */

static int limits_bpf_lookup_limit(struct limits *l, const struct mtlsgw_id *id,
				   int anonymous, struct mtlsgw_limit *out)
{
	struct mtlsgw_id key;

	if (bpf_map_lookup_elem(l->fd_limits, id, out) == 0)
		return 0;
	if (anonymous) {
		limits_key(&key, MTLSGW_KEY_ANONYMOUS);
		if (bpf_map_lookup_elem(l->fd_limits, &key, out) == 0)
			return 0;
	}
	limits_key(&key, MTLSGW_KEY_DEFAULT);
	if (bpf_map_lookup_elem(l->fd_limits, &key, out) == 0)
		return 0;
	memset(out, 0, sizeof(*out));
	return -1;
}

int limits_bpf_bytes_out(struct limits *l, const struct mtlsgw_id *id,
			 uint64_t *bytes)
{
	struct mtlsgw_stats st;

	if (bpf_map_lookup_elem(l->fd_stats, id, &st) < 0) {
		*bytes = 0;
		return errno == ENOENT ? 0 : -1;
	}
	*bytes = st.bytes_out;
	return 0;
}

/* Retry-After for a refusal: read back what the program decided on. */
static unsigned limits_bpf_retry(struct limits *l, const struct mtlsgw_id *id,
				 int anonymous, int request)
{
	struct mtlsgw_limit lim;
	struct mtlsgw_state st;
	uint64_t wait;

	if (bpf_map_lookup_elem_flags(l->fd_buckets, id, &st, BPF_F_LOCK) != 0)
		return MTLSGW_RETRY_AFTER_CONNS;
	limits_bpf_lookup_limit(l, id, anonymous, &lim);
	if (request)
		wait = limiter_wait_ns(&st.req, lim.req_rate, lim.req_burst, 1,
				       limits_now_ns());
	else if (lim.max_conns && st.active >= lim.max_conns)
		return MTLSGW_RETRY_AFTER_CONNS;
	else
		wait = limiter_wait_ns(&st.conn, lim.conn_rate, lim.conn_burst,
				       1, limits_now_ns());
	return limits_ns_to_retry(wait);
}

/*
 * cert_buckets is a plain hash (the kernel allows no spin lock in an LRU
 * map): when it is full, reclaim identities whose state equals a fresh
 * one. Bounded per call (LIMITS_GC_SCAN entries), linear over calls: a
 * batch lookup walks the hash buckets from where the previous call
 * stopped (its cursor is a bucket index, not a key, so deletions do not
 * restart the walk). The kernel takes the decision under the entry's lock
 * (MTLSGW_SO_RECLAIM); this only picks candidates. One worker at a time;
 * the others do not wait; after a call that found nothing, none for
 * LIMITS_GC_BACKOFF_NS. Returns the number reclaimed.
 */
size_t limits_bpf_gc(struct limits *l)
{
	DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct mtlsgw_reclaim rc;
	struct mtlsgw_state *st;
	uint64_t now = limits_now_ns();
	size_t scanned = 0, reclaimed = 0, i;
	int wrapped = 0, err;
	__u32 count, out;

	if (atomic_exchange(&l->gc_busy, 1))
		return 0;
	if (now < l->gc_next_ns) {
		atomic_store(&l->gc_busy, 0);
		return 0;
	}
	memset(&rc, 0, sizeof(rc));
	rc.idle_ns = atomic_load(&l->gc_idle_ns);
	while (scanned < LIMITS_GC_SCAN && reclaimed < LIMITS_GC_TARGET) {
		count = LIMITS_GC_SCAN - scanned < LIMITS_GC_BATCH
				? (__u32)(LIMITS_GC_SCAN - scanned)
				: LIMITS_GC_BATCH;
		err = bpf_map_lookup_batch(
			l->fd_buckets, l->gc_started ? &l->gc_cursor : NULL,
			&out, l->gc_keys, l->gc_vals, &count, &opts);
		if (err && errno != ENOENT)
			break;
		for (i = 0; i < count; i++) {
			st = &l->gc_vals[i];
			if (st->active ||
			    !limiter_bucket_idle(&st->conn, now, rc.idle_ns) ||
			    !limiter_bucket_idle(&st->req, now, rc.idle_ns))
				continue;
			rc.id = l->gc_keys[i];
			if (setsockopt(l->gc_sock, MTLSGW_SOL,
				       MTLSGW_SO_RECLAIM, &rc, sizeof(rc)) == 0)
				reclaimed++;
		}
		scanned += count;
		l->gc_scanned += count;
		if (err) { /* ENOENT: the end of the map */
			l->gc_started = 0;
			if (wrapped++)
				break;
			continue;
		}
		l->gc_cursor = out;
		l->gc_started = 1;
	}
	l->gc_calls++;
	l->gc_reclaimed += reclaimed;
	if (scanned > l->gc_max_scan)
		l->gc_max_scan = scanned;
	/* Nothing to take: a flood of new identities against a table of
	 * busy ones costs at most one bounded scan per backoff period. */
	l->gc_next_ns = reclaimed ? 0 : now + LIMITS_GC_BACKOFF_NS;
	atomic_store(&l->gc_busy, 0);
	log_ratelimited(&l->gc_log, LOG_LVL_INFO,
			"limits: cert_buckets full: removed %zu idle "
			"identities (%zu looked at)",
			reclaimed, scanned);
	return reclaimed;
}

/*
 * Never admits without limits: when no state can be had for the
 * identity (cert_buckets full of identities that are not idle, or no
 * memory), the connection is refused (2).
 */
int limits_bpf_admit(struct limits *l, int fd, const struct mtlsgw_bind *b,
		     unsigned *retry_after_s)
{
	int tries, saved = EAGAIN, collected = 0;

	for (tries = 0; tries < LIMITS_BIND_TRIES; tries++) {
		if (setsockopt(fd, MTLSGW_SOL, MTLSGW_SO_BIND, b, sizeof(*b)) ==
		    0)
			return 0;
		if (errno == EPERM) {
			*retry_after_s = limits_bpf_retry(
				l, &b->id, !!(b->flags & MTLSGW_CONN_ANONYMOUS),
				0);
			return 1;
		}
		saved = errno;
		if (saved == ENOSPC && !collected) {
			collected = 1;
			if (limits_bpf_gc(l) > 0)
				continue;
		}
		if (saved != EAGAIN) /* EAGAIN: reclaimed under us: again */
			break;
	}
	if (saved == ENOSPC || saved == EAGAIN || saved == ENOMEM) {
		if (saved == ENOSPC)
			log_ratelimited(&l->full_log, LOG_LVL_WARN,
					"limits: no limiter state for %s: "
					"cert_buckets is full (%d identities, "
					"none idle): refusing the connection",
					b->id.name, MTLSGW_MAX_IDENTITIES);
		else
			log_ratelimited(&l->full_log, LOG_LVL_WARN,
					"limits: no limiter state for %s (%s): "
					"refusing the connection",
					b->id.name, strerror(saved));
		*retry_after_s = MTLSGW_RETRY_AFTER_CONNS;
		return 2;
	}
	if (saved == ENOPROTOOPT && !atomic_exchange(&l->warned_cgroup, 1))
		log_error("limits: the BPF program does not see this socket: "
			  "create listening sockets after limits_new() (they "
			  "must belong to cgroup %s)",
			  l->cgroup);
	errno = saved;
	return -1;
}

int limits_bpf_request(struct limits *l, int fd, unsigned *retry_after_s)
{
	struct mtlsgw_request r = {.count = 1};
	struct mtlsgw_conn conn;
	int saved;

	if (setsockopt(fd, MTLSGW_SOL, MTLSGW_SO_REQUEST, &r, sizeof(r)) == 0)
		return 0;
	if (errno == ENOSPC) {
		/* No state for a bound connection: refuse, never serve
		 * unlimited. */
		*retry_after_s = MTLSGW_RETRY_AFTER_CONNS;
		return 1;
	}
	if (errno != EPERM)
		return -1;
	saved = errno;
	/* Socket storage is looked up from userspace by the socket's fd. */
	if (bpf_map_lookup_elem(l->fd_conns, &fd, &conn) == 0)
		*retry_after_s = limits_bpf_retry(
			l, &conn.id, !!(conn.flags & MTLSGW_CONN_ANONYMOUS), 1);
	else
		*retry_after_s = 1;
	errno = saved;
	return 1;
}

void limits_bpf_close(struct limits *l)
{
	size_t i;

	/* Closing our fds leaves the pinned links attached and the pinned
	 * maps in place. */
	for (i = 0; i < LIMITS_NPROGS; i++)
		bpf_link__destroy(l->links[i]);
	mtlsgw_bpf__destroy(l->skel);
	if (l->gc_sock >= 0)
		close(l->gc_sock);
	free(l->gc_keys);
	free(l->gc_vals);
}
