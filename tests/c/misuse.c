/*
 * A plugin that misuses the DSTC ABI on purpose, for the tests: dstc_epoll_ctl with an
 * unknown operation, a descriptor that is not open, a second ADD, a DEL and a MOD of a
 * descriptor never added; registrations with an empty and an over-long name. It prints
 * what each call returned, and then serves `ping` to show the node still runs.
 */
#include <errno.h>
#include <stdio.h>
#include "dstc_raw.h"

static void on_ready(int fd, struct epoll_event *ev) { (void)fd; (void)ev; }

static void ping(char a[8], char b[8])
{
    printf("misuse: ping %s %s\n", a, b);
    fflush(stdout);
}

DSTC_SERVER(ping, char, [8], char, [8])

static void report(const char *what, int rc)
{
    printf("misuse: %s -> %d %s\n", what, rc, rc == -1 ? strerror(errno) : "ok");
}

static void noop(uint8_t *data) { (void)data; }

static void init(void)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
    char long_name[400];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = 0;

    report("unknown op", dstc_epoll_ctl(42, 0, &ev, on_ready));
    report("bad fd", dstc_epoll_ctl(EPOLL_CTL_ADD, 12345, &ev, on_ready));
    report("del never added", dstc_epoll_ctl(EPOLL_CTL_DEL, 2, &ev, 0));
    report("mod never added", dstc_epoll_ctl(EPOLL_CTL_MOD, 2, &ev, on_ready));
    report("add", dstc_epoll_ctl(EPOLL_CTL_ADD, 2, &ev, on_ready));
    report("add twice", dstc_epoll_ctl(EPOLL_CTL_ADD, 2, &ev, on_ready));
    report("del", dstc_epoll_ctl(EPOLL_CTL_DEL, 2, &ev, 0));
    dstc_register_function("", noop);
    dstc_register_function(long_name, noop);
    fflush(stdout);
}

DSTC_ON_LOAD(init)
