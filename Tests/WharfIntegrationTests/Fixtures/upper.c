/* A plugin built at test time with plain cc against include/wharf.h only: proof that the
 * header stands alone. It upper-cases each line, logs from init, and counts streams per
 * instance to show instance state needs no locks. */
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

typedef struct upper {
    const wharf_host_api *host;
    const wharf_instance *instance;
    unsigned long streams;
} upper;

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    upper *self = userdata;
    if (status != WHARF_OK) return;
    uint8_t *out = malloc(len ? len : 1);
    if (out == NULL) {
        self->host->abort(stream);
        return;
    }
    for (size_t i = 0; i < len; i++) out[i] = (data[i] >= 'a' && data[i] <= 'z') ? (uint8_t)(data[i] - 32) : data[i];
    int32_t written = self->host->write(stream, out, len, NULL, NULL);
    free(out); /* write copied the bytes */
    if (written == WHARF_OK) self->host->read_until(stream, (const uint8_t *)"\n", 1, 0, on_line, self);
}

static int32_t upper_init(const wharf_host_api *host, const wharf_init_args *args, void **out, char *error,
                          size_t error_len) {
    (void)error;
    (void)error_len;
    if (!WHARF_HOST_HAS(host, read_until)) return WHARF_E_UNSUPPORTED;
    upper *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    self->instance = args->instance;
    wharf_logf(host, args->instance, WHARF_LOG_INFO, "upper ready on loop %u of %u", args->loop_index,
               args->loop_count);
    *out = self;
    return WHARF_OK;
}

static int32_t upper_handle_stream(void *instance, wharf_stream *stream) {
    upper *self = instance;
    self->streams++;
    return self->host->read_until(stream, (const uint8_t *)"\n", 1, 0, on_line, self);
}

static void upper_shutdown(void *instance) { free(instance); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .name = "upper",
    .version = "0.3.1",
    .description = "Upper-cases lines (test fixture)",
    .init = upper_init,
    .handle_stream = upper_handle_stream,
    .shutdown = upper_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
