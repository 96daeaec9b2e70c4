/* SPDX-License-Identifier: MIT */
/*
 * Per-identity limits: the loader and daemon side of bpf/mtlsgw.bpf.c,
 * and the userspace fallback built on the same limiter code.
 *
 * BPF mode, at start: mount bpffs if needed; find our cgroup v2 (a child
 * of the root cgroup made for us if we sit in the root); open the
 * skeleton with every map's pin path set, so that libbpf reuses the maps
 * pinned by an earlier run (counters and limits survive) or creates and
 * pins them; load; then per program either update the pinned link to the
 * new program (atomically: no packet goes uncounted across a restart) or
 * attach and pin a new one. Nothing is unpinned at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <linux/bpf.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mtlsgw_abi.h"
#include "mtlsgw_limiter.h"
#include "mtlsgw.skel.h"

#include "limits.h"
#include "log.h"

_Static_assert(sizeof(struct mtlsgw_id) == 72, "mtlsgw_id");
_Static_assert(sizeof(struct mtlsgw_stats) == 200, "mtlsgw_stats");
_Static_assert(sizeof(struct mtlsgw_limit) == 64, "mtlsgw_limit");
_Static_assert(sizeof(struct mtlsgw_bucket) == 16, "mtlsgw_bucket");
_Static_assert(sizeof(struct mtlsgw_state) == 72, "mtlsgw_state");
_Static_assert(sizeof(struct mtlsgw_conn) == 80, "mtlsgw_conn");
_Static_assert(sizeof(struct mtlsgw_bind) == 144, "mtlsgw_bind");
_Static_assert(sizeof(struct mtlsgw_request) == 8, "mtlsgw_request");

#define LIMITS_BPFFS		  "/sys/fs/bpf"
#define LIMITS_CGROUP_PREFIX	  "mtlsgw-" /* child of the root cgroup */
#define LIMITS_NPROGS		  4
#define LIMITS_GC_MIN_INTERVAL_NS 1000000000ULL	 /* between two GC passes */
#define LIMITS_GC_IDLE_NS	  10000000000ULL /* bucket untouched this long */
#define LIMITS_U_CHAINS		  4096		 /* userspace table */
#define LIMITS_U_STRIPES	  64
#define LIMITS_U_CHAIN_MAX	  (MTLSGW_MAX_IDENTITIES / LIMITS_U_CHAINS)
#define LIMITS_U_MAX_FDS	  (1 << 20)

enum limits_mode { LIMITS_OFF, LIMITS_USERSPACE, LIMITS_BPF };

/* Userspace mode: one identity. Lives while it has open connections. */
struct limits_uentry {
	struct limits_uentry *next;
	struct mtlsgw_id id;
	int anonymous;
	unsigned active;
	struct mtlsgw_bucket conn;
	struct mtlsgw_bucket req;
	struct mtlsgw_stats st;
};

/* Userspace mode: the limits in force, swapped whole on reload. */
struct limits_uset {
	struct mtlsgw_limit def, anon;
	struct config_limit *over; /* sorted by key */
	size_t n_over;
};

struct limits {
	enum limits_mode mode;
	enum config_bpf_mode cfg_mode; /* as configured at start */
	char instance[64];

	/* bpf */
	struct mtlsgw_bpf *skel;
	struct bpf_link *links[LIMITS_NPROGS];
	char pin_dir[128];
	char cgroup[512];
	char left_cgroup[512]; /* the root cgroup we moved out of, or "" */
	int made_cgroup;       /* we created l->cgroup */
	int fd_stats, fd_limits, fd_buckets, fd_conns;
	pthread_mutex_t gc_lock;
	uint64_t gc_last_ns;
	atomic_int warned_cgroup;

	/* userspace */
	pthread_rwlock_t uset_lock;
	struct limits_uset *uset;
	pthread_mutex_t stripes[LIMITS_U_STRIPES];
	struct limits_uentry *chains[LIMITS_U_CHAINS];
	struct limits_uentry *_Atomic *fds;
	size_t n_fds;
};

static uint64_t limits_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Same clock as the BPF side's last_seen. */
static uint64_t limits_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_TAI, &ts);
	return (uint64_t)ts.tv_sec;
}

