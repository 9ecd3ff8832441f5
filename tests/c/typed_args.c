/*
 * Typed arguments of every kind the header maps, for the tests: functions of 0, 1 and 16
 * arguments (integers of every width and sign, float, double, bool, char arrays, a byte
 * array and a struct). On load the plugin sends each once; it serves each by printing what
 * it received, so a test sees every value after a round trip through CBOR.
 */
#include <inttypes.h>
#include <stdio.h>
#include "dstc.h"

struct point {
    int32_t x;
    int32_t y;
    double z;
};

DSTC_CLIENT(zero)
DSTC_CLIENT(one, int, )
DSTC_CLIENT(sixteen, int8_t, , uint8_t, , int16_t, , uint16_t, , int32_t, , uint32_t, ,
            int64_t, , uint64_t, , float, , double, , _Bool, , char, [8], char, [32],
            unsigned char, [4], struct point, , long, )

DSTC_SERVER(zero)
DSTC_SERVER(one, int, )
DSTC_SERVER(sixteen, int8_t, , uint8_t, , int16_t, , uint16_t, , int32_t, , uint32_t, ,
            int64_t, , uint64_t, , float, , double, , _Bool, , char, [8], char, [32],
            unsigned char, [4], struct point, , long, )

void zero(void)
{
    printf("typed: zero()\n");
    fflush(stdout);
}

void one(int v)
{
    printf("typed: one(%d)\n", v);
    fflush(stdout);
}

void sixteen(int8_t a, uint8_t b, int16_t c, uint16_t d, int32_t e, uint32_t f, int64_t g,
             uint64_t h, float i, double j, _Bool k, char l[8], char m[32], unsigned char n[4],
             struct point o, long p)
{
    printf("typed: sixteen(%d, %u, %d, %u, %" PRId32 ", %" PRIu32 ", %" PRId64 ", %" PRIu64
           ", %.2f, %.6f, %d, \"%s\", \"%s\", [%u %u %u %u], {%" PRId32 " %" PRId32
           " %.3f}, %ld)\n",
           a, b, c, d, e, f, g, h, i, j, k, l, m, n[0], n[1], n[2], n[3], o.x, o.y, o.z, p);
    fflush(stdout);
}

static void init(void)
{
    char l[8] = "seven";
    char m[32] = "héllo wörld";
    unsigned char n[4] = { 1, 2, 254, 255 };
    struct point o = { -5, 6, 7.125 };
    zero();
    dstc_zero();
    dstc_one(-42);
    dstc_sixteen(-128, 255, -32768, 65535, -2147483647 - 1, 4294967295u,
                 INT64_MIN, UINT64_MAX, 1.5f, 3.141592653589793, 1, l, m, n, o, 1234567890123L);
}

DSTC_ON_LOAD(init)
