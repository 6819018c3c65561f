// SPDX-License-Identifier: GPL-2.0
// flock(1) as busybox and toybox have it, "flock [-sxun] FD" (no -w), for
// guests whose userland lacks it (Debian's busybox builds have no flock
// applet): kheaders-mount must work with exactly this much.
// The lock stays with the caller's open file FD after we exit.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int op = LOCK_EX, nb = 0, c;

	while ((c = getopt(argc, argv, "sxun")) != -1) {
		switch (c) {
		case 's': op = LOCK_SH; break;
		case 'x': op = LOCK_EX; break;
		case 'u': op = LOCK_UN; break;
		case 'n': nb = LOCK_NB; break;
		default:
			fprintf(stderr, "usage: flock [-sxun] FD\n");
			return 64;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: flock [-sxun] FD\n");
		return 64;
	}
	if (flock(atoi(argv[optind]), op | nb)) {
		if (errno != EWOULDBLOCK)
			fprintf(stderr, "flock: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
