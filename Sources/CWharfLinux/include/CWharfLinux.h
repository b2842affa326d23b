/*
 * Linux system interfaces that Swift's Glibc module does not export: epoll and eventfd,
 * for the relay pump (Sources/WharfCore/Relay/SocketPump.swift), and thread naming, which
 * glibc declares only under _GNU_SOURCE.
 */
#ifndef CWHARF_LINUX_H
#define CWHARF_LINUX_H

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif

/* Names the calling thread (at most 15 bytes are kept) so it shows in top, perf and gdb. */
void cwharf_name_current_thread(const char *name);

#endif
