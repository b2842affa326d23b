/* Blocking work off the loop: each line is handed to a thread the plugin starts, which
 * upper-cases it, logs from that thread, and posts the result back to the stream's loop
 * with a waker, the one cross-thread entry point. Exercises the [any thread] functions. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

typedef struct offload {
    const wharf_host_api *host;
    const wharf_instance *instance;
} offload;

typedef struct job {
    offload *plugin;
    wharf_stream *stream;
    wharf_waker *waker;
    size_t len;
    uint8_t data[];
} job;

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *line, size_t len);

static void on_loop(void *userdata, int32_t status) {
    job *work = userdata;
    const wharf_host_api *host = work->plugin->host;
    if (status == WHARF_OK && host->write(work->stream, work->data, work->len, NULL, NULL) == WHARF_OK) {
        host->read_until(work->stream, (const uint8_t *)"\n", 1, 0, on_line, work->plugin);
    }
    host->waker_release(work->waker);
    free(work);
}

static void *worker(void *userdata) {
    job *work = userdata;
    for (size_t i = 0; i < work->len; i++) {
        if (work->data[i] >= 'a' && work->data[i] <= 'z') work->data[i] = (uint8_t)(work->data[i] - 32);
    }
    wharf_logf(work->plugin->host, work->plugin->instance, WHARF_LOG_INFO, "worker thread finished %zu bytes",
               work->len);
    work->plugin->host->waker_post(work->waker, on_loop, work);
    return NULL;
}

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *line, size_t len) {
    offload *self = userdata;
    if (status != WHARF_OK) return;
    job *work = malloc(sizeof *work + len);
    if (work == NULL) {
        self->host->abort(stream);
        return;
    }
    work->plugin = self;
    work->stream = stream;
    work->len = len;
    memcpy(work->data, line, len);
    pthread_t thread;
    if (self->host->waker_create(stream, &work->waker) != WHARF_OK ||
        pthread_create(&thread, NULL, worker, work) != 0) {
        free(work);
        self->host->abort(stream);
        return;
    }
    pthread_detach(thread);
}

static int32_t offload_init(const wharf_host_api *host, const wharf_init_args *args, void **out, char *error,
                            size_t error_len) {
    (void)error;
    (void)error_len;
    offload *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    self->instance = args->instance;
    *out = self;
    return WHARF_OK;
}

static int32_t offload_handle_stream(void *instance, wharf_stream *stream) {
    offload *self = instance;
    return self->host->read_until(stream, (const uint8_t *)"\n", 1, 0, on_line, self);
}

static void offload_shutdown(void *instance) {
    offload *self = instance;
    wharf_logf(self->host, self->instance, WHARF_LOG_INFO, "offload shutdown");
    free(self);
}

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .name = "offload",
    .version = "1.0.0",
    .description = "Upper-cases lines on a worker thread (test fixture)",
    .init = offload_init,
    .handle_stream = offload_handle_stream,
    .shutdown = offload_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
