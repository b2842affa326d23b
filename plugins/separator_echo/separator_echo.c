/*
 * separator_echo — pulsar's echo example: messages end with a separator (default
 * "\r\n\r\n"); each is written back with its separator. A message whose body is exactly
 * QUIT is echoed, then the connection is closed.
 * Config (declared in separator_echo_keys): separator, max_bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

typedef struct separator_echo_instance {
    const wharf_host_api *host;
    size_t max_bytes;
    size_t separator_len;
    char separator[65];
} separator_echo_instance;

static void on_message(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *message, size_t len);

static void read_message(separator_echo_instance *self, wharf_stream *stream) {
    self->host->read_until(stream, (const uint8_t *)self->separator, self->separator_len, self->max_bytes,
                           on_message, self);
}

static void on_message(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *message, size_t len) {
    separator_echo_instance *self = userdata;
    if (status != WHARF_OK) return;
    if (self->host->write(stream, message, len, NULL, NULL) != WHARF_OK) return;
    size_t body_len = len - self->separator_len;
    if (body_len == 4 && memcmp(message, "QUIT", 4) == 0) {
        self->host->close(stream);
        return;
    }
    read_message(self, stream);
}

static const wharf_config_key separator_echo_keys[] = {
    {.name = "separator", .type = WHARF_CONFIG_BYTES, .min = 1, .max = 64, .default_value = "\"\\r\\n\\r\\n\"",
     .description = "the end of each message"},
    {.name = "max_bytes", .type = WHARF_CONFIG_SIZE, .min = 1, .max = 1LL << 40, .default_value = "1MiB",
     .description = "the longest message, its separator included; a longer one closes the connection"},
};
static const wharf_config_schema separator_echo_schema = {.struct_size = sizeof separator_echo_schema,
                                                          .key_size = sizeof(wharf_config_key),
                                                          .key_count = 2,
                                                          .keys = separator_echo_keys};

static int32_t separator_echo_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out,
                                   char *error, size_t error_len) {
    (void)error;
    (void)error_len;
    const char *separator = NULL;
    size_t separator_len = 0;
    int64_t max_bytes = 0;
    int32_t status = host->config_string(args->instance, "separator", &separator, &separator_len);
    if (status == WHARF_OK) status = host->config_integer(args->instance, "max_bytes", &max_bytes);
    if (status != WHARF_OK) return status;
    separator_echo_instance *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    memcpy(self->separator, separator, separator_len); /* 1-64 bytes: the schema says so */
    self->separator_len = separator_len;
    self->max_bytes = (size_t)max_bytes;
    *instance_out = self;
    return WHARF_OK;
}

static int32_t separator_echo_handle_stream(void *instance, wharf_stream *stream) {
    read_message(instance, stream);
    return WHARF_OK;
}

static void separator_echo_shutdown(void *instance) { free(instance); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 5, /* the host checks its config */
    .name = "separator_echo",
    .version = "1.0.0",
    .description = "Echoes separator-terminated messages; QUIT closes (pulsar echo example)",
    .init = separator_echo_init,
    .handle_stream = separator_echo_handle_stream,
    .shutdown = separator_echo_shutdown,
    .config_schema = &separator_echo_schema,
};

WHARF_PLUGIN_DEFINE(&descriptor)
