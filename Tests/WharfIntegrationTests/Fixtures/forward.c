/* A minimal forwarder built on connect (ABI 1.1): every accepted stream opens an upstream
 * stream on the same loop. Bytes are pumped both ways with the ordinary read/write API,
 * or, built with -DVARIANT_RELAY, handed to the host's relay. A failed connect is reported
 * to the client as "ERR <reason>\n". Config: {"host": "...", "port": N, "timeout_ms": N,
 * "greeting_kib": N} (the relay's idle timeout is timeout_ms too). With greeting_kib, the
 * relay variant first reads one line from the client and writes greeting_kib KiB of 'g', a
 * newline and that line upstream: bytes the plugin wrote (unsent, if large) and bytes the
 * host buffered behind the line must reach the upstream in order. Test fixture, not a
 * production proxy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

typedef struct forward {
    const wharf_host_api *host;
    char upstream_host[256];
    unsigned port;
    unsigned timeout_ms;
    unsigned greeting_kib;
} forward;

typedef struct pair {
    forward *plugin;
    wharf_stream *client;
    wharf_stream *upstream;
    int connecting; /* the connect callback is still to come: p must outlive it */
} pair;

static void pump(pair *p, wharf_stream *from);

static void on_data(void *userdata, wharf_stream *from, int32_t status, const uint8_t *data, size_t len) {
    pair *p = userdata;
    const wharf_host_api *host = p->plugin->host;
    wharf_stream *to = from == p->client ? p->upstream : p->client;
    if (status != WHARF_OK) { /* one side ended: end the other */
        host->close(to);
        return;
    }
    if (host->write(to, data, len, NULL, NULL) != WHARF_OK) {
        host->close(from);
        return;
    }
    pump(p, from);
}

static void pump(pair *p, wharf_stream *from) { p->plugin->host->read_bytes(from, 65536, 1, on_data, p); }

static void on_closed(void *userdata, wharf_stream *stream, int32_t reason) {
    (void)reason;
    pair *p = userdata;
    if (stream == p->client) p->client = NULL; else p->upstream = NULL;
    if (p->client == NULL && p->upstream == NULL && !p->connecting) free(p);
}

#ifdef VARIANT_RELAY
static void start_relay(pair *p);

static void on_first_line(void *userdata, wharf_stream *client, int32_t status, const uint8_t *data, size_t len) {
    pair *p = userdata;
    const wharf_host_api *host = p->plugin->host;
    if (status != WHARF_OK) {
        host->close(p->upstream);
        return;
    }
    size_t size = (size_t)p->plugin->greeting_kib * 1024;
    uint8_t *greeting = malloc(size + 1 + len);
    if (greeting == NULL) {
        host->abort(client);
        return;
    }
    memset(greeting, 'g', size);
    greeting[size] = '\n';
    memcpy(greeting + size + 1, data, len);
    int32_t written = host->write(p->upstream, greeting, size + 1 + len, NULL, NULL); /* copied by the host */
    free(greeting);
    if (written != WHARF_OK) {
        host->abort(client);
        return;
    }
    start_relay(p);
}

static void on_relayed(void *userdata, const wharf_relay_result *result) {
    pair *p = userdata;
    char line[160];
    int n = snprintf(line, sizeof line, "relay done: %s, %llu bytes up, %llu bytes down",
                     p->plugin->host->strerror(result->reason), (unsigned long long)result->bytes_a_to_b,
                     (unsigned long long)result->bytes_b_to_a);
    p->plugin->host->log(NULL, WHARF_LOG_INFO, line, (size_t)n);
}
#endif

static void on_connected(void *userdata, int32_t status, wharf_stream *upstream) {
    pair *p = userdata;
    const wharf_host_api *host = p->plugin->host;
    p->connecting = 0;
    if (status != WHARF_OK) {
        if (p->client == NULL) { /* the client left while we were connecting */
            free(p);
            return;
        }
        char line[128];
        int n = snprintf(line, sizeof line, "ERR %s\n", host->strerror(status));
        host->write(p->client, (const uint8_t *)line, (size_t)n, NULL, NULL);
        host->close(p->client); /* its close notification frees p */
        return;
    }
    p->upstream = upstream;
    host->set_close_callback(upstream, on_closed, p);
    wharf_stream_info info = {.struct_size = sizeof info};
    if (host->get_info(upstream, &info) != WHARF_OK || info.is_client != 1) host->abort(upstream);
    if (p->client == NULL) {
        host->close(upstream);
        return;
    }
#ifdef VARIANT_RELAY
    if (p->plugin->greeting_kib > 0) {
        if (host->read_until(p->client, (const uint8_t *)"\n", 1, 4096, on_first_line, p) != WHARF_OK) host->abort(upstream);
        return;
    }
    start_relay(p);
#else
    pump(p, p->client);
    pump(p, upstream);
#endif
}

#ifdef VARIANT_RELAY
static void start_relay(pair *p) {
    wharf_relay_options relay = {.struct_size = sizeof relay, .idle_timeout_ms = p->plugin->timeout_ms};
    if (p->plugin->host->relay(p->client, p->upstream, &relay, on_relayed, p) != WHARF_OK) {
        p->plugin->host->abort(p->upstream);
    }
}
#endif

static int32_t forward_init(const wharf_host_api *host, const wharf_init_args *args, void **out, char *error,
                            size_t error_len) {
    if (!WHARF_HOST_HAS(host, connect)) {
        snprintf(error, error_len, "this host has no connect (needs ABI 1.1)");
        return WHARF_E_UNSUPPORTED;
    }
    forward *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    self->timeout_ms = 2000;
    if (sscanf(args->config_json, "{\"host\":\"%255[^\"]\",\"port\":%u,\"timeout_ms\":%u,\"greeting_kib\":%u}",
               self->upstream_host, &self->port, &self->timeout_ms, &self->greeting_kib) < 2) {
        snprintf(error, error_len, "expected config {host, port, timeout_ms}");
        free(self);
        return WHARF_E_INVALID;
    }
    *out = self;
    return WHARF_OK;
}

static int32_t forward_handle_stream(void *instance, wharf_stream *client) {
    forward *self = instance;
    pair *p = calloc(1, sizeof *p);
    if (p == NULL) return WHARF_E_NOMEM;
    p->plugin = self;
    p->client = client;
    self->host->set_close_callback(client, on_closed, p);
    wharf_connect_options options = {.struct_size = sizeof options, .timeout_ms = self->timeout_ms, .nodelay = 1};
    p->connecting = 1;
    int32_t status = self->host->connect(client, self->upstream_host, strlen(self->upstream_host), self->port,
                                         &options, on_connected, p);
    if (status != WHARF_OK) p->connecting = 0; /* no callback will come; the close frees p */
    return status;
}

static void forward_shutdown(void *instance) { free(instance); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 1,
    .name = "forward",
    .version = "1.0.0",
    .description = "Connects upstream and pumps bytes both ways (test fixture)",
    .init = forward_init,
    .handle_stream = forward_handle_stream,
    .shutdown = forward_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
