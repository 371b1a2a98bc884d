// SPDX-License-Identifier: GPL-2.0
/*
 * Write gates (see write_gate.h).
 *
 * Counting a write until it completes needs its completion: an admitted
 * bio's bi_end_io and bi_private are swapped for write_gate_end_io() and a
 * record holding the originals, as stacking drivers do (dm's hooks, the
 * blk-crypto fallback). bio_endio() then calls write_gate_end_io() once,
 * after the bio and all bios split off it and chained to it completed; it
 * restores the originals and ends the bio again with bio_endio(), never by
 * calling the original bi_end_io itself: that may be bio_chain_endio(),
 * which only bio_endio() may run (7.2 BUG()s when it is called). The
 * second pass does no accounting again: the first cleared the chain count
 * and the trace flag and released the cgroup (which the rq-qos and throttle
 * hooks look for) and the integrity payload. A write counted at several
 * gates has one record per gate: each record's "original" is the record
 * under it.
 *
 * Nothing is ever waited for on the submit path: a closed gate keeps the
 * bio instead of blocking its submitter. A submitter can hold admitted
 * bios on its own current->bio_list (a stacked driver's submit_bio) and
 * submit more: had it blocked at a closed gate, the drain would wait for
 * bios that only it can dispatch.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-gate: " fmt

#include <linux/slab.h>
#include <linux/sched.h>
#include "write_gate.h"

/* Records kept per gate for when the allocator has nothing. */
#define WRITE_GATE_RESERVE 64

/**
 * struct write_gate_record - What an admitted bio's completion restores.
 * @gate: The gate that admitted the bio (its count is held).
 * @end_io: The bio's own bi_end_io.
 * @private: The bio's own bi_private.
 */
struct write_gate_record {
	struct write_gate *gate;
	bio_end_io_t *end_io;
	void *private;
};

static struct kmem_cache *record_cache;
/* Resubmits deferred writes; WQ_MEM_RECLAIM: writeback may wait on them. */
static struct workqueue_struct *gate_wq;

int write_gate_module_init(void)
{
	record_cache = KMEM_CACHE(write_gate_record, 0);
	if (!record_cache)
		return -ENOMEM;
	gate_wq = alloc_workqueue("blksnap-gate", WQ_UNBOUND | WQ_MEM_RECLAIM,
				  0);
	if (!gate_wq) {
		kmem_cache_destroy(record_cache);
		return -ENOMEM;
	}
	return 0;
}

void write_gate_module_exit(void)
{
	destroy_workqueue(gate_wq);
	kmem_cache_destroy(record_cache);
}

static void write_gate_drained(struct percpu_ref *ref)
{
	struct write_gate *gate = container_of(ref, struct write_gate,
					       inflight);

	complete(&gate->drained);
}

static void write_gate_resubmit_work(struct work_struct *work)
{
	struct write_gate *gate = container_of(work, struct write_gate,
					       resubmit_work);
	unsigned long flags;
	struct bio *bio;

	for (;;) {
		spin_lock_irqsave(&gate->lock, flags);
		/* Closed again: write_gate_open() queues us once more. */
		bio = gate->closed ? NULL : bio_list_pop(&gate->deferred);
		spin_unlock_irqrestore(&gate->lock, flags);
		if (!bio)
			break;
		gate->resubmit(bio);
		cond_resched();
	}
}

int write_gate_init(struct write_gate *gate, void (*resubmit)(struct bio *),
		    const void *domain)
{
	int ret;

	/* Killed and resurrected at every close and open. */
	ret = percpu_ref_init(&gate->inflight, write_gate_drained,
			      PERCPU_REF_ALLOW_REINIT, GFP_KERNEL);
	if (ret)
		return ret;
	gate->records = mempool_create_slab_pool(WRITE_GATE_RESERVE,
						 record_cache);
	if (!gate->records) {
		percpu_ref_exit(&gate->inflight);
		return -ENOMEM;
	}
	init_completion(&gate->drained);
	mutex_init(&gate->close_lock);
	spin_lock_init(&gate->lock);
	gate->closed = false;
	gate->dying = false;
	bio_list_init(&gate->deferred);
	INIT_WORK(&gate->resubmit_work, write_gate_resubmit_work);
	gate->resubmit = resubmit;
	gate->domain = domain;
	return 0;
}

/*
 * Waits for @gate->drained without a hung-task report: a write held by
 * blk-throttle or a slow device may take minutes, and that is not a hang.
 */
static void write_gate_wait_drained(struct write_gate *gate)
{
	while (!wait_for_completion_timeout(&gate->drained, 10 * HZ))
		;
}

