/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The event queue of one snapshot: what IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT
 * returns.
 */
#ifndef __BLKSNAP_EVENT_QUEUE_H
#define __BLKSNAP_EVENT_QUEUE_H

#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/ktime.h>

/* At most this many events wait in a queue; later ones are dropped. */
#define EVENT_QUEUE_MAX 64
#define EVENT_DATA_MAX 64

/**
 * struct event - One event.
 * @link: In &event_queue.list.
 * @time: When it happened (ktime_get()).
 * @code: enum blksnap_event_codes.
 * @data_size: Bytes used in @data.
 * @data: The payload.
 */
struct event {
	struct list_head link;
	ktime_t time;
	int code;
	unsigned int data_size;
	u8 data[EVENT_DATA_MAX];
};

/**
 * struct event_queue - A queue of events.
 * @lock: Guards @list, @count and @closed. Taken with interrupts disabled:
 *	events may be raised from bio completion.
 * @list: Events, oldest first.
 * @count: Entries in @list.
 * @closed: The snapshot is being destroyed: waiters leave with -ESRCH.
 * @wq: Waiters for an event.
 */
struct event_queue {
	spinlock_t lock;
	struct list_head list;
	unsigned int count;
	bool closed;
	wait_queue_head_t wq;
};

void event_queue_init(struct event_queue *q);
/* Frees every pending event. No waiter may remain (see event_queue_close). */
void event_queue_done(struct event_queue *q);
/* Wakes waiters, who return -ESRCH from now on. */
void event_queue_close(struct event_queue *q);
/* Queues an event. Any context (GFP_ATOMIC); dropped when full. */
void event_gen(struct event_queue *q, int code, const void *data,
	       unsigned int data_size);
/*
 * Waits up to @timeout_ms for an event. May sleep. Returns the event (the
 * caller frees it with kfree) or ERR_PTR(-ENOENT) on timeout, -EINTR on a
 * signal, -ESRCH when the queue was closed.
 */
struct event *event_wait(struct event_queue *q, unsigned int timeout_ms);

#endif /* __BLKSNAP_EVENT_QUEUE_H */