static unsigned limits_ns_to_retry(uint64_t ns)
{
	uint64_t s = (ns + 999999999ULL) / 1000000000ULL;

	if (s < 1)
		s = 1;
	if (s > 86400)
		s = 86400;
	return (unsigned)s;
}

static void limits_key(struct mtlsgw_id *key, const char *name)
{
	memset(key, 0, sizeof(*key));
	snprintf(key->name, sizeof(key->name), "%s", name);
}

/* The identity of a connection: fingerprint if verified, else address. */
static void limits_identity(const struct identity *id,
			    const struct sockaddr *peer, socklen_t peer_len,
			    struct mtlsgw_bind *b)
{
	char text[INET6_ADDRSTRLEN] = "unknown";

	memset(b, 0, sizeof(*b));
	if (id && id->verified && id->fingerprint[0]) {
		limits_key(&b->id, id->fingerprint);
		if (id->subject_cn)
			snprintf(b->subject, sizeof(b->subject), "%s",
				 id->subject_cn);
		return;
	}
	b->flags = MTLSGW_CONN_ANONYMOUS;
	if (peer && peer->sa_family == AF_INET &&
	    peer_len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)peer;

		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
	} else if (peer && peer->sa_family == AF_INET6 &&
		   peer_len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)peer;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], text,
				  sizeof(text));
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, text,
				  sizeof(text));
	}
	limits_key(&b->id, text);
}

static void limits_from_config(struct mtlsgw_limit *v,
			       const struct config_limit *c)
{
	memset(v, 0, sizeof(*v));
	v->max_conns = c->max_conns;
	v->conn_rate = c->conn_rate;
	v->conn_burst = c->conn_burst;
	v->req_rate = c->req_rate;
	v->req_burst = c->req_burst;
	v->bandwidth_out = c->bandwidth_out;
	v->bandwidth_in = c->bandwidth_in;
	v->from_config = 1;
}

static int limits_has_bandwidth(const struct config *cfg)
{
	size_t i;

	if (cfg->limit_default.bandwidth_in ||
	    cfg->limit_default.bandwidth_out ||
	    cfg->limit_anonymous.bandwidth_in ||
	    cfg->limit_anonymous.bandwidth_out)
		return 1;
	for (i = 0; i < cfg->n_limit_overrides; i++)
		if (cfg->limit_overrides[i].bandwidth_in ||
		    cfg->limit_overrides[i].bandwidth_out)
			return 1;
	return 0;
}

/* Record why BPF mode is unavailable (logged once by limits_new()). */
__attribute__((format(printf, 3, 4))) static void
limits_why(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
}

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

static int limits_instance_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 32 || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.')
			return 0;
	}
	return 1;
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

static int limits_bpf_sync(struct limits *l, const struct config *cfg);

static int limits_bpf_open(struct limits *l, const struct config *cfg,
			   char *why, size_t n)
{
	struct bpf_map *maps[4];
	int created[LIMITS_NPROGS] = {0}, new_map[4] = {0};
	char path[256];
	int cgfd = -1, err, i, rc = -1, made_dir;
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

	l->skel = mtlsgw_bpf__open();
	if (!l->skel) {
		limits_why(why, n, "open BPF object: %s", strerror(errno));
		goto cleanup;
	}
	maps[0] = l->skel->maps.cert_stats;
	maps[1] = l->skel->maps.cert_limits;
	maps[2] = l->skel->maps.cert_buckets;
	maps[3] = l->skel->maps.conn_identity;
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", l->pin_dir,
			 bpf_map__name(maps[i]));
		new_map[i] = access(path, F_OK) != 0;
		err = bpf_map__set_pin_path(maps[i], path);
		if (err) {
			limits_why(why, n, "pin path %s: %s", path,
				   strerror(-err));
			goto cleanup;
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
		goto cleanup;
	}
	l->fd_stats = bpf_map__fd(l->skel->maps.cert_stats);
	l->fd_limits = bpf_map__fd(l->skel->maps.cert_limits);
	l->fd_buckets = bpf_map__fd(l->skel->maps.cert_buckets);
	l->fd_conns = bpf_map__fd(l->skel->maps.conn_identity);

	if (limits_bpf_sync(l, cfg) < 0) {
		limits_why(why, n, "write %s/cert_limits: %s", l->pin_dir,
			   strerror(errno));
		goto cleanup;
	}
	for (i = 0; i < LIMITS_NPROGS; i++)
		if (limits_link(l, i, cgfd, cgid, &created[i], why, n) < 0)
			goto cleanup;
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

