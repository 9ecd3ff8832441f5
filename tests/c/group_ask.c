/*
 * group_ask.c: a test plugin that asks the node about the group, as programs written for
 * the mature DSTC and rot do, every 50 ms, and prints a line each time the answers change:
 *
 *   group: peers=P connected(b)=C get=G message=M
 *
 * P = dstc_peer_count(), C = dstc_connected("b"), G =
 * dstc_remote_function_available_by_name("get") (the kv store's), M =
 * dstc_remote_function_available(dstc_message) (the chat's, through its DSTC_CLIENT).
 */
#include <sys/timerfd.h>
#include <unistd.h>
#include "dstc.h"

DSTC_CLIENT(message, char, [128], char, [512])

static char last[128];

static void ask(int fd, struct epoll_event *ev)
{
    uint64_t expirations;
    char now[128];
    (void)ev;
    if (read(fd, &expirations, sizeof expirations) < 0)
        return;
    snprintf(now, sizeof now, "group: peers=%d connected(b)=%d get=%d message=%d", dstc_peer_count(),
             dstc_connected("b"), dstc_remote_function_available_by_name("get"),
             dstc_remote_function_available(dstc_message));
    if (strcmp(now, last) != 0) {
        strcpy(last, now);
        printf("%s\n", now);
        fflush(stdout);
    }
}

static void init(void)
{
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec every = { { 0, 50000000 }, { 0, 50000000 } };
    struct epoll_event ev = { .events = EPOLLIN, .data = { .fd = timer } };
    if (timer < 0 || timerfd_settime(timer, 0, &every, 0) != 0
        || dstc_epoll_ctl(EPOLL_CTL_ADD, timer, &ev, ask) != 0)
        perror("group_ask: timer");
}
DSTC_ON_LOAD(init)
