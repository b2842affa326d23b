/* For the supervisor tests: answers each line with "v<VERSION> <config> pid=<pid> <line>",
 * so a test sees which build, which config and which worker process served it. The line
 * "crash" kills the worker with SIGSEGV; "spin" blocks its event loop for good; "sleep MS"
 * blocks it for MS milliseconds; "log N" logs N long lines first; "blob N" first writes N
 * bytes in one write (a refusal is logged, and the reply is not sent). Config
 * {"refuse": true} makes init fail. Build with -DVERSION=N, and -DVARIANT_RELAYS_AT_ONCE to
 * declare that hint (falsely). Test fixture. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wharf.h"

#ifndef VERSION
#define VERSION 1
#endif
#define STRINGIFY2(x) #x
#define STRINGIFY(x) STRINGIFY2(x)

static const wharf_host_api *host;

typedef struct {
    char config[256];
} instance;

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    instance *self = userdata;
    if (status != WHARF_OK) return;
    if (len >= 5 && memcmp(data, "crash", 5) == 0) raise(SIGSEGV);
    if (len >= 4 && memcmp(data, "spin", 4) == 0) {
        for (volatile unsigned long spins = 0;; spins++) {}
    }
    if (len >= 6 && memcmp(data, "sleep ", 6) == 0) {
        long ms = atol((const char *)data + 6);
        struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        /* The whole time, even when a signal (the stall watchdog's stack sample) interrupts. */
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
    }
    if (len >= 4 && memcmp(data, "log ", 4) == 0) {
        int count = atoi((const char *)data + 4);
        for (int i = 0; i < count; i++) {
            wharf_logf(host, NULL, WHARF_LOG_INFO, "filler %d: %s", i,
                       "........................................................................................");
        }
    }
    if (len >= 5 && memcmp(data, "blob ", 5) == 0) {
        size_t size = (size_t)atol((const char *)data + 5);
        uint8_t *blob = malloc(size);
        if (blob != NULL) {
            memset(blob, 'x', size);
            int32_t status = host->write(stream, blob, size, NULL, NULL);
            free(blob);
            if (status != WHARF_OK) {
                wharf_logf(host, NULL, WHARF_LOG_WARNING, "blob of %zu bytes refused: %s (code %d)", size,
                           host->strerror(status), (int)status);
                return;
            }
        }
    }
    char reply[512];
    int n = snprintf(reply, sizeof reply, "v" STRINGIFY(VERSION) " %s pid=%d %.*s", self->config, (int)getpid(),
                     (int)(len > 200 ? 200 : len), (const char *)data);
    host->write(stream, (const uint8_t *)reply, (size_t)n, NULL, NULL);
    host->read_until(stream, (const uint8_t *)"\n", 1, 0, on_line, self);
}

static int32_t worker_init(const wharf_host_api *api, const wharf_init_args *args, void **out, char *error,
                           size_t error_len) {
    host = api;
    if (strstr(args->config_json, "\"refuse\":true") != NULL) {
        snprintf(error, error_len, "refused on purpose");
        return WHARF_E_INVALID;
    }
    instance *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    snprintf(self->config, sizeof self->config, "%s", args->config_json);
    *out = self;
    return WHARF_OK;
}

static int32_t worker_handle_stream(void *self, wharf_stream *stream) {
    return host->read_until(stream, (const uint8_t *)"\n", 1, 0, on_line, self);
}

static void worker_shutdown(void *self) { free(self); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 2,
    .name = "worker",
    .version = "1.0." STRINGIFY(VERSION),
    .description = "Says which build, config and process served a line; crashes or spins on request (test fixture)",
    .init = worker_init,
    .handle_stream = worker_handle_stream,
    .shutdown = worker_shutdown,
#ifdef VARIANT_RELAYS_AT_ONCE
    .flags = WHARF_PLUGIN_RELAYS_AT_ONCE, /* a false hint: the host must build each channel */
#endif
};

WHARF_PLUGIN_DEFINE(&descriptor)