/* ---- BPF mode: limits from the config */

static int limits_cfg_names(const struct config *cfg, const char *key)
{
	size_t i;

	if (!strcmp(key, MTLSGW_KEY_DEFAULT) ||
	    !strcmp(key, MTLSGW_KEY_ANONYMOUS))
		return 1;
	for (i = 0; i < cfg->n_limit_overrides; i++)
		if (!strcmp(cfg->limit_overrides[i].key, key))
			return 1;
	return 0;
}

static int limits_bpf_put(struct limits *l, const struct config_limit *c)
{
	struct mtlsgw_limit v;
	struct mtlsgw_id key;

	limits_key(&key, c->key);
	limits_from_config(&v, c);
	return bpf_map_update_elem(l->fd_limits, &key, &v, BPF_ANY);
}

/* Write the config's entries, then drop those an earlier config wrote and
 * this one no longer names; operators' entries (from_config 0) stay. */
static int limits_bpf_sync(struct limits *l, const struct config *cfg)
{
	struct mtlsgw_id key, next, *stale = NULL;
	struct mtlsgw_limit v;
	size_t i, n_stale = 0;
	void *prev = NULL;
	int rc = 0;

	if (limits_bpf_put(l, &cfg->limit_default) ||
	    limits_bpf_put(l, &cfg->limit_anonymous))
		return -1;
	for (i = 0; i < cfg->n_limit_overrides; i++)
		if (limits_bpf_put(l, &cfg->limit_overrides[i]))
			return -1;

	stale = calloc(MTLSGW_MAX_LIMITS, sizeof(*stale));
	if (!stale)
		return -1;
	while (n_stale < MTLSGW_MAX_LIMITS &&
	       bpf_map_get_next_key(l->fd_limits, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(l->fd_limits, &key, &v) != 0)
			continue;
		key.name[sizeof(key.name) - 1] = 0;
		if (v.from_config && !limits_cfg_names(cfg, key.name))
			stale[n_stale++] = key;
	}
	for (i = 0; i < n_stale; i++) {
		if (bpf_map_delete_elem(l->fd_limits, &stale[i]) &&
		    errno != ENOENT)
			rc = -1;
		else
			log_info("limits: removed cert_limits entry %s (no "
				 "longer in the config)",
				 stale[i].name);
	}
	free(stale);
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
 * map): when it is full, drop the identities with no open connection
 * whose buckets are full again and untouched for a while, i.e. whose
 * state equals a fresh one.
 */
static void limits_bpf_gc(struct limits *l)
{
	struct mtlsgw_id key, next;
	struct mtlsgw_limit lim;
	struct mtlsgw_state st;
	void *prev = NULL;
	uint64_t now = limits_now_ns();
	size_t removed = 0;

	if (pthread_mutex_trylock(&l->gc_lock) != 0)
		return;
	if (now - l->gc_last_ns < LIMITS_GC_MIN_INTERVAL_NS) {
		pthread_mutex_unlock(&l->gc_lock);
		return;
	}
	l->gc_last_ns = now;
	while (bpf_map_get_next_key(l->fd_buckets, prev, &next) == 0) {
		int idle = 1, anonymous;
		struct mtlsgw_bucket *b[4] = {&st.conn, &st.req, &st.bw_in,
					      &st.bw_out};
		int i;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem_flags(l->fd_buckets, &key, &st,
					      BPF_F_LOCK) != 0)
			continue;
		if (st.active)
			continue;
		anonymous = strlen(key.name) != IDENTITY_FP_HEX_LEN;
		limits_bpf_lookup_limit(l, &key, anonymous, &lim);
		for (i = 0; i < 4; i++) {
			if (b[i]->last_ns &&
			    now - b[i]->last_ns < LIMITS_GC_IDLE_NS)
				idle = 0;
		}
		if (idle &&
		    limiter_wait_ns(
			    &st.conn, lim.conn_rate, lim.conn_burst,
			    limiter_burst(lim.conn_rate, lim.conn_burst),
			    now) != 0)
			idle = 0;
		if (idle &&
		    limiter_wait_ns(&st.req, lim.req_rate, lim.req_burst,
				    limiter_burst(lim.req_rate, lim.req_burst),
				    now) != 0)
			idle = 0;
		if (idle && bpf_map_delete_elem(l->fd_buckets, &key) == 0)
			removed++;
	}
	pthread_mutex_unlock(&l->gc_lock);
	log_info("limits: cert_buckets full: removed %zu idle identities",
		 removed);
}

