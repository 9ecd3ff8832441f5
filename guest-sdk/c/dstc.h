/*
 * dstc.h: write DSTC plugins for dhost in C.
 *
 * Source-compatible with the macros of the 2018 DSTC proof of concept
 * (DSTC_CLIENT, DSTC_SERVER, DSTC_ON_LOAD, dstc_epoll_ctl), but the arguments travel as
 * typed CBOR instead of raw memory, so a C plugin and a WebAssembly guest that declare the
 * same function call each other:
 *
 *   char arrays          -> text, up to the first NUL
 *   other arrays, structs -> byte strings of their exact size
 *   integers, floats, bool -> numbers, bool
 *
 * Arguments are declared as (type, [size]) pairs, [size] left empty for a scalar:
 *
 *   DSTC_CLIENT(message, char, [128], char, [512])   // generates dstc_message(...)
 *   DSTC_SERVER(message, char, [128], char, [512])   // calls your message(...)
 *   DSTC_CLIENT(set_value, int, )
 *
 * from zero up to 16 arguments. A function is known by its bare C name (`message`); dhost
 * matches a bare name with the function of that name in any WIT interface
 * (`dhost:chat/chat#message`): see docs/native.md. Arrays of one element are not
 * supported (they cannot be told from a scalar).
 *
 * Header-only: build a plugin with  gcc -fPIC -shared -I guest-sdk/c plugin.c
 * The dstc_* functions it calls are exported by the dhost executable.
 *
 * NATIVE PLUGINS ARE NOT SANDBOXED: they run with the rights of the dhost process.
 */
#ifndef DSTC_H
#define DSTC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* ---- What the dhost executable provides ---------------------------------------------- */

/* The raw-bytes ABI of the original (still served). */
extern void dstc_register_function(char *name, void (*server)(uint8_t *));
extern void dstc_srv_send(uint8_t *buf, uint32_t size);

/* Watch a descriptor: cb(fd, ev) runs on the node's event loop once per readiness, with
 * ev->data as given. Returns 0, or -1 with errno set. */
typedef void (*dstc_epoll_cb_t)(int fd, struct epoll_event *ev);
extern int dstc_epoll_ctl(int op, int fd, struct epoll_event *ev, dstc_epoll_cb_t cb);

/* The typed ABI: arguments as one CBOR array. */
extern void dstc_register_typed(const char *name, int (*server)(const uint8_t *args, uint32_t len));
extern void dstc_send_typed(const char *name, const uint8_t *args, uint32_t len);

/* The group, as the mature DSTC and rot let a program ask about it (0 / -1 until the node
 * runs: not from inside DSTC_ON_LOAD):
 *   dstc_remote_function_available(dstc_NAME): whether a node of the group (this one
 *     included) serves NAME, the function DSTC_CLIENT(NAME, ...) calls;
 *   dstc_remote_function_available_by_name("NAME"): the same, by name;
 *   dstc_peer_count(): how many peers the node knows;
 *   dstc_connected("NODE"): how many TCP connections it holds to peer NODE, -1 if unknown. */
extern void dstc_register_client_function(char *name, void *client);
extern uint8_t dstc_remote_function_available(void *client);
extern uint8_t dstc_remote_function_available_by_name(char *name);
extern int dstc_peer_count(void);
extern int dstc_connected(const char *node);

#define DSTC_ON_LOAD(fn) \
    static void __attribute__((constructor)) _dstc_on_load_##fn(void) { fn(); }

/* ---- CBOR, as much as the arguments need --------------------------------------------- */

enum { _DSTC_BYTES = 0, _DSTC_TEXT = 1, _DSTC_SIGNED = 2, _DSTC_UNSIGNED = 3, _DSTC_FLOAT = 4, _DSTC_BOOL = 5 };

