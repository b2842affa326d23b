/*
 * separator_echo — pulsar's echo example: messages end with a separator (default
 * "\r\n\r\n"); each is written back with its separator. A message whose body is exactly
 * QUIT is echoed, then the connection is closed.
 * Config: separator (string, 1-64 bytes), max_bytes (separator included, default 1 MiB).
 */
#include <stdlib.h>
#include <string.h>

#include "wharf.h"
#include "wharf_plugin_config.h"

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

static int32_t separator_echo_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out,
                                   char *error, size_t error_len) {
    static const char *const keys[] = {"separator", "max_bytes", NULL};
    const char *json = args->config_json;
    size_t json_len = args->config_json_len;
    separator_echo_instance *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    memcpy(self->separator, "\r\n\r\n", 5);
    self->separator_len = 4;
    long long max_bytes = 1 << 20;
    int found = wharf_config_check_keys(json, json_len, keys, error, error_len);
    if (found >= 0) {
        found = wharf_config_string(json, json_len, "separator", self->separator, sizeof self->separator,
                                    &self->separator_len, error, error_len);
    }
    if (found >= 0) found = wharf_config_int(json, json_len, "max_bytes", 1, 1LL << 40, &max_bytes, error, error_len);
    if (found >= 0 && self->separator_len == 0) {
        snprintf(error, error_len, "config key 'separator': must not be empty");
        found = WHARF_CONFIG_BAD;
    }
    if (found < 0) {
        free(self);
        return WHARF_E_INVALID;
    }
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
    .name = "separator_echo",
    .version = "1.0.0",
    .description = "Echoes separator-terminated messages; QUIT closes (pulsar echo example)",
    .init = separator_echo_init,
    .handle_stream = separator_echo_handle_stream,
    .shutdown = separator_echo_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
