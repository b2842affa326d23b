/*
 * reverse — the Tornado TCPServer tutorial's server: read up to 20 bytes as they come
 * (read_bytes partial), write the chunk back, then the chunk reversed byte-wise. A chunk
 * that is exactly "over" is answered, then the connection is closed.
 * Config: chunk_size (default 20).
 */
#include <stdlib.h>
#include <string.h>

#include "wharf.h"
#include "wharf_plugin_config.h"

#define MAX_CHUNK 4096

typedef struct reverse_instance {
    const wharf_host_api *host;
    size_t chunk_size;
} reverse_instance;

static void on_chunk(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *chunk, size_t len) {
    reverse_instance *self = userdata;
    if (status != WHARF_OK) return;
    uint8_t reversed[MAX_CHUNK];
    for (size_t i = 0; i < len; i++) reversed[i] = chunk[len - 1 - i];
    if (self->host->write(stream, chunk, len, NULL, NULL) != WHARF_OK ||
        self->host->write(stream, reversed, len, NULL, NULL) != WHARF_OK) {
        return;
    }
    if (len == 4 && memcmp(chunk, "over", 4) == 0) {
        self->host->close(stream); /* graceful: both replies are flushed first */
        return;
    }
    self->host->read_bytes(stream, self->chunk_size, 1, on_chunk, self);
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
    return self->host->read_bytes(stream, self->chunk_size, 1, on_chunk, self);
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
