/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A write gate: it counts the writes it admitted until they complete, and
 * a switch closes it, waits for those writes, and opens it again. Writes
 * that arrive while it is closed are kept and resubmitted when it opens.
 * A tracker has one, and admits there every write that touches its
 * device's sectors.
 *
 * The invariant a switch relies on (see write_gate_close()): once the gate
 * is closed, every write it admitted has completed (it is on the device),
 * and no other write reaches its owner until the gate opens; each write
 * admitted after that sees whatever the switch changed.
 *
 * A write admitted at a gate carries a completion record for it; a write
 * admitted at several gates (a partition's and its whole disk's) carries
 * one record per gate, nested. Gates are grouped in domains (a disk): the
 * remainders the block layer or a driver resubmits when it splits an
 * admitted write carry its records (write_gate_top()) and pass the gates
 * of that domain without a second count.
 */
#ifndef __BLKSNAP_WRITE_GATE_H
#define __BLKSNAP_WRITE_GATE_H

#include <linux/bio.h>
#include <linux/completion.h>
#include <linux/mempool.h>
#include <linux/mutex.h>
#include <linux/percpu-refcount.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

/**
 * struct write_gate - A write gate.
 * @inflight: Admitted writes not completed yet, plus one while the gate
 *	is open (percpu: taken and put on every write). Killed to close the
 *	gate; zero then means every admitted write completed.
 * @drained: Completed by @inflight's release, when it reaches zero.
 * @close_lock: Held from write_gate_close() to write_gate_open():
 *	switches of the disk's devices take turns.
 * @lock: Guards @closed, @dying and @deferred. Taken with interrupts
 *	disabled (writes come from any context).
 * @closed: Between write_gate_close() and write_gate_open().
 * @dying: The owner is tearing the gate down: nothing more is admitted.
 * @deferred: Writes that arrived while closed; @resubmit_work gives them
 *	to @resubmit once the gate is open.
 * @resubmit_work: Runs @resubmit on the @deferred writes.
 * @resubmit: The owner's submit path, where deferred writes start again.
 * @records: Reserve of completion records (struct write_gate_record).
 * @domain: The gate's group (the owner's disk), compared only. Immutable.
 */
struct write_gate {
	struct percpu_ref inflight;
	struct completion drained;
	struct mutex close_lock;
	spinlock_t lock;
	bool closed;
	bool dying;
	struct bio_list deferred;
	struct work_struct resubmit_work;
	void (*resubmit)(struct bio *bio);
	mempool_t *records;
	const void *domain;
};

int write_gate_module_init(void);
void write_gate_module_exit(void);

/* @resubmit: where deferred writes start again. May sleep. */
int write_gate_init(struct write_gate *gate, void (*resubmit)(struct bio *),
		    const void *domain);
/*
 * Tears the gate down: waits until every admitted write completed and
 * every deferred one was resubmitted. The owner makes sure no new write
 * reaches the gate first (no lookup finds it any more). May sleep.
 */
void write_gate_exit(struct write_gate *gate);

/* Results of write_gate_enter(). */
enum write_gate_entry {
	GATE_ENTERED,	/* counted: track the bio, or leave */
	GATE_CLOSED,	/* closed: write_gate_defer_closed() the bio */
	GATE_DYING,	/* being torn down: nothing is admitted */
};

/*
 * Count a write in. Any context; does not sleep. The gate must not be
 * freed under the call (e.g. rcu_read_lock() held since the lookup that
 * found it).
 */
enum write_gate_entry write_gate_enter(struct write_gate *gate);
/* Undo a write_gate_enter() that did not lead to write_gate_track(). */
void write_gate_leave(struct write_gate *gate);
/*
 * After GATE_CLOSED: keep @bio (not tracked anywhere) until the gate
 * opens, then resubmit it. Return: false if the gate opened meanwhile
 * (enter again).
 */
bool write_gate_defer_closed(struct write_gate *gate, struct bio *bio);

/*
 * After GATE_ENTERED: hook @bio's completion, which ends its count (a
 * record on top of those @bio has). Return: 0, or -ENOMEM (no record with
 * @gfp; the bio is still counted: leave the gate).
 */
int write_gate_track(struct write_gate *gate, struct bio *bio, gfp_t gfp);
/* Unhook the top record of a bio that was not submitted; ends its count. */
void write_gate_untrack(struct bio *bio);
/*
 * The gate of @bio's top record if that gate is of @domain, else NULL: a
 * bio that has one is (a remainder of) a write admitted in @domain. Any
 * context.
 */
struct write_gate *write_gate_top(struct bio *bio, const void *domain);
/*
 * The gate of the record under the one of @gate (from write_gate_top()),
 * if it is of the same domain, else NULL.
 */
struct write_gate *write_gate_below(struct bio *bio, struct write_gate *gate);

/*
 * Close the gate: new writes are deferred, and the call returns once every
 * admitted write completed. With @killable, a fatal signal reopens the
 * gate and returns -EINTR. The caller then changes what writes see and
 * calls write_gate_open(). May sleep.
 */
int write_gate_close(struct write_gate *gate, bool killable);
/* Open the gate; deferred writes are resubmitted from a worker. */
void write_gate_open(struct write_gate *gate);

#endif /* __BLKSNAP_WRITE_GATE_H */
