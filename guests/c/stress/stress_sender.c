/*
 * stress_sender.c: the sending side of the DSTC stress test, as a native plugin.
 *
 * Calls set_value(0), set_value(1), ... up to STRESS_COUNT (10 million unless the
 * environment says otherwise), then finish(count), keeping at most STRESS_WINDOW values
 * (131072 by default, 32768 at least, since receivers report every 16384 values) ahead of
 * what the receivers reported with progress(next): a sender
 * that ran ahead would overrun the receivers and lose calls. The first window leaves from
 * the plugin's init; each progress report releases more.
 *
 *   gcc -O2 -fPIC -shared -I guest-sdk/c -o stress_sender.so stress_sender.c
 */
#include "dstc.h"

DSTC_CLIENT(set_value, int, )
DSTC_CLIENT(finish, int, )

/* Twice the receivers' reporting interval: a report always comes before the sender runs dry. */
#define MIN_WINDOW (2 * 16384)

static int count = 10000000;
static int window = 131072;
static int sent;

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

void progress(int next) { send_up_to((long long)next + window); }
DSTC_SERVER(progress, int, )

static void init(void)
{
    count = setting("STRESS_COUNT", count);
    window = setting("STRESS_WINDOW", window);
    if (window < MIN_WINDOW)
        window = MIN_WINDOW;
    fprintf(stderr, "stress_sender: sending %d values, at most %d ahead of the receivers\n", count, window);
    send_up_to(window);
}
DSTC_ON_LOAD(init)