void write_gate_exit(struct write_gate *gate)
{
	unsigned long flags;
	struct bio *bio;

	spin_lock_irqsave(&gate->lock, flags);
	WRITE_ONCE(gate->dying, true);
	spin_unlock_irqrestore(&gate->lock, flags);

	reinit_completion(&gate->drained);
	percpu_ref_kill(&gate->inflight);
	write_gate_wait_drained(gate);
	/*
	 * Writes deferred while it was closed (not now: the owner does not
	 * close a gate it frees) would be here; the owner's path no longer
	 * finds this gate, so they would go on without it.
	 */
	flush_work(&gate->resubmit_work);
	for (;;) {
		spin_lock_irqsave(&gate->lock, flags);
		bio = bio_list_pop(&gate->deferred);
		spin_unlock_irqrestore(&gate->lock, flags);
		if (!bio)
			break;
		gate->resubmit(bio);
	}
	percpu_ref_exit(&gate->inflight);
	mempool_destroy(gate->records);
}

enum write_gate_entry write_gate_enter(struct write_gate *gate)
{
	if (percpu_ref_tryget_live(&gate->inflight)) {
		/*
		 * Pairs with the release in percpu_ref_resurrect(): what the
		 * switch changed before write_gate_open() is seen by everything
		 * the caller reads from now on.
		 */
		smp_rmb();
		return GATE_ENTERED;
	}
	/* Killed: by write_gate_close() or write_gate_exit(). */
	return READ_ONCE(gate->dying) ? GATE_DYING : GATE_CLOSED;
}

bool write_gate_defer_closed(struct write_gate *gate, struct bio *bio)
{
	unsigned long flags;
	bool deferred;

	spin_lock_irqsave(&gate->lock, flags);
	deferred = gate->closed;
	if (deferred)
		bio_list_add(&gate->deferred, bio);
	spin_unlock_irqrestore(&gate->lock, flags);
	return deferred;
}

void write_gate_leave(struct write_gate *gate)
{
	percpu_ref_put(&gate->inflight);
}

static void write_gate_end_io(struct bio *bio)
{
	struct write_gate_record *rec = bio->bi_private;
	struct write_gate *gate = rec->gate;

	bio->bi_end_io = rec->end_io;
	bio->bi_private = rec->private;
	mempool_free(rec, gate->records);
	bio_endio(bio);
	/* Last: this may let a switch go on, or the gate be freed. */
	percpu_ref_put(&gate->inflight);
}

int write_gate_track(struct write_gate *gate, struct bio *bio, gfp_t gfp)
{
	struct write_gate_record *rec = mempool_alloc(gate->records, gfp);

	if (!rec)
		return -ENOMEM;
	rec->gate = gate;
	rec->end_io = bio->bi_end_io;
	rec->private = bio->bi_private;
	bio->bi_end_io = write_gate_end_io;
	bio->bi_private = rec;
	return 0;
}

void write_gate_untrack(struct bio *bio)
{
	struct write_gate_record *rec = bio->bi_private;
	struct write_gate *gate = rec->gate;

	bio->bi_end_io = rec->end_io;
	bio->bi_private = rec->private;
	mempool_free(rec, gate->records);
	percpu_ref_put(&gate->inflight);
}

/* The record of @bio's top if it is a gate's, else NULL. */
static struct write_gate_record *top_record(struct bio *bio)
{
	/* Records live as long as the bio is in flight. */
	return bio->bi_end_io == write_gate_end_io ? bio->bi_private : NULL;
}

struct write_gate *write_gate_top(struct bio *bio, const void *domain)
{
	struct write_gate_record *rec = top_record(bio);

	return rec && rec->gate->domain == domain ? rec->gate : NULL;
}

struct write_gate *write_gate_below(struct bio *bio, struct write_gate *gate)
{
	struct write_gate_record *rec = top_record(bio);

	while (rec && rec->gate != gate)
		rec = rec->end_io == write_gate_end_io ? rec->private : NULL;
	if (!rec || rec->end_io != write_gate_end_io)
		return NULL;
	rec = rec->private;
	return rec->gate->domain == gate->domain ? rec->gate : NULL;
}

int write_gate_close(struct write_gate *gate, bool killable)
{
	unsigned long flags;

	might_sleep();
	if (killable) {
		if (mutex_lock_killable(&gate->close_lock))
			return -EINTR;
	} else {
		mutex_lock(&gate->close_lock);
	}
	spin_lock_irqsave(&gate->lock, flags);
	gate->closed = true;
	spin_unlock_irqrestore(&gate->lock, flags);

	reinit_completion(&gate->drained);
	percpu_ref_kill(&gate->inflight);
	if (!killable) {
		write_gate_wait_drained(gate);
	} else if (wait_for_completion_killable(&gate->drained)) {
		write_gate_open(gate);
		return -EINTR;
	}
	return 0;
}

void write_gate_open(struct write_gate *gate)
{
	unsigned long flags;
	bool pending;

	percpu_ref_resurrect(&gate->inflight);
	spin_lock_irqsave(&gate->lock, flags);
	gate->closed = false;
	pending = !bio_list_empty(&gate->deferred);
	spin_unlock_irqrestore(&gate->lock, flags);
	mutex_unlock(&gate->close_lock);
	if (pending)
		queue_work(gate_wq, &gate->resubmit_work);
}