static int limits_bpf_admit(struct limits *l, int fd,
			    const struct mtlsgw_bind *b,
			    unsigned *retry_after_s)
{
	int tries, saved;

	for (tries = 0; tries < 2; tries++) {
		if (setsockopt(fd, MTLSGW_SOL, MTLSGW_SO_BIND, b, sizeof(*b)) ==
		    0)
			return 0;
		if (errno == EPERM) {
			*retry_after_s = limits_bpf_retry(
				l, &b->id, !!(b->flags & MTLSGW_CONN_ANONYMOUS),
				0);
			return 1;
		}
		if (errno == ENOMEM && tries == 0) {
			limits_bpf_gc(l);
			continue;
		}
		break;
	}
	saved = errno;
	if (errno == ENOPROTOOPT && !atomic_exchange(&l->warned_cgroup, 1))
		log_error("limits: the BPF program does not see this socket: "
			  "create listening sockets after limits_new() (they "
			  "must belong to cgroup %s)",
			  l->cgroup);
	errno = saved;
	return -1;
}

static int limits_bpf_request(struct limits *l, int fd, unsigned *retry_after_s)
{
	struct mtlsgw_request r = {.count = 1};
	struct mtlsgw_conn conn;
	int saved;

	if (setsockopt(fd, MTLSGW_SOL, MTLSGW_SO_REQUEST, &r, sizeof(r)) == 0)
		return 0;
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

/* ---- userspace mode */

static void limits_uset_free(struct limits_uset *u)
{
	if (!u)
		return;
	free(u->over);
	free(u);
}

static int limits_cmp_limit(const void *a, const void *b)
{
	return strcmp(((const struct config_limit *)a)->key,
		      ((const struct config_limit *)b)->key);
}

static struct limits_uset *limits_uset_new(const struct config *cfg)
{
	struct limits_uset *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	limits_from_config(&u->def, &cfg->limit_default);
	limits_from_config(&u->anon, &cfg->limit_anonymous);
	if (cfg->n_limit_overrides) {
		u->over = calloc(cfg->n_limit_overrides, sizeof(*u->over));
		if (!u->over) {
			free(u);
			return NULL;
		}
		memcpy(u->over, cfg->limit_overrides,
		       cfg->n_limit_overrides * sizeof(*u->over));
		u->n_over = cfg->n_limit_overrides;
		qsort(u->over, u->n_over, sizeof(*u->over), limits_cmp_limit);
	}
	return u;
}

static void limits_u_limit(struct limits *l, const struct limits_uentry *e,
			   struct mtlsgw_limit *out)
{
	struct config_limit probe, *hit = NULL;
	struct limits_uset *u;

	pthread_rwlock_rdlock(&l->uset_lock);
	u = l->uset;
	if (u->n_over && !e->anonymous) {
		snprintf(probe.key, sizeof(probe.key), "%s", e->id.name);
		hit = bsearch(&probe, u->over, u->n_over, sizeof(*u->over),
			      limits_cmp_limit);
	}
	if (hit)
		limits_from_config(out, hit);
	else
		*out = e->anonymous ? u->anon : u->def;
	pthread_rwlock_unlock(&l->uset_lock);
}

static unsigned limits_hash(const struct mtlsgw_id *id)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < sizeof(id->name) && id->name[i]; i++)
		h = (h ^ (unsigned char)id->name[i]) * 16777619u;
	return h;
}

