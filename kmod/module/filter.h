/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bio interception on stock kernels: an ftrace hook on submit_bio_noacct()
 * hands the bios its owner wants to the owner's submit function, and a hook
 * on del_gendisk() tells the owner about disks that went away. The filter
 * depends on nothing above it: its owner (the tracker) registers a table of
 * callbacks, as a device-mapper target or upstream's blkfilter_operations.
 */
#ifndef __BLKSNAP_FILTER_H
#define __BLKSNAP_FILTER_H

#include <linux/types.h>

struct bio;
struct gendisk;

/**
 * struct filter_ops - What the filter calls.
 * @wants: Whether to take @bio off its way through submit_bio_noacct()
 *	and give it to @submit_bio. Called from the ftrace callback, at the
 *	entry of submit_bio_noacct(), for every bio in the system: lockless
 *	lookups only, may not sleep.
 * @submit_bio: Receives a bio @wants took, in the context of its
 *	submit_bio_noacct() call, and must submit it (with
 *	filter_submit_bio_noacct()), end it, or keep it to do so later.
 * @disk_removed: Called after del_gendisk(@disk) returned, in its caller's
 *	context. May sleep.
 */
struct filter_ops {
	bool (*wants)(struct bio *bio);
	void (*submit_bio)(struct bio *bio);
	void (*disk_removed)(struct gendisk *disk);
};

/* Install the hooks, calling @ops. May sleep. Return: 0 or -errno. */
int filter_init(const struct filter_ops *ops);
/* Remove the hooks and wait until no task runs in one. May sleep. */
void filter_done(void);

/**
 * filter_submit_bio_noacct() - Submit a bio, bypassing interception.
 * @bio: The bio.
 *
 * For bios the module submits itself: a write @wants took, once handled;
 * copy-on-write reads; held writes resubmitted after their copy. The call
 * comes from this module's text, so the hook lets it through. Same context
 * rules as submit_bio_noacct().
 */
void filter_submit_bio_noacct(struct bio *bio);

#endif /* __BLKSNAP_FILTER_H */
