// SPDX-License-Identifier: GPL-2.0
/*
 * Bio interception on stock kernels.
 *
 * Mainline kernels have no block-device filter API, so two ftrace hooks
 * with FTRACE_OPS_FL_IPMODIFY redirect exported block-layer functions to
 * handlers in this module:
 *
 *  - submit_bio_noacct(): when the owner wants the bio (filter_ops.wants),
 *    the ftrace callback points the saved instruction pointer at
 *    filter_submit_bio_handler(), which hands the bio to the owner. The
 *    owner submits it with filter_submit_bio_noacct(), whose call of
 *    submit_bio_noacct() comes from inside this module: the callback sees
 *    that (parent_ip) and lets it through. When the block layer splits such
 *    a bio, it resubmits the remainder (the same bio) from its own code:
 *    the owner recognises those (see tracker_wants()).
 *  - del_gendisk(): the handler calls the real del_gendisk() and then tells
 *    the owner (filter_ops.disk_removed).
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
#define pr_fmt(fmt) KBUILD_MODNAME "-filter: " fmt

#include <linux/module.h>
#include <linux/ftrace.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/wait.h>
#include <linux/sched.h>
#include "compat.h"
#include "filter.h"

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

/* The owner's callbacks, set by filter_init(). */
static const struct filter_ops *filter_ops;

/*
 * Even if the compiler turned this call into a tail jump, the return
 * address the hook sees would be that of our caller, also in this module:
 * every chain of calls that ends here starts in the module's text with a
 * real call (the handlers have code after theirs).
 */
void filter_submit_bio_noacct(struct bio *bio)
{
	submit_bio_noacct(bio);
}

static COMPAT_SUBMIT_BIO_T filter_submit_bio_handler(struct bio *bio)
{
	filter_enter();
	filter_ops->submit_bio(bio);
	filter_leave();
	return COMPAT_SUBMIT_BIO_DONE;
}

static void filter_del_gendisk_handler(struct gendisk *disk)
{
	filter_enter();
	del_gendisk(disk);
	filter_ops->disk_removed(disk);
	filter_leave();
}

/*
 * The ftrace callbacks run at the entry of the hooked function. Without
 * FTRACE_OPS_FL_RECURSION the trampoline may call them preemptibly; they
 * only decide whether to redirect (filter_ops.wants: RCU lookups and
 * irqsave spinlocks at most).
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
	if (filter_ops->wants(bio))
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

int filter_init(const struct filter_ops *ops)
{
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
	filter_ops = ops;

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