/* The entry for B's identity, created if missing; its stripe locked. */
static struct limits_uentry *limits_u_get(struct limits *l,
					  const struct mtlsgw_bind *b,
					  pthread_mutex_t **lock)
{
	unsigned c = limits_hash(&b->id) % LIMITS_U_CHAINS;
	struct limits_uentry *e, **victim = NULL, **pp;
	size_t n = 0;

	*lock = &l->stripes[c % LIMITS_U_STRIPES];
	pthread_mutex_lock(*lock);
	for (pp = &l->chains[c]; *pp; pp = &(*pp)->next, n++) {
		e = *pp;
		if (!memcmp(&e->id, &b->id, sizeof(e->id)))
			return e;
		if (!e->active &&
		    (!victim || e->st.last_seen < (*victim)->st.last_seen))
			victim = pp;
	}
	if (n >= LIMITS_U_CHAIN_MAX) {
		if (!victim) {
			pthread_mutex_unlock(*lock);
			errno = ENOSPC;
			return NULL;
		}
		e = *victim;
		*victim = e->next;
		free(e);
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(*lock);
		return NULL;
	}
	e->id = b->id;
	e->anonymous = !!(b->flags & MTLSGW_CONN_ANONYMOUS);
	if (!e->anonymous)
		memcpy(e->st.fingerprint, b->id.name,
		       sizeof(e->st.fingerprint));
	memcpy(e->st.subject, b->subject, sizeof(e->st.subject));
	e->st.subject[sizeof(e->st.subject) - 1] = 0;
	e->next = l->chains[c];
	l->chains[c] = e;
	return e;
}

static pthread_mutex_t *limits_u_lock_of(struct limits *l,
					 const struct limits_uentry *e)
{
	return &l->stripes[(limits_hash(&e->id) % LIMITS_U_CHAINS) %
			   LIMITS_U_STRIPES];
}

static void limits_u_release(struct limits *l, int fd)
{
	struct limits_uentry *e;
	pthread_mutex_t *lock;

	if (fd < 0 || (size_t)fd >= l->n_fds)
		return;
	e = atomic_exchange(&l->fds[fd], NULL);
	if (!e)
		return;
	lock = limits_u_lock_of(l, e);
	pthread_mutex_lock(lock);
	if (e->active)
		e->active--;
	e->st.conns_active = e->active;
	e->st.last_seen = limits_now_seconds();
	pthread_mutex_unlock(lock);
}

static int limits_u_admit(struct limits *l, int fd, const struct mtlsgw_bind *b,
			  unsigned *retry_after_s)
{
	struct limits_uentry *e, *expected = NULL;
	struct mtlsgw_limit lim;
	pthread_mutex_t *lock;
	uint64_t now = limits_now_ns();
	int refused = 0;

	if (fd < 0 || (size_t)fd >= l->n_fds) {
		errno = EBADF;
		return -1;
	}
	/* A descriptor number is reused only after a close: an entry still
	 * there means limits_release() was missed for the old connection. */
	limits_u_release(l, fd);
	e = limits_u_get(l, b, &lock);
	if (!e)
		return -1;
	limits_u_limit(l, e, &lim);
	if (lim.max_conns && e->active >= lim.max_conns) {
		refused = 1;
		*retry_after_s = MTLSGW_RETRY_AFTER_CONNS;
	} else if (!limiter_take(&e->conn, lim.conn_rate, lim.conn_burst, 1,
				 now)) {
		refused = 1;
		*retry_after_s = limits_ns_to_retry(limiter_wait_ns(
			&e->conn, lim.conn_rate, lim.conn_burst, 1, now));
	}
	e->st.last_seen = limits_now_seconds();
	if (refused) {
		e->st.conns_rejected++;
	} else {
		e->active++;
		e->st.conns_active = e->active;
		e->st.conns_total++;
	}
	pthread_mutex_unlock(lock);
	if (!refused &&
	    !atomic_compare_exchange_strong(&l->fds[fd], &expected, e)) {
		/* Another thread bound this fd meanwhile: undo ours. */
		pthread_mutex_lock(lock);
		e->active--;
		e->st.conns_active = e->active;
		e->st.conns_total--;
		pthread_mutex_unlock(lock);
	}
	return refused;
}

