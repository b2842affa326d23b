/*
 * message_proxy — message-level proxying over a connection pool, as pulsar's Echo client
 * does and as twemproxy, mcrouter and PgBouncer do for real protocols. Clients send
 * separator-framed requests; each one goes to the upstream over a pooled connection, and
 * its reply, framed the same way, comes back to the client that asked. Requests from one
 * client are answered in order, one at a time. Many clients share at most pool_size
 * upstream connections.
 *
 * When the upstream cannot answer (refused, reset mid-request, no reply within
 * timeout_ms, no free connection in time), the client gets one framed error reply,
 * "-ERR upstream: <reason>", and may send its next request. The connection that failed is
 * closed, never reused.
 *
 * Config: declared in message_proxy_keys below and checked by the host (`wharf plugin info
 * message_proxy` prints it). pool_size is per worker process, shared out among its event
 * loops (each loop keeps its own pool, with at least one connection).
 */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "wharf.h"

typedef struct message_proxy {
    const wharf_host_api *host;
    wharf_pool *pool; /* NULL in validate mode */
    size_t max_bytes;
    uint32_t timeout_ms;
    size_t separator_len;
    char separator[65];
} message_proxy;

/* One client connection. It outlives its stream while a request is in flight: the
 * callbacks of the acquire and the upstream read still point at it. */
typedef struct client {
    message_proxy *proxy;
    wharf_stream *stream;
    wharf_stream *upstream; /* the pooled connection serving the request in flight */
    uint8_t *request;
    size_t request_len, request_capacity;
    int in_flight;
    int closed;
} client;

static void read_request(client *c);

static void client_free(client *c) {
    free(c->request);
    free(c);
}

/* The request in flight is over; the next one may be read (or, if the client has gone,
 * nothing is left to do). */
static void request_done(client *c) {
    c->in_flight = 0;
    if (c->closed) {
        client_free(c);
        return;
    }
    read_request(c);
}

static void reply_error(client *c, int32_t status) {
    message_proxy *proxy = c->proxy;
    char line[160];
    int n = snprintf(line, sizeof line, "-ERR upstream: %s", proxy->host->strerror(status));
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (!c->closed) {
        proxy->host->write(c->stream, (const uint8_t *)line, len, NULL, NULL);
        proxy->host->write(c->stream, (const uint8_t *)proxy->separator, proxy->separator_len, NULL, NULL);
    }
    request_done(c);
}

static void on_reply(void *userdata, wharf_stream *upstream, int32_t status, const uint8_t *reply, size_t len) {
    client *c = userdata;
    message_proxy *proxy = c->proxy;
    c->upstream = NULL;
    if (status != WHARF_OK) {
        proxy->host->pool_release(upstream); /* not clean: the pool closes it */
        reply_error(c, status);
        return;
    }
    if (!c->closed) proxy->host->write(c->stream, reply, len, NULL, NULL);
    proxy->host->pool_release(upstream);
    request_done(c);
}

static void on_acquired(void *userdata, int32_t status, wharf_stream *upstream) {
    client *c = userdata;
    message_proxy *proxy = c->proxy;
    if (status != WHARF_OK) {
        reply_error(c, status);
        return;
    }
    if (c->closed) { /* the client left while waiting: the connection goes back unused */
        proxy->host->pool_release(upstream);
        request_done(c);
        return;
    }
    c->upstream = upstream;
    proxy->host->set_read_timeout(upstream, proxy->timeout_ms);
    int32_t sent = proxy->host->write(upstream, c->request, c->request_len, NULL, NULL);
    if (sent == WHARF_OK) {
        sent = proxy->host->read_until(upstream, (const uint8_t *)proxy->separator, proxy->separator_len,
                                       proxy->max_bytes, on_reply, c);
    }
    if (sent != WHARF_OK) {
        c->upstream = NULL;
        proxy->host->pool_release(upstream);
        reply_error(c, sent);
    }
}

static void on_request(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *request, size_t len) {
    client *c = userdata;
    (void)stream;
    if (status != WHARF_OK) return; /* the client is closing; on_client_closed frees it */
    if (len > c->request_capacity) {
        uint8_t *grown = realloc(c->request, len);
        if (grown == NULL) {
            c->proxy->host->abort(c->stream);
            return;
        }
        c->request = grown;
        c->request_capacity = len;
    }
    memcpy(c->request, request, len);
    c->request_len = len;
    c->in_flight = 1;
    int32_t queued = c->proxy->host->pool_acquire(c->proxy->pool, on_acquired, c);
    if (queued != WHARF_OK) reply_error(c, queued);
}

