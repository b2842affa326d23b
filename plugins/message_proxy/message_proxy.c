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
 * Config:
 *   upstream    "host:port" (required)
 *   pool_size   upstream connections per worker process, 1-10000 (default 10), shared out
 *               among its event loops (each loop keeps its own pool, with at least one)
 *   separator   the frame end, 1-64 bytes (default "\r\n\r\n")
 *   max_bytes   largest request or reply, separator included (default 1 MiB)
 *   timeout_ms  how long a request may wait for a connection, and then for its reply (default 10000)
 */
#include <stdlib.h>
#include <string.h>

#include "wharf.h"
#include "wharf_plugin_config.h"

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

static int32_t message_proxy_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out,
                                  char *error, size_t error_len) {
    static const char *const keys[] = {"upstream", "pool_size", "separator", "max_bytes", "timeout_ms", NULL};
    if (!WHARF_HOST_HAS(host, pool_destroy)) {
        snprintf(error, error_len, "needs a host with connection pools (ABI 1.5)");
        return WHARF_E_UNSUPPORTED;
    }
    const char *json = args->config_json;
    size_t json_len = args->config_json_len;
    message_proxy *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    memcpy(self->separator, "\r\n\r\n", 5);
    self->separator_len = 4;
    char upstream[256];
    uint32_t port = 0;
    long long pool_size = 10, max_bytes = 1 << 20, timeout_ms = 10000;
    int found = wharf_config_check_keys(json, json_len, keys, error, error_len);
    if (found >= 0) found = wharf_config_host_port(json, json_len, "upstream", upstream, sizeof upstream, &port, error,
                                                   error_len);
    if (found == WHARF_CONFIG_ABSENT) {
        snprintf(error, error_len, "config key 'upstream' is required: \"host:port\" of the service to forward to");
        found = WHARF_CONFIG_BAD;
    }
    if (found >= 0) found = wharf_config_int(json, json_len, "pool_size", 1, 10000, &pool_size, error, error_len);
    if (found >= 0) {
        found = wharf_config_string(json, json_len, "separator", self->separator, sizeof self->separator,
                                    &self->separator_len, error, error_len);
    }
    if (found >= 0 && self->separator_len == 0) {
        snprintf(error, error_len, "config key 'separator': must not be empty");
        found = WHARF_CONFIG_BAD;
    }
    if (found >= 0) found = wharf_config_int(json, json_len, "max_bytes", 1, 1LL << 30, &max_bytes, error, error_len);
    if (found >= 0) found = wharf_config_int(json, json_len, "timeout_ms", 1, 3600000, &timeout_ms, error, error_len);
    if (found < 0) {
        free(self);
        return WHARF_E_INVALID;
    }
    self->max_bytes = (size_t)max_bytes;
    self->timeout_ms = (uint32_t)timeout_ms;
    if (args->loop != NULL) {
        wharf_connect_options connect = {.struct_size = sizeof connect, .timeout_ms = (uint32_t)timeout_ms, .nodelay = 1};
        /* Each loop has its own pool: this loop's share of pool_size. */
        uint32_t share = (uint32_t)pool_size / args->loop_count + (args->loop_index < pool_size % args->loop_count);
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
    .min_host_abi_minor = 5,
    .name = "message_proxy",
    .version = "1.0.0",
    .description = "Forwards separator-framed requests over a pool of upstream connections",
    .init = message_proxy_init,
    .handle_stream = message_proxy_handle_stream,
    .shutdown = message_proxy_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