#define _DSTC_KIND(type) _Generic(*(type *)0, \
    char: _DSTC_TEXT, \
    signed char: _DSTC_SIGNED, short: _DSTC_SIGNED, int: _DSTC_SIGNED, long: _DSTC_SIGNED, long long: _DSTC_SIGNED, \
    unsigned char: _DSTC_UNSIGNED, unsigned short: _DSTC_UNSIGNED, unsigned int: _DSTC_UNSIGNED, \
    unsigned long: _DSTC_UNSIGNED, unsigned long long: _DSTC_UNSIGNED, \
    float: _DSTC_FLOAT, double: _DSTC_FLOAT, _Bool: _DSTC_BOOL, default: _DSTC_BYTES)

#define _DSTC_IS_ARRAY(type, size) (sizeof(type size) != sizeof(type))

/* The address of an argument's data: a parameter declared as an array is a pointer. */
static inline const void *_dstc_data(const void *param, int is_array)
{
    if (is_array) {
        const void *p;
        memcpy(&p, param, sizeof(p));
        return p;
    }
    return param;
}

static inline uint8_t *_dstc_put_head(uint8_t *w, uint8_t major, uint64_t n)
{
    major <<= 5;
    if (n < 24) { *w++ = major | (uint8_t)n; return w; }
    if (n <= 0xff) { *w++ = major | 24; *w++ = (uint8_t)n; return w; }
    if (n <= 0xffff) { *w++ = major | 25; *w++ = (uint8_t)(n >> 8); *w++ = (uint8_t)n; return w; }
    if (n <= 0xffffffffu) {
        *w++ = major | 26;
        for (int i = 3; i >= 0; i--) *w++ = (uint8_t)(n >> (8 * i));
        return w;
    }
    *w++ = major | 27;
    for (int i = 7; i >= 0; i--) *w++ = (uint8_t)(n >> (8 * i));
    return w;
}

static inline uint8_t *_dstc_put(uint8_t *w, const void *p, int kind, size_t size, size_t elem, int is_array)
{
    if (is_array || kind == _DSTC_BYTES) {
        if (is_array && kind == _DSTC_TEXT) {
            size_t len = strnlen((const char *)p, size);
            w = _dstc_put_head(w, 3, len);
            memcpy(w, p, len);
            return w + len;
        }
        w = _dstc_put_head(w, 2, size);
        memcpy(w, p, size);
        return w + size;
    }
    if (kind == _DSTC_SIGNED || kind == _DSTC_TEXT) {
        int64_t v = 0;
        switch (elem) {
        case 1: { int8_t x; memcpy(&x, p, 1); v = x; break; }
        case 2: { int16_t x; memcpy(&x, p, 2); v = x; break; }
        case 4: { int32_t x; memcpy(&x, p, 4); v = x; break; }
        default: { int64_t x; memcpy(&x, p, 8); v = x; break; }
        }
        return v < 0 ? _dstc_put_head(w, 1, (uint64_t)(-1 - v)) : _dstc_put_head(w, 0, (uint64_t)v);
    }
    if (kind == _DSTC_UNSIGNED) {
        uint64_t v = 0;
        switch (elem) {
        case 1: { uint8_t x; memcpy(&x, p, 1); v = x; break; }
        case 2: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
        case 4: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
        default: { uint64_t x; memcpy(&x, p, 8); v = x; break; }
        }
        return _dstc_put_head(w, 0, v);
    }
    if (kind == _DSTC_BOOL) {
        _Bool b;
        memcpy(&b, p, 1);
        *w++ = b ? 0xf5 : 0xf4;
        return w;
    }
    /* _DSTC_FLOAT: as a double */
    double d;
    if (elem == sizeof(float)) { float f; memcpy(&f, p, sizeof f); d = f; }
    else memcpy(&d, p, sizeof d);
    uint64_t bits;
    memcpy(&bits, &d, 8);
    *w++ = 0xfb;
    for (int i = 7; i >= 0; i--) *w++ = (uint8_t)(bits >> (8 * i));
    return w;
}

