/*
 * stress_sender.c: the sending side of the DSTC stress test, as a native plugin.
 *
 * Calls set_value(0), set_value(1), ... up to STRESS_COUNT (10 million unless the
 * environment says otherwise), then finish(count), as fast as the node lets it: as DSTC's
 * stress client, it leaves pacing to the node, whose window to the receivers makes a call
 * wait (inside dstc_set_value) while the receivers are a window behind. It starts once the
 * node runs (from a descriptor that is ready at once), not inside dlopen, when the node
 * does not know its receivers yet; and, as DSTC's stress client, only once a node serves
 * set_value (dstc_remote_function_available, asked again every 10 ms on a timer): calls
 * sent before anyone serves them would be lost.
 *
 * With STRESS_WINDOW set (for comparing with a node run --unreliable), it keeps at most
 * that many values (32768 at least, since receivers report every 16384 values) ahead of
 * what the receivers reported with progress(next): the flow control of the application
 * that dhost made unnecessary.
 *
 *   gcc -O2 -fPIC -shared -I guest-sdk/c -o stress_sender.so stress_sender.c
 */
#include <sys/timerfd.h>
#include <unistd.h>
#include "dstc.h"

DSTC_CLIENT(set_value, int, )
DSTC_CLIENT(finish, int, )

/* Twice the receivers' reporting interval: a report always comes before the sender runs dry. */
#define MIN_WINDOW (2 * 16384)

static int count = 10000000;
static int window; /* 0: no window of the application's own */
static int sent;
static int start_pipe[2] = { -1, -1 };

static int setting(const char *name, int fallback)
{
    const char *value = getenv(name);
    if (value == NULL)
        return fallback;
    char *end;
    long n = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || n <= 0 || n > 2147483647L) {
        fprintf(stderr, "stress_sender: ignoring %s=%s: not a positive number\n", name, value);
        return fallback;
    }
    return (int)n;
}

static void send_up_to(long long limit)
{
    if (sent >= count)
        return;
    int to = limit > count ? count : (int)limit;
    for (; sent < to; sent++)
        dstc_set_value(sent);
    if (sent == count)
        dstc_finish(count);
}

void progress(int next)
{
    if (window > 0)
        send_up_to((long long)next + window);
}
DSTC_SERVER(progress, int, )

/* A node serves set_value: send everything (or the first window). */
static void send_first(void)
{
    send_up_to(window > 0 ? window : count);
}

/* The timer that asks again: once a node serves set_value, it stops and sending starts. */
static void ask_again(int fd, struct epoll_event *ev)
{
    uint64_t expirations;
    (void)ev;
    if (read(fd, &expirations, sizeof expirations) < 0 || !dstc_remote_function_available(dstc_set_value))
        return;
    dstc_epoll_ctl(EPOLL_CTL_DEL, fd, 0, 0);
    close(fd);
    send_first();
}

/* The node runs: send once a node serves set_value. */
static void start(int fd, struct epoll_event *ev)
{
    (void)ev;
    dstc_epoll_ctl(EPOLL_CTL_DEL, fd, 0, 0);
    close(start_pipe[0]);
    close(start_pipe[1]);
    if (dstc_remote_function_available(dstc_set_value)) {
        send_first();
        return;
    }
    fprintf(stderr, "stress_sender: waiting for a node that serves set_value\n");
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec every = { { 0, 10000000 }, { 0, 10000000 } }; /* 10 ms */
    struct epoll_event wake = { .events = EPOLLIN, .data = { .fd = timer } };
    if (timer < 0 || timerfd_settime(timer, 0, &every, 0) != 0
        || dstc_epoll_ctl(EPOLL_CTL_ADD, timer, &wake, ask_again) != 0) {
        perror("stress_sender: the timer to wait for a receiver");
        send_first();
    }
}

static void init(void)
{
    struct epoll_event ev;
    count = setting("STRESS_COUNT", count);
    window = setting("STRESS_WINDOW", 0);
    if (window > 0 && window < MIN_WINDOW)
        window = MIN_WINDOW;
    if (window > 0)
        fprintf(stderr, "stress_sender: sending %d values, at most %d ahead of the receivers\n",
                count, window);
    else
        fprintf(stderr, "stress_sender: sending %d values as fast as the node lets it\n", count);
    /* A pipe with a byte in it is ready at once: start() runs when the node does. */
    if (pipe(start_pipe) != 0 || write(start_pipe[1], "", 1) != 1) {
        perror("stress_sender: pipe");
        return;
    }
    ev.events = EPOLLIN;
    ev.data.fd = start_pipe[0];
    dstc_epoll_ctl(EPOLL_CTL_ADD, start_pipe[0], &ev, start);
}
DSTC_ON_LOAD(init)
