// SPDX-License-Identifier: GPL-2.0
/*
 * One system call with the N-th fault-injection point of this task failing
 * (Documentation/fault-injection/fault-injection.rst, "fail-nth"):
 *
 *   fail-nth N insmod MODULE.ko
 *   fail-nth N mount DEVICE DIR FSTYPE
 *
 * Prints "ret ERRNO injected" (injected: 1 if the N-th point was reached and
 * failed, 0 if the call passed fewer than N points). Nothing runs between
 * arming fail-nth and the call that could reach a point itself: a shell or
 * Python would allocate (page faults count too) in between.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: fail-nth N insmod MODULE | fail-nth N mount DEVICE DIR FSTYPE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char arm[32], left[32] = "";
	int ctl, mod = -1, insmod, err;
	long ret;

	if (argc < 4)
		usage();
	insmod = strcmp(argv[2], "insmod") == 0;
	if (!insmod && (strcmp(argv[2], "mount") != 0 || argc != 6))
		usage();
	snprintf(arm, sizeof(arm), "%lu", strtoul(argv[1], NULL, 10));
	ctl = open("/proc/thread-self/fail-nth", O_RDWR);
	if (ctl < 0) {
		perror("fail-nth: /proc/thread-self/fail-nth");
		return 2;
	}
	if (insmod) {
		mod = open(argv[3], O_RDONLY | O_CLOEXEC);
		if (mod < 0) {
			perror(argv[3]);
			return 2;
		}
	}

	if (write(ctl, arm, strlen(arm)) < 0) {
		perror("fail-nth: arming");
		return 2;
	}
	if (insmod)
		ret = syscall(SYS_finit_module, mod, "", 0);
	else
		ret = mount(argv[3], argv[4], argv[5], MS_RDONLY, NULL);
	err = ret < 0 ? errno : 0;
	/* What is left of the count: 0 once the N-th point failed. */
	if (pread(ctl, left, sizeof(left) - 1, 0) < 0) {
		perror("fail-nth: reading back");
		return 2;
	}
	if (write(ctl, "0", 1) < 0) {
		perror("fail-nth: disarming");
		return 2;
	}
	printf("%ld %d %d\n", ret, err, atoi(left) == 0);
	return 0;
}
