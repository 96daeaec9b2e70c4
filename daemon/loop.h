/* SPDX-License-Identifier: MIT */
/*
 * A worker's event loop: level-triggered epoll plus a min-heap of timers.
 * One loop per worker thread; nothing here is thread-safe, and nothing
 * needs to be: every fd and timer belongs to exactly one worker.
 */
#ifndef MTLSGW_LOOP_H
#define MTLSGW_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;
struct loop_timer;

typedef void (*loop_watch_fn)(struct loop_watch *w, uint32_t events);
typedef void (*loop_timer_fn)(struct loop_timer *t);

/* Embed in the owner's struct; recover it with container_of. */
struct loop_watch {
	int fd;
	uint32_t events; /* EPOLLIN | EPOLLOUT currently asked for */
	bool added;
	loop_watch_fn fn;
};

struct loop_timer {
	uint64_t deadline_ms; /* CLOCK_MONOTONIC */
	unsigned heap_index;  /* 0 = not armed */
	loop_timer_fn fn;
};

#define container_of(ptr, type, member)                                        \
	((type *)((char *)(ptr) - __builtin_offsetof(type, member)))

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Watch FD for EVENTS (0 is allowed: registered but quiet). */
int loop_watch_add(struct loop *l, struct loop_watch *w, int fd,
		   uint32_t events, loop_watch_fn fn);
/* Change the interest set; a no-op if unchanged. */
int loop_watch_set(struct loop *l, struct loop_watch *w, uint32_t events);
/* Hand FROM's registration of its fd over to TO, with EVENTS and FN: one
 * epoll_ctl instead of a delete and an add. FROM is no longer added. */
int loop_watch_move(struct loop *l, struct loop_watch *from,
		    struct loop_watch *to, uint32_t events, loop_watch_fn fn);
/* Stop watching (call before closing the fd). No-op if not added. */
void loop_watch_del(struct loop *l, struct loop_watch *w);

/* Arm T to fire AFTER_MS from now (re-arming moves it). */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t after_ms,
		    loop_timer_fn fn);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/*
 * Free PTR once the current dispatch batch is over: an event later in the
 * same epoll batch may still point at it (its handler then sees the owner
 * marked closed and returns).
 */
void loop_defer_free(struct loop *l, void *ptr);

/* Monotonic milliseconds. */
uint64_t loop_now_ms(void);

/*
 * Wait at most MAX_WAIT_MS (-1 = until the next timer) and dispatch what
 * is ready: first fd events, then expired timers. Returns -1 on a fatal
 * epoll error.
 */
int loop_run_once(struct loop *l, int max_wait_ms);

#endif