/* Reads an item's head; returns -1 on a malformed or indefinite-length item. */
static inline int _dstc_get_head(const uint8_t **r, const uint8_t *end, uint8_t *major, uint8_t *info, uint64_t *n)
{
    if (*r >= end) return -1;
    uint8_t b = *(*r)++;
    *major = b >> 5;
    *info = b & 31;
    if (*info < 24) { *n = *info; return 0; }
    int len = *info == 24 ? 1 : *info == 25 ? 2 : *info == 26 ? 4 : *info == 27 ? 8 : -1;
    if (len < 0 || end - *r < len) return -1;
    *n = 0;
    for (int i = 0; i < len; i++) *n = (*n << 8) | *(*r)++;
    return 0;
}

static inline double _dstc_half(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? m / 1024.0 / 16384.0 : e == 31 ? (m ? 0.0 / 0.0 : 1.0 / 0.0) : (1 + m / 1024.0) * (double)(1u << e) / 32768.0;
    return (h & 0x8000) ? -v : v;
}

/* Decodes one argument into `dst`; returns -1 when it does not fit the declaration. */
static inline int _dstc_get(const uint8_t **r, const uint8_t *end, void *dst, int kind, size_t size, size_t elem, int is_array)
{
    uint8_t major, info;
    uint64_t n;
    if (_dstc_get_head(r, end, &major, &info, &n)) return -1;
    if (is_array || kind == _DSTC_BYTES) {
        int text = is_array && kind == _DSTC_TEXT;
        if (major != (text ? 3 : 2) || (uint64_t)(end - *r) < n) return -1;
        if (text ? n >= size : n != size) return -1;
        memset(dst, 0, size);
        memcpy(dst, *r, (size_t)n);
        *r += n;
        return 0;
    }
    if (kind == _DSTC_BOOL) {
        if (major != 7 || (info != 20 && info != 21)) return -1;
        _Bool b = info == 21;
        memcpy(dst, &b, 1);
        return 0;
    }
    if (kind == _DSTC_FLOAT) {
        double d;
        if (major == 0) d = (double)n;
        else if (major == 1) d = -1.0 - (double)n;
        else if (major == 7 && info == 25) d = _dstc_half((uint16_t)n);
        else if (major == 7 && info == 26) { uint32_t b = (uint32_t)n; float f; memcpy(&f, &b, 4); d = f; }
        else if (major == 7 && info == 27) memcpy(&d, &n, 8);
        else return -1;
        if (elem == sizeof(float)) { float f = (float)d; memcpy(dst, &f, sizeof f); }
        else memcpy(dst, &d, sizeof d);
        return 0;
    }
    /* integers */
    if (major != 0 && major != 1) return -1;
    int bits = (int)elem * 8;
    if (kind == _DSTC_UNSIGNED) {
        if (major != 0 || (bits < 64 && n >> bits)) return -1;
    } else {
        uint64_t limit = bits < 64 ? (1ull << (bits - 1)) : (1ull << 63);
        if (major == 0 ? n >= limit : n >= limit) return -1;
    }
    int64_t v = major == 0 ? (int64_t)n : -1 - (int64_t)n;
    switch (elem) {
    case 1: { int8_t x = (int8_t)v; memcpy(dst, &x, 1); break; }
    case 2: { int16_t x = (int16_t)v; memcpy(dst, &x, 2); break; }
    case 4: { int32_t x = (int32_t)v; memcpy(dst, &x, 4); break; }
    default: memcpy(dst, &v, 8); break;
    }
    return 0;
}

/* ---- The argument-list machinery ----------------------------------------------------- */

#define _DSTC_NTH(_0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, n, ...) n
#define _DSTC_COUNT(...) _DSTC_NTH(_, ##__VA_ARGS__, 16, x, 15, x, 14, x, 13, x, 12, x, 11, x, 10, x, 9, x, 8, x, 7, x, 6, x, 5, x, 4, x, 3, x, 2, x, 1, x, 0)
#define _DSTC_CAT(a, b) _DSTC_CAT_(a, b)
#define _DSTC_CAT_(a, b) a##b

