// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot event queue.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-event: " fmt

#include <linux/slab.h>
#include <linux/err.h>
#include <linux/jiffies.h>
#include <linux/sched/signal.h>
#include "event_queue.h"

void event_queue_init(struct event_queue *q)
{
	spin_lock_init(&q->lock);
	INIT_LIST_HEAD(&q->list);
	q->count = 0;
	q->closed = false;
	init_waitqueue_head(&q->wq);
}

void event_queue_done(struct event_queue *q)
{
	struct event *ev, *tmp;
	unsigned long flags;
	LIST_HEAD(list);

	spin_lock_irqsave(&q->lock, flags);
	list_splice_init(&q->list, &list);
	q->count = 0;
	spin_unlock_irqrestore(&q->lock, flags);

	list_for_each_entry_safe(ev, tmp, &list, link) {
		list_del(&ev->link);
		kfree(ev);
	}
}

void event_queue_close(struct event_queue *q)
{
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->closed = true;
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->wq);
}

void event_gen(struct event_queue *q, int code, const void *data,
	       unsigned int data_size)
{
	struct event *ev;
	unsigned long flags;

	if (WARN_ON_ONCE(data_size > EVENT_DATA_MAX))
		data_size = EVENT_DATA_MAX;

	ev = kzalloc(sizeof(*ev), GFP_ATOMIC);
	if (!ev) {
		pr_err("event %d lost: out of memory\n", code);
		return;
	}
	INIT_LIST_HEAD(&ev->link);
	ev->time = ktime_get();
	ev->code = code;
	ev->data_size = data_size;
	memcpy(ev->data, data, data_size);

	spin_lock_irqsave(&q->lock, flags);
	if (q->count >= EVENT_QUEUE_MAX || q->closed) {
		spin_unlock_irqrestore(&q->lock, flags);
		pr_warn("event %d dropped: queue full\n", code);
		kfree(ev);
		return;
	}
	list_add_tail(&ev->link, &q->list);
	q->count++;
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->wq);
}

/* Takes the oldest event, if any. Returns true when the wait may end. */
static bool event_take(struct event_queue *q, struct event **out,
		       bool *closed)
{
	unsigned long flags;
	bool done = false;

	spin_lock_irqsave(&q->lock, flags);
	if (!list_empty(&q->list)) {
		*out = list_first_entry(&q->list, struct event, link);
		list_del_init(&(*out)->link);
		q->count--;
		done = true;
	} else if (q->closed) {
		*closed = true;
		done = true;
	}
	spin_unlock_irqrestore(&q->lock, flags);
	return done;
}

struct event *event_wait(struct event_queue *q, unsigned int timeout_ms)
{
	struct event *ev = NULL;
	bool closed = false;
	long ret;

	might_sleep();
	ret = wait_event_interruptible_timeout(q->wq,
					       event_take(q, &ev, &closed),
					       msecs_to_jiffies(timeout_ms));
	if (ev)
		return ev;
	if (closed)
		return ERR_PTR(-ESRCH);
	if (ret < 0)
		return ERR_PTR(-EINTR);
	return ERR_PTR(-ENOENT);
}
