/*
 * stress_receiver.c: the receiving side of the DSTC stress test, as a native plugin.
 *
 * Every set_value(v) must be the value after the previous one: it counts what arrives,
 * what was skipped (lost on the way) and what came out of order, tells the sender how far
 * it got every PROGRESS_EVERY values (the sender's flow control), and on finish(count)
 * prints one line, as guests/stress does, and starts over.
 *
 *   gcc -O2 -fPIC -shared -I guest-sdk/c -o stress_receiver.so stress_receiver.c
 */
#include <time.h>
#include "dstc.h"

#define PROGRESS_EVERY 16384

DSTC_CLIENT(progress, int, )

static long long next_value, in_order, lost, out_of_order;
static struct timespec started;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void set_value(int v)
{
    if (in_order == 0 && out_of_order == 0)
        clock_gettime(CLOCK_MONOTONIC, &started);
    if (v < next_value) {
        out_of_order++;
        return;
    }
    lost += v - next_value;
    in_order++;
    next_value = (long long)v + 1;
    if (next_value % PROGRESS_EVERY == 0)
        dstc_progress((int)next_value);
}
DSTC_SERVER(set_value, int, )

void finish(int count)
{
    double secs = (in_order > 0) ? now() - ((double)started.tv_sec + (double)started.tv_nsec / 1e9) : 0.0;
    long long missing = (long long)count - next_value;
    long long all_lost = lost + (missing > 0 ? missing : 0);
    printf("stress: %lld of %d values in order in %.3f s (%.0f calls/s), %lld lost, %lld out of order\n",
           in_order, count, secs, secs > 0 ? (double)in_order / secs : 0.0, all_lost, out_of_order);
    fflush(stdout);
    next_value = in_order = lost = out_of_order = 0;
}
DSTC_SERVER(finish, int, )
