/*
 * The chat of the 2018 DSTC proof of concept, written as test_chat.c was, built against
 * dhost's guest-sdk/c/dstc.h: the arguments travel as typed CBOR, so this plugin chats
 * with chat.wasm nodes as well as with nodes running itself.
 *
 *   gcc -fPIC -shared -I guest-sdk/c -o test_chat.so guests/c/test_chat/test_chat.c
 *   dhost run test_chat.so
 */
#include <stdio.h>
#include "dstc.h"

DSTC_CLIENT(message, char, [128], char, [512])

static char username[128];

void message(char name[128], char msg[512])
{
    printf("[%s]: %s\n", name, msg);
    fflush(stdout);
}

DSTC_SERVER(message, char, [128], char, [512])

/* One line of stdin per readiness, as the original: the line is read with stdio. */
static void handle_stdin(int fd, struct epoll_event *ev)
{
    char line[600] = { 0 };
    char msg[512] = { 0 };
    (void)ev;
    if (!fgets(line, sizeof(line), stdin)) {
        dstc_epoll_ctl(EPOLL_CTL_DEL, fd, 0, 0);
        return;
    }
    line[strcspn(line, "\r\n")] = 0;
    snprintf(msg, sizeof(msg), "%s", line);
    dstc_message(username, msg);
}

static void init(void)
{
    struct epoll_event ev;
    char line[600] = { 0 };
    printf("Username: ");
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin))
        line[strcspn(line, "\r\n")] = 0;
    snprintf(username, sizeof(username), "%s", line[0] ? line : "anonymous");
    ev.events = EPOLLIN;
    ev.data.fd = 0;
    dstc_epoll_ctl(EPOLL_CTL_ADD, 0, &ev, handle_stdin);
}

DSTC_ON_LOAD(init)
