/*
 * reverse — the Tornado TCPServer tutorial's server: read up to 20 bytes as they come
 * (read_bytes partial), write the chunk back, then the chunk reversed byte-wise. A chunk
 * that is exactly "over" is answered, then the connection is closed.
 * Config (declared in reverse_keys): chunk_size.
 *
 * Written as the sequence the tutorial's coroutine is, with include/wharf_seq.h, rather
 * than as a chain of callbacks.
 */
#include <stdlib.h>
#include <string.h>

#include "wharf.h"
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

static const wharf_config_key reverse_keys[] = {
    {.name = "chunk_size", .type = WHARF_CONFIG_INTEGER, .min = 1, .max = MAX_CHUNK, .default_value = "20",
     .description = "the most bytes answered at a time (read_bytes partial)"},
};
static const wharf_config_schema reverse_schema = {
    .struct_size = sizeof reverse_schema, .key_size = sizeof(wharf_config_key), .key_count = 1, .keys = reverse_keys};

static int32_t reverse_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out,
                            char *error, size_t error_len) {
    (void)error;
    (void)error_len;
    int64_t chunk_size = 0;
    int32_t status = host->config_integer(args->instance, "chunk_size", &chunk_size);
    if (status != WHARF_OK) return status;
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
    .min_host_abi_minor = 5, /* the host checks its config */
    .name = "reverse",
    .version = "1.0.0",
    .description = "Echoes each chunk of up to 20 bytes, then it reversed; 'over' ends (Tornado tutorial)",
    .init = reverse_init,
    .handle_stream = reverse_handle_stream,
    .shutdown = reverse_shutdown,
    .config_schema = &reverse_schema,
};

WHARF_PLUGIN_DEFINE(&descriptor)
