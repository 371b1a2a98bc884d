// SPDX-License-Identifier: GPL-2.0
/*
 * Bio interception on stock kernels.
 *
 * Mainline kernels have no block-device filter API, so two ftrace hooks
 * with FTRACE_OPS_FL_IPMODIFY redirect exported block-layer functions to
 * handlers in this module:
 *
 *  - submit_bio_noacct(): when the bio is a write to a tracked device, the
 *    ftrace callback points the saved instruction pointer at
 *    filter_submit_bio_handler(), which hands the bio to the tracker. The
 *    tracker submits it with filter_submit_bio_noacct(), whose call of
 *    submit_bio_noacct() comes from inside this module: the callback sees
 *    that (parent_ip) and lets it through. Other bios are not redirected.
 *  - del_gendisk(): the handler calls the real del_gendisk() and then
 *    detaches the trackers of the disk and of its partitions.
 *
 * Both handlers must *call* the original function (not jump to it): with a
 * tail jump the return address would be the original caller's, the
 * "caller is inside the module" test would never match and the hook would
 * redirect its own call forever. Each call is followed by code
 * (filter_leave()), so the compiler cannot turn it into a jump; check with
 * objdump -d that the calls are "call" instructions.
 *
 * Unloading: after the hooks are unregistered, tasks may still be running
 * in a handler (blocked in submit_bio_noacct(), for example). filter_inflight
 * counts them; filter_done() waits for it to reach zero and then for an
 * RCU-tasks grace period, which covers a task preempted between the
 * decrement and the return to its caller.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/ftrace.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/wait.h>
#include <linux/hash.h>
#include <linux/sched.h>
#include "compat.h"
#include "filter.h"
#include "tracker.h"

/* Tasks inside a handler; filter_done() waits for zero. */
static atomic_t filter_inflight = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(filter_inflight_wq);

static void filter_enter(void)
{
	atomic_inc(&filter_inflight);
}

static noinline void filter_leave(void)
{
	if (atomic_dec_and_test(&filter_inflight))
		wake_up_all(&filter_inflight_wq);
}

/*
 * Bios being submitted by filter_submit_bio_noacct(), by task. While the
 * block layer processes such a bio synchronously inside that call it may
 * split it and resubmit the remainder, the same bio, through
 * submit_bio_noacct() from block-layer code: that nested call must pass
 * straight through too, because the whole bio was already handled and the
 * tracker still holds its submit locks (taking them again could deadlock
 * against a waiting switch). Matching the task as well as the address
 * keeps another task's new bio at a recycled address from being skipped.
 * Each entry lives on the stack of filter_submit_bio_noacct(); a bucket's
 * list is guarded by its lock.
 */
struct submit_entry {
	struct hlist_node node;
	struct task_struct *task;
	struct bio *bio;
};

#define SUBMIT_HASH_BITS 6
static struct {
	spinlock_t lock;
	struct hlist_head head;
} submit_hash[1 << SUBMIT_HASH_BITS];

static notrace unsigned int submit_bucket(struct task_struct *task)
{
	return hash_ptr(task, SUBMIT_HASH_BITS);
}

static notrace void submit_entry_add(struct submit_entry *entry, struct bio *bio)
{
	unsigned int b = submit_bucket(current);
	unsigned long flags;

	entry->task = current;
	entry->bio = bio;
	spin_lock_irqsave(&submit_hash[b].lock, flags);
	hlist_add_head(&entry->node, &submit_hash[b].head);
	spin_unlock_irqrestore(&submit_hash[b].lock, flags);
}

static notrace void submit_entry_del(struct submit_entry *entry)
{
	unsigned int b = submit_bucket(current);
	unsigned long flags;

	spin_lock_irqsave(&submit_hash[b].lock, flags);
	hlist_del(&entry->node);
	spin_unlock_irqrestore(&submit_hash[b].lock, flags);
}

/* Is @bio being submitted by filter_submit_bio_noacct() in this task? */
static notrace bool submit_entry_find(struct bio *bio)
{
	unsigned int b = submit_bucket(current);
	struct submit_entry *entry;
	unsigned long flags;
	bool found = false;

	spin_lock_irqsave(&submit_hash[b].lock, flags);
	hlist_for_each_entry(entry, &submit_hash[b].head, node) {
		if (entry->task == current && entry->bio == bio) {
			found = true;
			break;
		}
	}
	spin_unlock_irqrestore(&submit_hash[b].lock, flags);
	return found;
}

/**
 * filter_submit_bio_noacct() - Submit a bio without interception.
 * @bio: The bio.
 *
 * A real call from this module's text: the submit_bio_noacct() hook lets
 * it through, and the remainders the block layer resubmits when it splits
 * the bio are recognised by the submit entry. noinline; the code after the
 * call keeps it from becoming a tail jump.
 */
noinline void filter_submit_bio_noacct(struct bio *bio)
{
	struct submit_entry entry;

	submit_entry_add(&entry, bio);
	submit_bio_noacct(bio);
	/* @bio may be gone now: the entry only holds its address. */
	submit_entry_del(&entry);
}

