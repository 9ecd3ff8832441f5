/*
 * The chat of the 2018 DSTC proof of concept, as test_chat.c wrote it, on the raw-bytes
 * ABI: init (run while the plugin is loaded) asks for a user name on stdin, then watches
 * stdin with dstc_epoll_ctl and sends each line with dstc_message(); every message
 * received is printed.
 */
#include <stdio.h>
#include "dstc_raw.h"

DSTC_CLIENT(message, char, [128], char, [512])

static char username[128];

void message(char name[128], char msg[512])
{
    name[127] = 0;
    msg[511] = 0;
    printf("[%s]: %s\n", name, msg);
    fflush(stdout);
}

DSTC_SERVER(message, char, [128], char, [512])

static void on_stdin(int fd, struct epoll_event *ev)
{
    char line[512] = { 0 };
    if (ev->data.u64 != 4711) {
        printf("raw_chat: callback got the wrong data\n");
    }
    if (!fgets(line, sizeof(line), stdin)) {
        dstc_epoll_ctl(EPOLL_CTL_DEL, fd, ev, 0);
        return;
    }
    line[strcspn(line, "\n")] = 0;
    dstc_message(username, line);
}

static void init(void)
{
    struct epoll_event ev;
    printf("Username: ");
    fflush(stdout);
    if (!fgets(username, sizeof(username), stdin))
        strcpy(username, "anonymous");
    username[strcspn(username, "\n")] = 0;
    ev.events = EPOLLIN;
    ev.data.u64 = 4711;
    dstc_epoll_ctl(EPOLL_CTL_ADD, 0, &ev, on_stdin);
}

DSTC_ON_LOAD(init)
