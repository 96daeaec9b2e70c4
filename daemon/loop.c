// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define LOOP_MAX_EVENTS 256

struct loop {
	int epfd;
	/* 1-based binary min-heap on deadline_ms; heap[0] unused */
	struct loop_timer **heap;
	unsigned n_timers;
	unsigned cap_timers;
	void **graveyard; /* loop_defer_free, emptied after each batch */
	size_t n_graves, cap_graves;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		free(l);
		return NULL;
	}
	return l;
}

static void loop_bury(struct loop *l)
{
	size_t i;

	for (i = 0; i < l->n_graves; i++)
		free(l->graveyard[i]);
	l->n_graves = 0;
}

void loop_defer_free(struct loop *l, void *ptr)
{
	if (l->n_graves == l->cap_graves) {
		size_t cap = l->cap_graves ? l->cap_graves * 2 : 64;
		void **g = realloc(l->graveyard, cap * sizeof(*g));

		if (!g) {
			/* Leak rather than risk a use after free. */
			log_error("defer free: out of memory");
			return;
		}
		l->graveyard = g;
		l->cap_graves = cap;
	}
	l->graveyard[l->n_graves++] = ptr;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	loop_bury(l);
	free(l->graveyard);
	close(l->epfd);
	free(l->heap);
	free(l);
}

int loop_watch_add(struct loop *l, struct loop_watch *w, int fd,
		   uint32_t events, loop_watch_fn fn)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	w->fd = fd;
	w->fn = fn;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_error("epoll_ctl add fd %d: %s", fd, strerror(errno));
		return -1;
	}
	w->events = events;
	w->added = true;
	return 0;
}

int loop_watch_set(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (!w->added || w->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0) {
		log_error("epoll_ctl mod fd %d: %s", w->fd, strerror(errno));
		return -1;
	}
	w->events = events;
	return 0;
}

int loop_watch_move(struct loop *l, struct loop_watch *from,
		    struct loop_watch *to, uint32_t events, loop_watch_fn fn)
{
	struct epoll_event ev = {.events = events, .data.ptr = to};

	if (!from->added)
		return loop_watch_add(l, to, from->fd, events, fn);
	from->added = false;
	from->events = 0;
	to->fd = from->fd;
	to->fn = fn;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, to->fd, &ev) < 0) {
		log_error("epoll_ctl mod fd %d: %s", to->fd, strerror(errno));
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, to->fd, NULL);
		return -1;
	}
	to->events = events;
	to->added = true;
	return 0;
}

void loop_watch_del(struct loop *l, struct loop_watch *w)
{
	if (!w->added)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->added = false;
	w->events = 0;
}

static void loop_heap_swap(struct loop *l, unsigned a, unsigned b)
{
	struct loop_timer *t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_index = a;
	l->heap[b]->heap_index = b;
}

static void loop_heap_up(struct loop *l, unsigned i)
{
	while (i > 1 && l->heap[i / 2]->deadline_ms > l->heap[i]->deadline_ms) {
		loop_heap_swap(l, i, i / 2);
		i /= 2;
	}
}

static void loop_heap_down(struct loop *l, unsigned i)
{
	for (;;) {
		unsigned s = i, c = 2 * i;

		if (c <= l->n_timers &&
		    l->heap[c]->deadline_ms < l->heap[s]->deadline_ms)
			s = c;
		if (c + 1 <= l->n_timers &&
		    l->heap[c + 1]->deadline_ms < l->heap[s]->deadline_ms)
			s = c + 1;
		if (s == i)
			return;
		loop_heap_swap(l, i, s);
		i = s;
	}
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	unsigned i = t->heap_index;

	if (i == 0)
		return;
	t->heap_index = 0;
	if (i != l->n_timers) {
		l->heap[i] = l->heap[l->n_timers];
		l->heap[i]->heap_index = i;
		l->n_timers--;
		loop_heap_up(l, i);
		loop_heap_down(l, i);
	} else {
		l->n_timers--;
	}
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t after_ms,
		    loop_timer_fn fn)
{
	loop_timer_cancel(l, t);
	if (l->n_timers + 1 >= l->cap_timers) {
		unsigned cap = l->cap_timers ? l->cap_timers * 2 : 64;
		struct loop_timer **h = realloc(l->heap, cap * sizeof(*h));

		if (!h) {
			/* Out of memory: fire at once rather than never. */
			log_error("timer heap: out of memory");
			fn(t);
			return;
		}
		l->heap = h;
		l->cap_timers = cap;
	}
	t->deadline_ms = loop_now_ms() + after_ms;
	t->fn = fn;
	t->heap_index = ++l->n_timers;
	l->heap[t->heap_index] = t;
	loop_heap_up(l, t->heap_index);
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	struct epoll_event ev[LOOP_MAX_EVENTS];
	int n, i, wait = max_wait_ms;
	uint64_t now;

	if (l->n_timers) {
		now = loop_now_ms();
		if (l->heap[1]->deadline_ms <= now)
			wait = 0;
		else if (wait < 0 ||
			 l->heap[1]->deadline_ms - now < (uint64_t)wait)
			wait = (int)(l->heap[1]->deadline_ms - now);
	}
	n = epoll_wait(l->epfd, ev, LOOP_MAX_EVENTS, wait);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		log_error("epoll_wait: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct loop_watch *w = ev[i].data.ptr;

		w->fn(w, ev[i].events);
	}
	now = loop_now_ms();
	while (l->n_timers && l->heap[1]->deadline_ms <= now) {
		struct loop_timer *t = l->heap[1];

		loop_timer_cancel(l, t);
		t->fn(t);
	}
	loop_bury(l);
	return 0;
}
