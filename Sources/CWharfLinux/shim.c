#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <stdio.h>
#include <time.h>

#include "CWharfLinux.h"

void cwharf_name_current_thread(const char *name) {
    char truncated[16];
    int i = 0;
    for (; i < 15 && name[i] != '\0'; i++) truncated[i] = name[i];
    truncated[i] = '\0';
    pthread_setname_np(pthread_self(), truncated);
}

int cwharf_set_batch_scheduling(int batch) {
    struct sched_param parameters = {.sched_priority = 0};
    return pthread_setschedparam(pthread_self(), batch ? SCHED_BATCH : SCHED_OTHER, &parameters);
}

int cwharf_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int cwharf_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int cwharf_shared_mutex_init(pthread_mutex_t *mutex) {
    pthread_mutexattr_t attributes;
    int error = pthread_mutexattr_init(&attributes);
    if (error != 0) return error;
    error = pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    if (error == 0) error = pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    if (error == 0) error = pthread_mutex_init(mutex, &attributes);
    pthread_mutexattr_destroy(&attributes);
    return error;
}

void cwharf_shared_mutex_lock(pthread_mutex_t *mutex) {
    if (pthread_mutex_lock(mutex) == EOWNERDEAD) pthread_mutex_consistent(mutex);
}

void cwharf_shared_mutex_unlock(pthread_mutex_t *mutex) { pthread_mutex_unlock(mutex); }

uint64_t cwharf_monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

#define SAMPLE_CAPACITY 64
static void *sample_frames[SAMPLE_CAPACITY];
static atomic_int sample_count = -1;
static atomic_int sampler_installed = 0;
static pthread_mutex_t sample_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_sample_signal(int number) {
    (void)number;
    int saved = errno;
    /* backtrace() is safe here once libgcc is loaded, which install() makes sure of. */
    atomic_store(&sample_count, backtrace(sample_frames, SAMPLE_CAPACITY));
    errno = saved;
}

int cwharf_stack_sampler_install(void) {
    void *warm[2];
    (void)backtrace(warm, 2); /* loads the unwinder outside any signal handler */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sample_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGRTMIN + 2, &action, NULL) != 0) return errno;
    atomic_store(&sampler_installed, 1);
    return 0;
}

int cwharf_stack_sample(pthread_t thread, void **frames, int capacity, int timeout_ms) {
    if (!atomic_load(&sampler_installed)) return -1;
    pthread_mutex_lock(&sample_lock);
    atomic_store(&sample_count, -1);
    int count = -1;
    if (pthread_kill(thread, SIGRTMIN + 2) == 0) {
        for (int waited = 0; waited < timeout_ms; waited++) {
            count = atomic_load(&sample_count);
            if (count >= 0) break;
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
        }
    }
    if (count > capacity) count = capacity;
    for (int i = 0; i < count; i++) frames[i] = sample_frames[i];
    pthread_mutex_unlock(&sample_lock);
    return count;
}

int cwharf_describe_address(const void *address, char *object, size_t object_len, char *symbol, size_t symbol_len) {
    Dl_info info;
    if (dladdr(address, &info) == 0) return 0;
    snprintf(object, object_len, "%s", info.dli_fname != NULL ? info.dli_fname : "");
    snprintf(symbol, symbol_len, "%s", info.dli_sname != NULL ? info.dli_sname : "");
    return 1;
}

int cwharf_accept(int fd, void *address, uint32_t *length) {
    return accept4(fd, (struct sockaddr *)address, (socklen_t *)length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
