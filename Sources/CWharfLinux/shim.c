#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>

#include "CWharfLinux.h"

void cwharf_name_current_thread(const char *name) {
    char truncated[16];
    int i = 0;
    for (; i < 15 && name[i] != '\0'; i++) truncated[i] = name[i];
    truncated[i] = '\0';
    pthread_setname_np(pthread_self(), truncated);
}

int cwharf_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int cwharf_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}
