// SPDX-License-Identifier: GPL-2.0
/*
 * BLKFILTER requests on block-device fds, on stock kernels.
 *
 * Upstream's blkfilter patch answers BLKFILTER_ATTACH, _DETACH and _CTL in
 * the block layer's ioctl code; mainline kernels do not know them and pass
 * them to the driver (-ENOTTY, or -EINVAL from loop).
 *
 * Every ioctl on a block-device file enters the block layer through one of
 * two functions, the file's ->unlocked_ioctl and ->compat_ioctl
 * (blkdev_ioctl() and compat_blkdev_ioctl(); compat.h names them for each
 * kernel), and both call the static blkdev_common_ioctl(), hooked too
 * where the compiler left it a traceable function. An ftrace callback with
 * FTRACE_OPS_FL_IPMODIFY at each looks only at the request number: for one
 * of the three BLKFILTER values it points the saved instruction pointer at
 * a function of this module with the hooked function's own signature,
 * which answers the request and returns straight to the caller (the ioctl
 * system call) with the result; the original function does not run. Any
 * other request is not touched. The handlers never call an ioctl entry,
 * and a call from inside this module is never redirected (the rule the bio
 * hook follows), so nothing can recurse.
 *
 * The functions are found by name (ftrace_set_filter()): none is exported.
 * A kernel where the entries cannot be traced leaves the module without
 * this transport (ioctl_hook_init() fails, main.c logs it); user space then
 * falls back to the control device.
 *
 * Only one generation of the request numbers can be served: upstream
 * master's (v7's BLKFILTER_CTL has master's BLKFILTER_ATTACH number).
 *
 * Unloading: as filter.c, a counter of tasks inside a handler, then an
 * RCU-tasks grace period for a task redirected but not yet counted.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/ftrace.h>
#include <linux/blkdev.h>
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/wait.h>
#include <blksnap.h>
#include "ioctl_hook.h"
#include "compat.h"

static ioctl_hook_fn ioctl_hook_handler;

/* Tasks inside a handler; ioctl_hook_done() waits for zero. */
static atomic_t ioctl_hook_inflight = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(ioctl_hook_inflight_wq);

static int ioctl_hook_call(struct block_device *bdev, unsigned int cmd,
			   void __user *argp)
{
	int ret;

	atomic_inc(&ioctl_hook_inflight);
	ret = ioctl_hook_handler(bdev->bd_dev, cmd, argp);
	if (atomic_dec_and_test(&ioctl_hook_inflight))
		wake_up_all(&ioctl_hook_inflight_wq);
	return ret;
}

/*
 * The redirect targets: the same signatures as the hooked functions, so
 * the caller gets the return value it expects.
 */
static long ioctl_hook_native(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	return ioctl_hook_call(I_BDEV(file->f_mapping->host), cmd,
			       (void __user *)arg);
}

#ifdef CONFIG_COMPAT
static long ioctl_hook_compat(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	return ioctl_hook_call(I_BDEV(file->f_mapping->host), cmd,
			       compat_ptr(arg));
}
#endif

/* @mode is fmode_t or blk_mode_t (compat.h): an unsigned int either way. */
static int ioctl_hook_common(struct block_device *bdev, unsigned int mode,
			     unsigned int cmd, unsigned long arg,
			     void __user *argp)
{
	return ioctl_hook_call(bdev, cmd, argp);
}

/**
 * struct ioctl_hook - One hooked ioctl entry.
 * @ops: Its ftrace_ops (the callback finds the hook from it).
 * @name: The hooked function (compat.h names it for each kernel).
 * @target: The function the request is redirected to.
 * @cmd_arg: Which argument of @name is the request number.
 * @optional: The function may have been inlined: the hook is installed
 *	where the function can be traced and skipped elsewhere.
 * @hooked: The hook is installed.
 */
struct ioctl_hook {
	struct ftrace_ops ops;
	const char *name;
	unsigned long target;
	unsigned int cmd_arg;
	bool optional;
	bool hooked;
};

static bool is_blkfilter_request(unsigned int cmd)
{
	return cmd == BLKFILTER_ATTACH || cmd == BLKFILTER_DETACH ||
	       cmd == BLKFILTER_CTL;
}

/*
 * Runs at the entry of every hooked call with preemption disabled: it only
 * decides whether to redirect.
 */