static int limits_u_request(struct limits *l, int fd, unsigned *retry_after_s)
{
	struct limits_uentry *e;
	struct mtlsgw_limit lim;
	pthread_mutex_t *lock;
	uint64_t now = limits_now_ns();
	int ok;

	if (fd < 0 || (size_t)fd >= l->n_fds ||
	    !(e = atomic_load(&l->fds[fd]))) {
		errno = ENOENT;
		return -1;
	}
	limits_u_limit(l, e, &lim);
	lock = limits_u_lock_of(l, e);
	pthread_mutex_lock(lock);
	ok = limiter_take(&e->req, lim.req_rate, lim.req_burst, 1, now);
	if (ok)
		e->st.requests++;
	else {
		e->st.requests_rejected++;
		*retry_after_s = limits_ns_to_retry(limiter_wait_ns(
			&e->req, lim.req_rate, lim.req_burst, 1, now));
	}
	e->st.last_seen = limits_now_seconds();
	pthread_mutex_unlock(lock);
	return !ok;
}

static int limits_u_open(struct limits *l, const struct config *cfg)
{
	struct rlimit rl;
	size_t i;

	l->uset = limits_uset_new(cfg);
	if (!l->uset)
		return -1;
	l->n_fds = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > l->n_fds)
		l->n_fds = rl.rlim_cur;
	if (l->n_fds > LIMITS_U_MAX_FDS)
		l->n_fds = LIMITS_U_MAX_FDS;
	l->fds = calloc(l->n_fds, sizeof(*l->fds));
	if (!l->fds)
		return -1;
	for (i = 0; i < LIMITS_U_STRIPES; i++)
		pthread_mutex_init(&l->stripes[i], NULL);
	return 0;
}

/* ---- interface */

struct limits *limits_new(const struct config *cfg)
{
	struct limits *l;
	char why[512] = "";
	const char *inst = cfg->bpf_instance ? cfg->bpf_instance
					     : CONFIG_DEFAULT_BPF_INSTANCE;

	l = calloc(1, sizeof(*l));
	if (!l) {
		log_error("limits: out of memory");
		return NULL;
	}
	pthread_rwlock_init(&l->uset_lock, NULL);
	pthread_mutex_init(&l->gc_lock, NULL);
	l->fd_stats = l->fd_limits = l->fd_buckets = l->fd_conns = -1;
	snprintf(l->instance, sizeof(l->instance), "%s", inst);
	l->cfg_mode = cfg->bpf_mode;

	if (cfg->bpf_mode == CONFIG_BPF_OFF) {
		l->mode = LIMITS_OFF;
		log_info("limits: off ([bpf] mode = off): no per-client "
			 "counters or limits");
		return l;
	}
	if (!limits_instance_ok(inst))
		snprintf(why, sizeof(why), "bad instance name '%s'", inst);
	else if (limits_bpf_open(l, cfg, why, sizeof(why)) == 0) {
		l->mode = LIMITS_BPF;
		log_info("limits: bpf: enforced in the kernel; programs "
			 "attached to cgroup %s, maps pinned in %s",
			 l->cgroup, l->pin_dir);
		return l;
	}
	if (strstr(why, strerror(EPERM)) || strstr(why, strerror(EACCES)))
		limits_why(why + strlen(why), sizeof(why) - strlen(why),
			   " (BPF needs root, or CAP_BPF, CAP_NET_ADMIN and "
			   "CAP_SYS_ADMIN)");
	if (cfg->bpf_mode == CONFIG_BPF_REQUIRED) {
		log_error("limits: [bpf] mode = required, but BPF is "
			  "unavailable: %s",
			  why);
		limits_free(l);
		return NULL;
	}
	if (limits_u_open(l, cfg) < 0) {
		log_error("limits: out of memory");
		limits_free(l);
		return NULL;
	}
	l->mode = LIMITS_USERSPACE;
	log_warn("limits: BPF UNAVAILABLE (%s): limits are enforced in "
		 "USERSPACE instead%s; no counters in %s/%s",
		 why,
		 limits_has_bandwidth(cfg)
			 ? ", bandwidth_in/bandwidth_out are NOT enforced"
			 : "",
		 MTLSGW_PIN_ROOT, l->instance);
	return l;
}