#define _DSTC_S0(m, ...)
#define _DSTC_S1(m, t, s, ...) m(1, t, s)
#define _DSTC_S2(m, t, s, ...) m(2, t, s) _DSTC_S1(m, __VA_ARGS__)
#define _DSTC_S3(m, t, s, ...) m(3, t, s) _DSTC_S2(m, __VA_ARGS__)
#define _DSTC_S4(m, t, s, ...) m(4, t, s) _DSTC_S3(m, __VA_ARGS__)
#define _DSTC_S5(m, t, s, ...) m(5, t, s) _DSTC_S4(m, __VA_ARGS__)
#define _DSTC_S6(m, t, s, ...) m(6, t, s) _DSTC_S5(m, __VA_ARGS__)
#define _DSTC_S7(m, t, s, ...) m(7, t, s) _DSTC_S6(m, __VA_ARGS__)
#define _DSTC_S8(m, t, s, ...) m(8, t, s) _DSTC_S7(m, __VA_ARGS__)
#define _DSTC_S9(m, t, s, ...) m(9, t, s) _DSTC_S8(m, __VA_ARGS__)
#define _DSTC_S10(m, t, s, ...) m(10, t, s) _DSTC_S9(m, __VA_ARGS__)
#define _DSTC_S11(m, t, s, ...) m(11, t, s) _DSTC_S10(m, __VA_ARGS__)
#define _DSTC_S12(m, t, s, ...) m(12, t, s) _DSTC_S11(m, __VA_ARGS__)
#define _DSTC_S13(m, t, s, ...) m(13, t, s) _DSTC_S12(m, __VA_ARGS__)
#define _DSTC_S14(m, t, s, ...) m(14, t, s) _DSTC_S13(m, __VA_ARGS__)
#define _DSTC_S15(m, t, s, ...) m(15, t, s) _DSTC_S14(m, __VA_ARGS__)
#define _DSTC_S16(m, t, s, ...) m(16, t, s) _DSTC_S15(m, __VA_ARGS__)
#define _DSTC_EACH_S(m, ...) _DSTC_CAT(_DSTC_S, _DSTC_COUNT(__VA_ARGS__))(m, ##__VA_ARGS__)

#define _DSTC_L0(m, ...)
#define _DSTC_L1(m, t, s, ...) m(1, t, s)
#define _DSTC_L2(m, t, s, ...) m(2, t, s), _DSTC_L1(m, __VA_ARGS__)
#define _DSTC_L3(m, t, s, ...) m(3, t, s), _DSTC_L2(m, __VA_ARGS__)
#define _DSTC_L4(m, t, s, ...) m(4, t, s), _DSTC_L3(m, __VA_ARGS__)
#define _DSTC_L5(m, t, s, ...) m(5, t, s), _DSTC_L4(m, __VA_ARGS__)
#define _DSTC_L6(m, t, s, ...) m(6, t, s), _DSTC_L5(m, __VA_ARGS__)
#define _DSTC_L7(m, t, s, ...) m(7, t, s), _DSTC_L6(m, __VA_ARGS__)
#define _DSTC_L8(m, t, s, ...) m(8, t, s), _DSTC_L7(m, __VA_ARGS__)
#define _DSTC_L9(m, t, s, ...) m(9, t, s), _DSTC_L8(m, __VA_ARGS__)
#define _DSTC_L10(m, t, s, ...) m(10, t, s), _DSTC_L9(m, __VA_ARGS__)
#define _DSTC_L11(m, t, s, ...) m(11, t, s), _DSTC_L10(m, __VA_ARGS__)
#define _DSTC_L12(m, t, s, ...) m(12, t, s), _DSTC_L11(m, __VA_ARGS__)
#define _DSTC_L13(m, t, s, ...) m(13, t, s), _DSTC_L12(m, __VA_ARGS__)
#define _DSTC_L14(m, t, s, ...) m(14, t, s), _DSTC_L13(m, __VA_ARGS__)
#define _DSTC_L15(m, t, s, ...) m(15, t, s), _DSTC_L14(m, __VA_ARGS__)
#define _DSTC_L16(m, t, s, ...) m(16, t, s), _DSTC_L15(m, __VA_ARGS__)
#define _DSTC_EACH_L(m, ...) _DSTC_CAT(_DSTC_L, _DSTC_COUNT(__VA_ARGS__))(m, ##__VA_ARGS__)

