/*
 * echo — the tornado.tcpserver docs' echo server: read a line ("\n"-terminated), write it
 * back, repeat. Config (declared in echo_keys, checked by the host): max_bytes.
 */
#include <stdlib.h>

#include "wharf.h"

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

/* The host checks the config against this before init (ABI 1.5). */
static const wharf_config_key echo_keys[] = {
    {.name = "max_bytes", .type = WHARF_CONFIG_SIZE, .min = 1, .max = 1LL << 40, .default_value = "65536",
     .description = "the longest line, its newline included; a longer one closes the connection"},
};
static const wharf_config_schema echo_schema = {
    .struct_size = sizeof echo_schema, .key_size = sizeof(wharf_config_key), .key_count = 1, .keys = echo_keys};

static int32_t echo_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out, char *error,
                         size_t error_len) {
    (void)error;
    (void)error_len;
    int64_t max_bytes = 0;
    int32_t status = host->config_integer(args->instance, "max_bytes", &max_bytes);
    if (status != WHARF_OK) return status;
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
    .min_host_abi_minor = 5, /* the host checks its config */
    .name = "echo",
    .version = "1.0.0",
    .description = "Line echo: writes every \\n-terminated line back (tornado.tcpserver docs)",
    .init = echo_init,
    .handle_stream = echo_handle_stream,
    .shutdown = echo_shutdown,
    .config_schema = &echo_schema,
};

WHARF_PLUGIN_DEFINE(&descriptor)
