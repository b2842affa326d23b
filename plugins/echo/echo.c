/*
 * echo — the tornado.tcpserver docs' echo server: read a line ("\n"-terminated), write it
 * back, repeat. Config: max_bytes (delimiter included, default 65536); a longer line
 * closes the connection.
 */
#include <stdlib.h>

#include "wharf.h"
#include "wharf_plugin_config.h"

typedef struct echo_instance {
    const wharf_host_api *host;
    size_t max_bytes;
} echo_instance;

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *line, size_t len);

static void read_line(echo_instance *self, wharf_stream *stream) {
    /* On failure the stream is closing and the host notifies its close: nothing to undo. */
    self->host->read_until(stream, (const uint8_t *)"\n", 1, self->max_bytes, on_line, self);
}

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *line, size_t len) {
    echo_instance *self = userdata;
    if (status != WHARF_OK) return; /* closed, or over max_bytes: the host closes the stream */
    /* No write callback: the host copies the line, and throttles reading while output is
     * backed up, so the next read can start at once. */
    if (self->host->write(stream, line, len, NULL, NULL) != WHARF_OK) return;
    read_line(self, stream);
}

static int32_t echo_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out, char *error,
                         size_t error_len) {
    static const char *const keys[] = {"max_bytes", NULL};
    long long max_bytes = 65536;
    if (wharf_config_check_keys(args->config_json, args->config_json_len, keys, error, error_len) < 0 ||
        wharf_config_int(args->config_json, args->config_json_len, "max_bytes", 1, 1LL << 40, &max_bytes, error,
                         error_len) < 0) {
        return WHARF_E_INVALID;
    }
    echo_instance *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    self->max_bytes = (size_t)max_bytes;
    *instance_out = self;
    return WHARF_OK;
}

static int32_t echo_handle_stream(void *instance, wharf_stream *stream) {
    read_line(instance, stream);
    return WHARF_OK;
}

static void echo_shutdown(void *instance) { free(instance); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .name = "echo",
    .version = "1.0.0",
    .description = "Line echo: writes every \\n-terminated line back (tornado.tcpserver docs)",
    .init = echo_init,
    .handle_stream = echo_handle_stream,
    .shutdown = echo_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