#define _DSTC_PARAM(n, type, size) type _a##n size
#define _DSTC_LOCAL(n, type, size) type _a##n size;
#define _DSTC_ARG(n, type, size) _a##n
#define _DSTC_SIZE(n, type, size) + sizeof(type size) + 9
#define _DSTC_PUT(n, type, size) \
    _w = _dstc_put(_w, _dstc_data(&_a##n, _DSTC_IS_ARRAY(type, size)), _DSTC_KIND(type), \
                   sizeof(type size), sizeof(type), _DSTC_IS_ARRAY(type, size));
#define _DSTC_GET(n, type, size) \
    if (_dstc_get(&_r, _end, (void *)&_a##n, _DSTC_KIND(type), sizeof(type size), sizeof(type), \
                  _DSTC_IS_ARRAY(type, size))) return -1;

#define _DSTC_PARAMS(...) _DSTC_CAT(_DSTC_PARAMS_, _DSTC_COUNT(__VA_ARGS__))(__VA_ARGS__)
#define _DSTC_PARAMS_0(...) void
#define _DSTC_PARAMS_1(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_2(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_3(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_4(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_5(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_6(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_7(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_8(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_9(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_10(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_11(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_12(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_13(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_14(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_15(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)
#define _DSTC_PARAMS_16(...) _DSTC_EACH_L(_DSTC_PARAM, __VA_ARGS__)

/* ---- The macros ------------------------------------------------------------------------ */

/* Generates `void dstc_NAME(args...)`, which sends NAME(args...) to every node serving it. */
#define DSTC_CLIENT(name, ...)                                                             \
    void dstc_##name(_DSTC_PARAMS(__VA_ARGS__))                                            \
    {                                                                                      \
        uint8_t _buf[16 _DSTC_EACH_S(_DSTC_SIZE, ##__VA_ARGS__)];                          \
        uint8_t *_w = _dstc_put_head(_buf, 4, _DSTC_COUNT(__VA_ARGS__));                   \
        _DSTC_EACH_S(_DSTC_PUT, ##__VA_ARGS__)                                             \
        dstc_send_typed(#name, _buf, (uint32_t)(_w - _buf));                               \
    }                                                                                      \
    static void __attribute__((constructor)) _dstc_register_client_##name(void)            \
    {                                                                                      \
        dstc_register_client_function(#name, (void *)dstc_##name);                         \
    }

/* Serves NAME: every call to it received by the node runs your `void NAME(args...)`. */
#define DSTC_SERVER(name, ...)                                                             \
    void name(_DSTC_PARAMS(__VA_ARGS__));                                                  \
    static int _dstc_server_##name(const uint8_t *_args, uint32_t _len)                    \
    {                                                                                      \
        _DSTC_EACH_S(_DSTC_LOCAL, ##__VA_ARGS__)                                           \
        const uint8_t *_r = _args, *_end = _args + _len;                                   \
        uint8_t _major, _info;                                                             \
        uint64_t _n;                                                                       \
        if (_dstc_get_head(&_r, _end, &_major, &_info, &_n) || _major != 4                 \
            || _n != (uint64_t)_DSTC_COUNT(__VA_ARGS__))                                   \
            return -1;                                                                     \
        _DSTC_EACH_S(_DSTC_GET, ##__VA_ARGS__)                                             \
        name(_DSTC_EACH_L(_DSTC_ARG, ##__VA_ARGS__));                                      \
        return 0;                                                                          \
    }                                                                                      \
    static void __attribute__((constructor)) _dstc_register_##name(void)                   \
    {                                                                                      \
        dstc_register_typed(#name, _dstc_server_##name);                                   \
    }

#endif /* DSTC_H */
