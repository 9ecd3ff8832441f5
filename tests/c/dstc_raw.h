/*
 * The raw-bytes plugin ABI of the 2018 DSTC proof of concept, reduced to what the tests
 * need: a client stub that sends `name\0` followed by the arguments' raw bytes, a server
 * stub registered from a constructor, DSTC_ON_LOAD, and dstc_epoll_ctl. Functions take
 * exactly two array arguments, declared as in test_chat.c: (type, [size], type, [size]).
 * The dhost executable provides the three dstc_* functions.
 */
#ifndef DSTC_RAW_H
#define DSTC_RAW_H

#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>

extern void dstc_register_function(char *name, void (*server)(uint8_t *));
extern void dstc_srv_send(uint8_t *buf, uint32_t size);
typedef void (*dstc_epoll_cb_t)(int fd, struct epoll_event *ev);
extern int dstc_epoll_ctl(int op, int fd, struct epoll_event *ev, dstc_epoll_cb_t cb);

#define DSTC_ON_LOAD(fn) \
    static void __attribute__((constructor)) _dstc_on_load_##fn(void) { fn(); }

#define DSTC_CLIENT(name, t1, s1, t2, s2)                                   \
    void dstc_##name(t1 _a1 s1, t2 _a2 s2)                                  \
    {                                                                       \
        uint8_t buf[sizeof(#name) + sizeof(t1 s1) + sizeof(t2 s2)];         \
        uint8_t *d = buf;                                                   \
        memcpy(d, #name, sizeof(#name)); d += sizeof(#name);                \
        memcpy(d, _a1, sizeof(t1 s1)); d += sizeof(t1 s1);                  \
        memcpy(d, _a2, sizeof(t2 s2)); d += sizeof(t2 s2);                  \
        dstc_srv_send(buf, (uint32_t)(d - buf));                            \
    }

#define DSTC_SERVER(name, t1, s1, t2, s2)                                   \
    static void _dstc_server_##name(uint8_t *d)                             \
    {                                                                       \
        t1 _a1 s1;                                                          \
        t2 _a2 s2;                                                          \
        memcpy(&_a1, d, sizeof(t1 s1)); d += sizeof(t1 s1);                 \
        memcpy(&_a2, d, sizeof(t2 s2));                                     \
        name(_a1, _a2);                                                     \
    }                                                                       \
    static void __attribute__((constructor)) _dstc_register_##name(void)   \
    {                                                                       \
        dstc_register_function(#name, _dstc_server_##name);                 \
    }

#endif
