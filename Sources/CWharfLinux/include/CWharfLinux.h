/*
 * Linux system interfaces that Swift's Glibc module does not export: epoll and eventfd,
 * for the relay pump (Sources/WharfCore/Relay/SocketPump.swift), and what glibc declares
 * only under _GNU_SOURCE: thread naming and SCHED_BATCH, posix_spawn's closefrom,
 * memfd_create and accept4; and the relaxed atomics the shared metrics counters use.
 */
#ifndef CWHARF_LINUX_H
#define CWHARF_LINUX_H

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif

#include <pthread.h>
#include <spawn.h>
#include <stdint.h>

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34), which glibc declares only under
 * _GNU_SOURCE: the spawned child keeps no descriptor from `from` up. Returns 0 or an errno. */
int cwharf_spawn_close_from(posix_spawn_file_actions_t *actions, int from);

/* Names the calling thread (at most 15 bytes are kept) so it shows in top, perf and gdb. */
void cwharf_name_current_thread(const char *name);

/* Puts the calling thread under SCHED_BATCH (`batch` non-zero) or SCHED_OTHER. A SCHED_BATCH
 * thread, once woken, never preempts the running thread: it waits for that thread to sleep or
 * for the next tick. Needs no privilege. Returns 0 or an errno. */
int cwharf_set_batch_scheduling(int batch);

/* An anonymous shared-memory file (memfd_create, close-on-exec), for the metrics segment a
 * supervisor shares with one worker. Returns the descriptor, or -1 with errno set. */
int cwharf_memfd(const char *name);

/* A mutex in memory shared by processes (the per-client table), robust: if a process dies
 * holding it, the next locker gets it anyway (the table's invariants survive any single
 * interrupted update). Returns 0 or an errno. */
int cwharf_shared_mutex_init(pthread_mutex_t *mutex);
void cwharf_shared_mutex_lock(pthread_mutex_t *mutex);
void cwharf_shared_mutex_unlock(pthread_mutex_t *mutex);

/* The stack of a thread that is stuck (an event loop a plugin callback blocks), for the stall
 * report: install once, then ask from another thread. The thread is interrupted by a signal
 * (SIGRTMIN+2) whose handler records its return addresses; the requester waits at most
 * `timeout_ms`. Returns the number of frames, or -1 (no answer, or not installed). One
 * request at a time. */
int cwharf_stack_sampler_install(void);
int cwharf_stack_sample(pthread_t thread, void **frames, int capacity, int timeout_ms);

/* The shared object (path) and symbol an address lies in; 0 if unknown. */
int cwharf_describe_address(const void *address, char *object, size_t object_len, char *symbol, size_t symbol_len);

/* Milliseconds on CLOCK_MONOTONIC: the same clock in every process on the machine. */
uint64_t cwharf_monotonic_ms(void);

/* accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC), accept4 being a GNU
 * extension. `address` is a struct sockaddr, `length` a socklen_t; untyped here so this
 * header need not include <sys/socket.h>, which would change how Swift imports SOCK_*. */
int cwharf_accept(int fd, void *address, uint32_t *length);

/* Metrics counters live in memory that other processes read while one thread writes.
 * A counter has exactly one writing thread (an event loop, or a relay pump), so an add is a
 * relaxed load and store: no locked instruction on the data path. Readers load relaxed. */
static inline void cwharf_counter_add(uint64_t *counter, uint64_t amount) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + amount, __ATOMIC_RELAXED);
}

/* For the few counters any thread may bump (dropped log lines). */
static inline void cwharf_counter_add_shared(uint64_t *counter, uint64_t amount) {
    __atomic_fetch_add(counter, amount, __ATOMIC_RELAXED);
}

static inline void cwharf_counter_store(uint64_t *counter, uint64_t value) {
    __atomic_store_n(counter, value, __ATOMIC_RELAXED);
}

/* Publishing data written before (plugin-metric descriptions): release / acquire. */
static inline void cwharf_counter_store_release(uint64_t *counter, uint64_t value) {
    __atomic_store_n(counter, value, __ATOMIC_RELEASE);
}

static inline uint64_t cwharf_counter_load_acquire(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
}

static inline uint64_t cwharf_counter_load(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#endif