static void notrace ioctl_hook_cb(unsigned long ip, unsigned long parent_ip,
				  struct ftrace_ops *ops,
				  compat_ftrace_regs_t *fregs)
{
	struct ioctl_hook *hook = container_of(ops, struct ioctl_hook, ops);
	struct pt_regs *regs = compat_ftrace_get_regs(fregs);
	unsigned int cmd;

	if (!regs || within_module(parent_ip, THIS_MODULE))
		return;
	cmd = (unsigned int)regs_get_kernel_argument(regs, hook->cmd_arg);
	if (is_blkfilter_request(cmd))
		instruction_pointer_set(regs, hook->target);
}

#define IOCTL_HOOK_FLAGS (FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY | \
			  FTRACE_OPS_FL_PERMANENT)

/*
 * The two entries see every request; blkdev_common_ioctl(), which both
 * call, is hooked too where it can be traced, so a request reaching it by
 * another way (a future caller) is not given to the driver either. A
 * request redirected at an entry never reaches it: none is answered twice.
 */
static struct ioctl_hook ioctl_hooks[] = {
	{
		.ops = { .func = ioctl_hook_cb, .flags = IOCTL_HOOK_FLAGS },
		.name = COMPAT_BLKDEV_IOCTL_NATIVE,
		.target = (unsigned long)ioctl_hook_native,
		.cmd_arg = COMPAT_BLKDEV_IOCTL_ENTRY_CMD_ARG,
	},
#ifdef CONFIG_COMPAT
	{
		.ops = { .func = ioctl_hook_cb, .flags = IOCTL_HOOK_FLAGS },
		.name = COMPAT_BLKDEV_IOCTL_COMPAT,
		.target = (unsigned long)ioctl_hook_compat,
		.cmd_arg = COMPAT_BLKDEV_IOCTL_ENTRY_CMD_ARG,
	},
#endif
	{
		.ops = { .func = ioctl_hook_cb, .flags = IOCTL_HOOK_FLAGS },
		.name = COMPAT_BLKDEV_IOCTL_COMMON,
		.target = (unsigned long)ioctl_hook_common,
		.cmd_arg = COMPAT_BLKDEV_IOCTL_COMMON_CMD_ARG,
		.optional = true,
	},
};

static int ioctl_hook_install(struct ioctl_hook *hook)
{
	char name[32];
	int ret;

	/* ftrace_set_filter() parses a glob in place: give it a copy. */
	strscpy(name, hook->name, sizeof(name));
	ret = ftrace_set_filter(&hook->ops, name, strlen(name), 1);
	if (ret && hook->optional) {
		pr_info("%s is not traceable here (inlined): not hooked\n",
			hook->name);
		return 0;
	}
	if (ret) {
		pr_err("cannot trace %s: %d\n", hook->name, ret);
		return ret;
	}
	ret = register_ftrace_function(&hook->ops);
	if (ret) {
		pr_err("cannot hook %s (another IPMODIFY user?): %d\n",
		       hook->name, ret);
		compat_ftrace_free_filter(&hook->ops);
		return ret;
	}
	hook->hooked = true;
	return 0;
}

static void ioctl_hook_remove(struct ioctl_hook *hook)
{
	if (!hook->hooked)
		return;
	unregister_ftrace_function(&hook->ops);
	compat_ftrace_free_filter(&hook->ops);
	hook->hooked = false;
}

/**
 * ioctl_hook_init() - Install the hooks. May sleep.
 * @fn: Answers the BLKFILTER requests.
 *
 * Return: 0 or -errno; on an error no hook is left installed.
 */
int ioctl_hook_init(ioctl_hook_fn fn)
{
	unsigned int i;
	int ret;

	ioctl_hook_handler = fn;
	for (i = 0; i < ARRAY_SIZE(ioctl_hooks); i++) {
		ret = ioctl_hook_install(&ioctl_hooks[i]);
		if (ret) {
			ioctl_hook_done();
			return ret;
		}
	}
	return 0;
}

/**
 * ioctl_hook_done() - Remove the hooks and wait until no task runs a
 * handler. May sleep.
 */
void ioctl_hook_done(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ioctl_hooks); i++)
		ioctl_hook_remove(&ioctl_hooks[i]);
#ifdef CONFIG_TASKS_RCU
	/* A task redirected but not yet counted gets counted first. */
	synchronize_rcu_tasks();
#endif
	wait_event(ioctl_hook_inflight_wq, !atomic_read(&ioctl_hook_inflight));
#ifdef CONFIG_TASKS_RCU
	synchronize_rcu_tasks();
#else
	synchronize_rcu();
#endif
}
