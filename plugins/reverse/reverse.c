/*
 * reverse — the Tornado TCPServer tutorial's server: read up to 20 bytes as they come
 * (read_bytes partial), write the chunk back, then the chunk reversed byte-wise. A chunk
 * that is exactly "over" is answered, then the connection is closed.
 * Config: chunk_size (default 20).
 *
 * Written as the sequence the tutorial's coroutine is, with include/wharf_seq.h, rather
 * than as a chain of callbacks.
 */
#include <stdlib.h>
#include <string.h>

#include "wharf.h"
#include "wharf_plugin_config.h"
#include "wharf_seq.h"

#define MAX_CHUNK 4096

typedef struct reverse_instance {
    const wharf_host_api *host;
    size_t chunk_size;
} reverse_instance;

/* One connection: the helper's state, and what the loop needs across its awaits. */
typedef struct reverse_task {
    wharf_seq seq;
    size_t chunk_size;
} reverse_task;

/*     while True:
 *         data = yield stream.read_bytes(20, partial=True)
 *         yield stream.write(data); yield stream.write(data[::-1])
 *         if data == b"over": stream.close()                                          */
static void serve(wharf_seq *seq) {
    reverse_task *task = (reverse_task *)seq;
    WHARF_SEQ_BEGIN(seq);
    for (;;) {
        WHARF_SEQ_READ_BYTES(seq, task->chunk_size, 1);
        if (seq->status != WHARF_OK) break; /* closed: the task ends */
        uint8_t reversed[MAX_CHUNK];
        for (size_t i = 0; i < seq->len; i++) reversed[i] = seq->data[seq->len - 1 - i];
        /* No need to await the writes: the host copies them and throttles reads while the
         * output is backed up. */
        if (seq->host->write(seq->stream, seq->data, seq->len, NULL, NULL) != WHARF_OK ||
            seq->host->write(seq->stream, reversed, seq->len, NULL, NULL) != WHARF_OK) {
            break;
        }
        if (seq->len == 4 && memcmp(seq->data, "over", 4) == 0) {
            seq->host->close(seq->stream); /* graceful: both replies are flushed first */
            break;
        }
    }
    WHARF_SEQ_END(seq);
}

static int32_t reverse_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out,
                            char *error, size_t error_len) {
    static const char *const keys[] = {"chunk_size", NULL};
    long long chunk_size = 20;
    if (wharf_config_check_keys(args->config_json, args->config_json_len, keys, error, error_len) < 0 ||
        wharf_config_int(args->config_json, args->config_json_len, "chunk_size", 1, MAX_CHUNK, &chunk_size, error,
                         error_len) < 0) {
        return WHARF_E_INVALID;
    }
    reverse_instance *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    self->chunk_size = (size_t)chunk_size;
    *instance_out = self;
    return WHARF_OK;
}

static int32_t reverse_handle_stream(void *instance, wharf_stream *stream) {
    reverse_instance *self = instance;
    reverse_task *task = wharf_seq_new(self->host, stream, sizeof *task, serve);
    if (task == NULL) return WHARF_E_NOMEM;
    task->chunk_size = self->chunk_size;
    wharf_seq_run(&task->seq);
    return WHARF_OK;
}

static void reverse_shutdown(void *instance) { free(instance); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .name = "reverse",
    .version = "1.0.0",
    .description = "Echoes each chunk of up to 20 bytes, then it reversed; 'over' ends (Tornado tutorial)",
    .init = reverse_init,
    .handle_stream = reverse_handle_stream,
    .shutdown = reverse_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
