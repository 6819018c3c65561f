// SPDX-License-Identifier: GPL-2.0
// flock(1) as kheaders-mount uses it, "flock [-w SECONDS] FD", for guests
// whose userland lacks it (Debian's busybox builds have no flock applet).
// The lock stays with the caller's open file FD after we exit.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void on_alarm(int sig) { (void)sig; }

int main(int argc, char **argv)
{
	unsigned int wait = 0;
	int i = 1;

	if (argc == 4 && !strcmp(argv[1], "-w")) {
		wait = (unsigned int)strtoul(argv[2], NULL, 10);
		i = 3;
	}
	if (argc != i + 1) {
		fprintf(stderr, "usage: flock [-w SECONDS] FD\n");
		return 64;
	}
	if (wait) {
		// No SA_RESTART: the alarm interrupts flock(2) with EINTR.
		struct sigaction sa = { .sa_handler = on_alarm };
		sigaction(SIGALRM, &sa, NULL);
		alarm(wait);
	}
	if (flock(atoi(argv[i]), LOCK_EX)) {
		fprintf(stderr, "flock: %s\n", errno == EINTR ? "timed out" : strerror(errno));
		return 1;
	}
	return 0;
}