static void read_request(client *c) {
    message_proxy *proxy = c->proxy;
    proxy->host->read_until(c->stream, (const uint8_t *)proxy->separator, proxy->separator_len, proxy->max_bytes,
                            on_request, c);
}

static void on_client_closed(void *userdata, wharf_stream *stream, int32_t reason) {
    client *c = userdata;
    (void)stream;
    (void)reason;
    c->closed = 1;
    if (!c->in_flight) client_free(c);
}

static int32_t message_proxy_handle_stream(void *instance, wharf_stream *stream) {
    message_proxy *proxy = instance;
    client *c = calloc(1, sizeof *c);
    if (c == NULL) return WHARF_E_NOMEM;
    c->proxy = proxy;
    c->stream = stream;
    proxy->host->set_close_callback(stream, on_client_closed, c);
    read_request(c);
    return WHARF_OK;
}

static const wharf_config_key message_proxy_keys[] = {
    {.name = "upstream", .type = WHARF_CONFIG_HOST_PORT, .flags = WHARF_CONFIG_REQUIRED,
     .description = "the service each request goes to"},
    {.name = "pool_size", .type = WHARF_CONFIG_INTEGER, .min = 1, .max = 10000, .default_value = "10",
     .description = "upstream connections per worker, shared out among its event loops"},
    {.name = "separator", .type = WHARF_CONFIG_BYTES, .min = 1, .max = 64, .default_value = "\"\\r\\n\\r\\n\"",
     .description = "the end of each request and reply"},
    {.name = "max_bytes", .type = WHARF_CONFIG_SIZE, .min = 1, .max = 1 << 30, .default_value = "1MiB",
     .description = "the largest request or reply, its separator included"},
    {.name = "timeout_ms", .type = WHARF_CONFIG_DURATION, .min = 1, .max = 3600000, .default_value = "10s",
     .description = "how long a request may wait for a connection, and then for its reply"},
};
static const wharf_config_schema message_proxy_schema = {.struct_size = sizeof message_proxy_schema,
                                                         .key_size = sizeof(wharf_config_key),
                                                         .key_count = 5,
                                                         .keys = message_proxy_keys};

static int32_t message_proxy_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out,
                                  char *error, size_t error_len) {
    const char *upstream = NULL, *separator = NULL;
    size_t separator_len = 0;
    uint32_t port = 0;
    int64_t pool_size = 0, max_bytes = 0, timeout_ms = 0;
    int32_t status = host->config_host_port(args->instance, "upstream", &upstream, &port);
    if (status == WHARF_OK) status = host->config_integer(args->instance, "pool_size", &pool_size);
    if (status == WHARF_OK) status = host->config_string(args->instance, "separator", &separator, &separator_len);
    if (status == WHARF_OK) status = host->config_integer(args->instance, "max_bytes", &max_bytes);
    if (status == WHARF_OK) status = host->config_integer(args->instance, "timeout_ms", &timeout_ms);
    if (status != WHARF_OK) return status;
    message_proxy *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    memcpy(self->separator, separator, separator_len);
    self->separator_len = separator_len;
    self->max_bytes = (size_t)max_bytes;
    self->timeout_ms = (uint32_t)timeout_ms;
    if (args->loop != NULL) {
        /* Each loop has its own pool: this loop's share of pool_size. */
        uint32_t share = (uint32_t)pool_size / args->loop_count + (args->loop_index < pool_size % args->loop_count);
        wharf_connect_options connect = {.struct_size = sizeof connect, .timeout_ms = (uint32_t)timeout_ms, .nodelay = 1};
        wharf_pool_options options = {
            .struct_size = sizeof options,
            .max_total = share > 0 ? share : 1,
            .acquire_timeout_ms = (uint32_t)timeout_ms,
            .connect = &connect,
        };
        int32_t created = host->pool_create(args->loop, upstream, strlen(upstream), port, &options, &self->pool);
        if (created != WHARF_OK) {
            snprintf(error, error_len, "cannot create the pool for %s:%u: %s", upstream, port, host->strerror(created));
            free(self);
            return created;
        }
    }
    *instance_out = self;
    return WHARF_OK;
}

static void message_proxy_shutdown(void *instance) { free(instance); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 5, /* pools, and the host checks its config */
    .name = "message_proxy",
    .version = "1.0.0",
    .description = "Forwards separator-framed requests over a pool of upstream connections",
    .init = message_proxy_init,
    .handle_stream = message_proxy_handle_stream,
    .shutdown = message_proxy_shutdown,
    .config_schema = &message_proxy_schema,
};

WHARF_PLUGIN_DEFINE(&descriptor)