static COMPAT_SUBMIT_BIO_T filter_submit_bio_handler(struct bio *bio)
{
	filter_enter();
	tracker_submit_bio(bio);
	filter_leave();
	return COMPAT_SUBMIT_BIO_DONE;
}

static void filter_del_gendisk_handler(struct gendisk *disk)
{
	filter_enter();
	del_gendisk(disk);
	tracker_disk_removed(disk);
	filter_leave();
}

/*
 * The ftrace callbacks run at the entry of the hooked function with
 * preemption disabled: they only decide whether to redirect.
 */
static void notrace filter_submit_bio_cb(unsigned long ip,
					 unsigned long parent_ip,
					 struct ftrace_ops *ops,
					 compat_ftrace_regs_t *fregs)
{
	struct pt_regs *regs = compat_ftrace_get_regs(fregs);
	struct bio *bio;

	if (!regs || within_module(parent_ip, THIS_MODULE))
		return;
	bio = (struct bio *)regs_get_kernel_argument(regs, 0);
	if (tracker_bio_is_tracked(bio) && !submit_entry_find(bio))
		instruction_pointer_set(regs,
					(unsigned long)filter_submit_bio_handler);
}

static void notrace filter_del_gendisk_cb(unsigned long ip,
					  unsigned long parent_ip,
					  struct ftrace_ops *ops,
					  compat_ftrace_regs_t *fregs)
{
	struct pt_regs *regs = compat_ftrace_get_regs(fregs);

	if (!regs || within_module(parent_ip, THIS_MODULE))
		return;
	instruction_pointer_set(regs, (unsigned long)filter_del_gendisk_handler);
}

#define FILTER_OPS_FLAGS (FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY | \
			  FTRACE_OPS_FL_PERMANENT)

static struct ftrace_ops filter_submit_bio_ops = {
	.func = filter_submit_bio_cb,
	.flags = FILTER_OPS_FLAGS,
};

static struct ftrace_ops filter_del_gendisk_ops = {
	.func = filter_del_gendisk_cb,
	.flags = FILTER_OPS_FLAGS,
};

static int filter_hook(struct ftrace_ops *ops, unsigned long addr,
		       const char *name)
{
	int ret;

	ret = ftrace_set_filter_ip(ops, addr, 0, 0);
	if (ret) {
		pr_err("cannot trace %s: it has no ftrace site in this kernel: %d\n",
		       name, ret);
		return ret;
	}
	ret = register_ftrace_function(ops);
	if (ret == -EBUSY)
		pr_err("cannot hook %s: ftrace is off (sysctl kernel.ftrace_enabled=0): %d\n",
		       name, ret);
	else if (ret)
		pr_err("cannot hook %s: another module redirects it (livepatch?): %d\n",
		       name, ret);
	if (ret)
		ftrace_set_filter_ip(ops, addr, 1, 0);
	return ret;
}

static void filter_unhook(struct ftrace_ops *ops, unsigned long addr)
{
	unregister_ftrace_function(ops);
	ftrace_set_filter_ip(ops, addr, 1, 0);
}

/**
 * filter_init() - Install the hooks. May sleep.
 *
 * Return: 0 or -errno.
 */
int filter_init(void)
{
	unsigned int i;
	int ret;

	/*
	 * The hooks move the instruction pointer of the hooked function,
	 * which needs ftrace with registers (some -kvm and embedded kernels
	 * have no ftrace at all).
	 */
	if (!IS_ENABLED(CONFIG_DYNAMIC_FTRACE_WITH_REGS)) {
		pr_err("this kernel has no ftrace with registers (CONFIG_FUNCTION_TRACER, CONFIG_DYNAMIC_FTRACE_WITH_REGS): cannot intercept I/O, not loading\n");
		return -EOPNOTSUPP;
	}

	for (i = 0; i < ARRAY_SIZE(submit_hash); i++) {
		spin_lock_init(&submit_hash[i].lock);
		INIT_HLIST_HEAD(&submit_hash[i].head);
	}

	ret = filter_hook(&filter_del_gendisk_ops, (unsigned long)del_gendisk,
			  "del_gendisk");
	if (ret)
		return ret;
	ret = filter_hook(&filter_submit_bio_ops,
			  (unsigned long)submit_bio_noacct, "submit_bio_noacct");
	if (ret)
		goto fail_unhook_del_gendisk;
	return 0;

fail_unhook_del_gendisk:
	filter_unhook(&filter_del_gendisk_ops, (unsigned long)del_gendisk);
	return ret;
}

/**
 * filter_done() - Remove the hooks and wait until no task runs a handler.
 * May sleep.
 */
void filter_done(void)
{
	filter_unhook(&filter_submit_bio_ops, (unsigned long)submit_bio_noacct);
	filter_unhook(&filter_del_gendisk_ops, (unsigned long)del_gendisk);
#ifdef CONFIG_TASKS_RCU
	/* A task redirected but not yet counted gets counted first. */
	synchronize_rcu_tasks();
#endif
	wait_event(filter_inflight_wq, !atomic_read(&filter_inflight));
#ifdef CONFIG_TASKS_RCU
	synchronize_rcu_tasks();
#else
	synchronize_rcu();
#endif
}
