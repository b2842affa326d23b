/*
 * Linux system interfaces that Swift's Glibc module does not export: epoll and eventfd,
 * for the relay pump (Sources/WharfCore/Relay/SocketPump.swift), and what glibc declares
 * only under _GNU_SOURCE: thread naming and posix_spawn's closefrom.
 */
#ifndef CWHARF_LINUX_H
#define CWHARF_LINUX_H

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif

#include <spawn.h>

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34), which glibc declares only under
 * _GNU_SOURCE: the spawned child keeps no descriptor from `from` up. Returns 0 or an errno. */
int cwharf_spawn_close_from(posix_spawn_file_actions_t *actions, int from);

/* Names the calling thread (at most 15 bytes are kept) so it shows in top, perf and gdb. */
void cwharf_name_current_thread(const char *name);

#endif
