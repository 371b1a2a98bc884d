/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bio interception on stock kernels: an ftrace hook on submit_bio_noacct()
 * hands write bios of tracked devices to the tracker, and a hook on
 * del_gendisk() detaches trackers of a disk that goes away.
 */
#ifndef __BLKSNAP_FILTER_H
#define __BLKSNAP_FILTER_H

struct bio;

int filter_init(void);
void filter_done(void);

/**
 * filter_submit_bio_noacct() - Submit a bio, bypassing interception.
 * @bio: The bio.
 *
 * For bios the module submits itself (copy-on-write reads, difference
 * storage writes, resubmission of a bio the snapshot code took over): they
 * are not handed to a tracker again. Same context rules as
 * submit_bio_noacct().
 */
void filter_submit_bio_noacct(struct bio *bio);

#endif /* __BLKSNAP_FILTER_H */