int limits_admit(struct limits *l, int tcp_fd, const struct identity *id,
		 const struct sockaddr *peer, socklen_t peer_len,
		 unsigned *retry_after_s)
{
	struct mtlsgw_bind b;
	unsigned dummy;

	if (!retry_after_s)
		retry_after_s = &dummy;
	*retry_after_s = 0;
	if (!l || l->mode == LIMITS_OFF)
		return 0;
	limits_identity(id, peer, peer_len, &b);
	if (l->mode == LIMITS_BPF)
		return limits_bpf_admit(l, tcp_fd, &b, retry_after_s);
	return limits_u_admit(l, tcp_fd, &b, retry_after_s);
}

int limits_request(struct limits *l, int tcp_fd, unsigned *retry_after_s)
{
	unsigned dummy;

	if (!retry_after_s)
		retry_after_s = &dummy;
	*retry_after_s = 0;
	if (!l || l->mode == LIMITS_OFF)
		return 0;
	if (l->mode == LIMITS_BPF)
		return limits_bpf_request(l, tcp_fd, retry_after_s);
	return limits_u_request(l, tcp_fd, retry_after_s);
}

void limits_release(struct limits *l, int tcp_fd)
{
	if (l && l->mode == LIMITS_USERSPACE)
		limits_u_release(l, tcp_fd);
}

int limits_reload(struct limits *l, const struct config *cfg)
{
	struct limits_uset *u, *old;

	if (!l || l->mode == LIMITS_OFF)
		return 0;
	if (cfg->bpf_mode != l->cfg_mode ||
	    strcmp(cfg->bpf_instance ? cfg->bpf_instance
				     : CONFIG_DEFAULT_BPF_INSTANCE,
		   l->instance) != 0)
		log_warn("limits: [bpf] changes apply at the next restart");
	if (l->mode == LIMITS_BPF) {
		if (limits_bpf_sync(l, cfg) < 0) {
			log_error("limits: reload: write %s/cert_limits: %s",
				  l->pin_dir, strerror(errno));
			return -1;
		}
		log_info("limits: reloaded %zu override(s) into %s/cert_limits",
			 cfg->n_limit_overrides, l->pin_dir);
		return 0;
	}
	u = limits_uset_new(cfg);
	if (!u) {
		log_error("limits: reload: out of memory");
		return -1;
	}
	pthread_rwlock_wrlock(&l->uset_lock);
	old = l->uset;
	l->uset = u;
	pthread_rwlock_unlock(&l->uset_lock);
	limits_uset_free(old);
	log_info("limits: reloaded (userspace, %zu override(s))",
		 cfg->n_limit_overrides);
	return 0;
}

const char *limits_mode_name(const struct limits *l)
{
	if (!l)
		return "off";
	switch (l->mode) {
	case LIMITS_BPF:
		return "bpf";
	case LIMITS_USERSPACE:
		return "userspace";
	default:
		return "off";
	}
}

void limits_free(struct limits *l)
{
	struct limits_uentry *e, *next;
	size_t i;

	if (!l)
		return;
	/* Closing our fds leaves the pinned links attached and the pinned
	 * maps in place. */
	for (i = 0; i < LIMITS_NPROGS; i++)
		bpf_link__destroy(l->links[i]);
	mtlsgw_bpf__destroy(l->skel);
	for (i = 0; i < LIMITS_U_CHAINS; i++) {
		for (e = l->chains[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(l->fds);
	limits_uset_free(l->uset);
	if (l->mode == LIMITS_USERSPACE)
		for (i = 0; i < LIMITS_U_STRIPES; i++)
			pthread_mutex_destroy(&l->stripes[i]);
	pthread_mutex_destroy(&l->gc_lock);
	pthread_rwlock_destroy(&l->uset_lock);
	free(l);
}
