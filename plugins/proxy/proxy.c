/* proxy: a layer-4 proxy. For each client it picks an upstream (round robin, least
 * connections or random two), connects (trying the next upstream when a connect fails, and
 * skipping failed ones for fail_timeout_ms), writes a PROXY protocol header if configured,
 * then hands both streams to the host's relay. On hosts with connect_relay (ABI 1.6) the
 * connect and the relay are one call and no upstream stream exists: the host's fastest
 * path, with the same retries and balancing. With `sni_routes` it first reads the TLS
 * ClientHello, picks the upstream by its server name and replays those bytes (TLS
 * passthrough). Balancing and health state are per event loop, like nginx's per-worker
 * state without a shared zone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"



/* An outage must not flood the log with a line per client: a subject (an upstream, or the
 * whole pool) gets one line a second at most. Returns 1 to log now, with *skipped set to
 * the lines left out since the last one. */
static int log_now(uint64_t *logged_at_ms, uint32_t *unlogged, uint32_t *skipped) {
    uint64_t now = monotonic_ms();
    if (*logged_at_ms != 0 && now - *logged_at_ms < 1000) {
        (*unlogged)++;
        return 0;
    }
    *logged_at_ms = now;
    *skipped = *unlogged;
    *unlogged = 0;
    return 1;
}

static void log_upstream_failure(proxy *self, upstream *target, int32_t status, const char *suffix) {
    uint32_t skipped;
    if (!log_now(&target->logged_at_ms, &target->unlogged, &skipped)) return;
    if (skipped > 0) {
        wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "upstream %s: %s%s (%u more in the last second)",
                   target->label, self->host->strerror(status), suffix, skipped);
    } else {
        wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "upstream %s: %s%s", target->label,
                   self->host->strerror(status), suffix);
    }
}


static void session_free_if_done(session *s) {
    if (s->client == NULL && s->upstream == NULL && !s->connecting) {
        free(s->preread);
        free(s->hello);
        free(s);
    }
}

static void on_closed(void *userdata, wharf_stream *stream, int32_t reason) {
    (void)reason;
    session *s = userdata;
    if (stream == s->client) {
        s->client = NULL;
    } else {
        s->upstream = NULL;
        s->target->active--;
        upstream_metrics_add(&s->plugin->metrics, s->plugin->metrics.active, s->target, -1);
    }
    session_free_if_done(s);
}

static void on_relayed(void *userdata, const wharf_relay_result *result) {
    session *s = userdata;
    wharf_logf(s->plugin->host, s->plugin->instance, WHARF_LOG_DEBUG, "relay to %s ended: %s, %llu bytes up, %llu bytes down", s->target->label,
            s->plugin->host->strerror(result->reason), (unsigned long long)result->bytes_a_to_b,
            (unsigned long long)result->bytes_b_to_a);
}


/* Relaying cannot start: drop both connections at once. */
static void abort_pair(session *s) {
    s->plugin->host->abort(s->upstream);
    s->plugin->host->abort(s->client);
}

/* What the upstream must get first: the PROXY header, then (SNI mode) the ClientHello
 * records already read from the client. *out is malloc'd, or NULL when there is nothing. */
static int32_t build_preface(session *s, uint8_t **out, size_t *out_len) {
    proxy *self = s->plugin;
    uint8_t header[232];
    size_t header_len = 0;
    *out = NULL;
    *out_len = 0;
    if (self->config.proxy_protocol != PROXY_PROTOCOL_OFF) {
        wharf_stream_info info = {.struct_size = sizeof info};
        if (self->host->get_info(s->client, &info) == WHARF_OK) {
            header_len = proxy_protocol_header(self->config.proxy_protocol, &info, header, sizeof header);
        }
        if (header_len == 0) return WHARF_E_IO;
    }
    if (header_len + s->preread_len == 0) return WHARF_OK;
    *out = malloc(header_len + s->preread_len);
    if (*out == NULL) return WHARF_E_NOMEM;
    memcpy(*out, header, header_len);
    if (s->preread_len > 0) memcpy(*out + header_len, s->preread, s->preread_len);
    *out_len = header_len + s->preread_len;
    return WHARF_OK;
}

static void start_relay(session *s) {
    proxy *self = s->plugin;
    const wharf_host_api *host = self->host;
    uint8_t *preface;
    size_t preface_len;
    int32_t status = build_preface(s, &preface, &preface_len);
    if (status == WHARF_OK && preface_len > 0) status = host->write(s->upstream, preface, preface_len, NULL, NULL);
    free(preface);
    if (status != WHARF_OK) {
        abort_pair(s);
        return;
    }
    free(s->preread);
    s->preread = NULL;
    s->preread_len = 0;
    wharf_relay_options options = {.struct_size = sizeof options, .idle_timeout_ms = self->config.idle_timeout_ms};
    status = host->relay(s->client, s->upstream, &options, on_relayed, s);
    if (status != WHARF_OK) {
        wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "relay to %s refused: %s", s->target->label, host->strerror(status));
        abort_pair(s);
    }
}

/* The connect to s->target failed: skip it for a while, then try the next upstream. */
static void connect_failed(session *s, int32_t status) {
    proxy *self = s->plugin;
    s->target->failed_until_ms = monotonic_ms() + self->config.fail_timeout_ms;
    upstream_metrics_add(&self->metrics, self->metrics.failures, s->target, 1);
    int retrying = s->client != NULL && s->attempts <= self->config.retries && balancer_has_untried(s->pool, s->tried);
    log_upstream_failure(self, s->target, status, retrying ? "; trying the next one" : "");
    if (s->client == NULL) {
        session_free_if_done(s);
        return;
    }
    connect_next(s);
}

static void on_connected(void *userdata, int32_t status, wharf_stream *upstream_stream) {
    session *s = userdata;
    proxy *self = s->plugin;
    const wharf_host_api *host = self->host;
    s->connecting = 0;
    if (status != WHARF_OK) {
        connect_failed(s, status);
        return;
    }
    s->upstream = upstream_stream;
    s->target->active++;
    upstream_metrics_add(&self->metrics, self->metrics.active, s->target, 1);
    host->set_close_callback(upstream_stream, on_closed, s);
    if (s->client == NULL) { /* the client left while we connected */
        host->close(upstream_stream);
        return;
    }
    start_relay(s);
}

/* ---- connect_relay (ABI 1.6): no upstream stream -------------------------------------- */

static void on_direct_relay_done(void *userdata, const wharf_relay_result *result) {
    session *s = userdata;
    s->target->active--;
    upstream_metrics_add(&s->plugin->metrics, s->plugin->metrics.active, s->target, -1);
    on_relayed(userdata, result);
}

static void on_relay_connected(void *userdata, int32_t status) {
    session *s = userdata;
    s->connecting = 0;
    if (status == WHARF_OK) {
        s->target->active++;
        upstream_metrics_add(&s->plugin->metrics, s->plugin->metrics.active, s->target, 1);
        return;
    }
    /* The client left (its close callback frees s, or already has run): no one to retry for. */
    if (s->client == NULL || status == WHARF_E_CLOSED || status == WHARF_E_SHUTDOWN) {
        session_free_if_done(s);
        return;
    }
    connect_failed(s, status);
}

static int32_t connect_relay(session *s, upstream *target, const wharf_connect_options *options) {
    proxy *self = s->plugin;
    uint8_t *preface;
    size_t preface_len;
    int32_t status = build_preface(s, &preface, &preface_len);
    if (status != WHARF_OK) return status;
    wharf_relay_options relay = {.struct_size = sizeof relay, .idle_timeout_ms = self->config.idle_timeout_ms};
    wharf_connect_relay_options both = {.struct_size = sizeof both, .connect = options, .relay = &relay,
                                        .preface = preface, .preface_len = preface_len};
    status = self->host->connect_relay(s->client, target->host, strlen(target->host), target->port, &both,
                                       on_relay_connected, on_direct_relay_done, s);
    free(preface); /* the host copied it */
    return status;
}

void connect_next(session *s) {
    proxy *self = s->plugin;
    const wharf_host_api *host = self->host;
    for (;;) {
        upstream *target = NULL;
        if (s->attempts <= self->config.retries) {
            target = balancer_pick(s->pool, self->config.balance, s->tried, monotonic_ms(), &self->random_state);
        }
        if (target == NULL) {
            uint32_t skipped;
            if (log_now(&self->unreachable_logged_at_ms, &self->unreachable_unlogged, &skipped)) {
                char more[64] = "";
                if (skipped > 0) snprintf(more, sizeof more, " (%u more in the last second)", skipped);
                wharf_logf(self->host, self->instance, WHARF_LOG_ERROR,
                           "no upstream reachable after %u attempt%s; closing the client%s", s->attempts,
                           s->attempts == 1 ? "" : "s", more);
            }
            host->close(s->client);
            return;
        }
        s->attempts++;
        s->tried |= 1ULL << (size_t)(target - s->pool->members);
        s->target = target;
        wharf_connect_options options = {
            .struct_size = sizeof options,
            .timeout_ms = self->config.connect_timeout_ms,
            .nodelay = 1,
            .tls = self->config.tls_enabled ? &self->config.tls : NULL,
        };
        s->connecting = 1;
        upstream_metrics_add(&self->metrics, self->metrics.connects, target, 1);
        int32_t status = WHARF_HOST_HAS(host, connect_relay)
                             ? connect_relay(s, target, &options)
                             : host->connect(s->client, target->host, strlen(target->host), target->port, &options,
                                             on_connected, s);
        if (status == WHARF_OK) return;
        s->connecting = 0;
        if (status == WHARF_E_CLOSED) return; /* the client is gone; its close frees s */
        upstream_metrics_add(&self->metrics, self->metrics.failures, target, 1);
        log_upstream_failure(self, target, status, "");
    }
}

/* ---- The plugin ------------------------------------------------------------------------ */

static int32_t proxy_init(const wharf_host_api *host, const wharf_init_args *args, void **out, char *error,
                          size_t error_len) {
    if (!WHARF_HOST_HAS(host, relay)) {
        snprintf(error, error_len, "this host has no connect/relay (needs ABI 1.1, host has %u.%u)", host->abi_major,
                 host->abi_minor);
        return WHARF_E_UNSUPPORTED;
    }
    proxy *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    int32_t status = proxy_config_parse(args->config_json, args->config_json_len, &self->config, error, error_len);
    if (status != WHARF_OK) {
        free(self);
        return status;
    }
    if (self->config.tls_enabled && host->abi_minor < 2) {
        snprintf(error, error_len, "config key 'tls': upstream TLS needs ABI 1.2, host has %u.%u", host->abi_major,
                 host->abi_minor);
        proxy_config_free(&self->config);
        free(self);
        return WHARF_E_UNSUPPORTED;
    }
    self->host = host;
    self->instance = args->instance;
    status = upstream_metrics_register(&self->metrics, host, args->instance, &self->config);
    if (status != WHARF_OK) {
        snprintf(error, error_len, "cannot register the proxy's metrics: %s", host->strerror(status));
        proxy_config_free(&self->config);
        free(self);
        return status;
    }
    self->random_state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)args->loop_index + 1) * 0xBF58476D1CE4E5B9ULL ^ monotonic_ms();
    *out = self;
    return WHARF_OK;
}

static int32_t proxy_handle_stream(void *instance, wharf_stream *client) {
    proxy *self = instance;
    session *s = calloc(1, sizeof *s);
    if (s == NULL) return WHARF_E_NOMEM;
    s->plugin = self;
    s->client = client;
    s->pool = &self->config.default_pool;
    self->host->set_close_callback(client, on_closed, s);
    if (self->config.routes != NULL) {
        sni_route_client(s);
    } else {
        connect_next(s);
    }
    return WHARF_OK;
}

static void proxy_shutdown(void *instance) {
    proxy *self = instance;
    proxy_config_free(&self->config);
    free(self);
}

/* The host checks these before init (ABI 1.5), with the config's own messages; the nested
 * values (upstreams, sni_routes, tls, proxy_protocol's `false`) are checked by
 * proxy_config_parse, which also serves hosts older than 1.5 that ignore the schema. */
static const wharf_config_key proxy_keys[] = {
    {.name = "upstreams", .type = WHARF_CONFIG_JSON,
     .description = "\"host:port\" or a list of them (at most 64); required unless sni_routes"},
    {.name = "balance", .type = WHARF_CONFIG_STRING, .default_value = "round_robin",
     .description = "round_robin, least_connections or random_two"},
    {.name = "connect_timeout_ms", .type = WHARF_CONFIG_DURATION, .min = 1, .max = 86400000, .default_value = "2000",
     .description = "one deadline for resolving, connecting and the TLS handshake"},
    {.name = "retries", .type = WHARF_CONFIG_INTEGER, .min = 0, .max = PROXY_MAX_UPSTREAMS, .default_value = "2",
     .description = "more upstreams to try after a failed connect"},
    {.name = "fail_timeout_ms", .type = WHARF_CONFIG_DURATION, .min = 0, .max = 86400000, .default_value = "10000",
     .description = "how long an upstream whose connect failed is skipped"},
    {.name = "idle_timeout_ms", .type = WHARF_CONFIG_DURATION, .min = 0, .max = 86400000, .default_value = "300000",
     .description = "end a relay after this long with no byte either way (0: never)"},
    {.name = "proxy_protocol", .type = WHARF_CONFIG_JSON, .default_value = "\"off\"",
     .description = "off, v1 or v2: announce the client to the upstream"},
    {.name = "tls", .type = WHARF_CONFIG_JSON,
     .description = "upstream TLS: {verify, ca, server_name, alpn, certificate, key}"},
    {.name = "sni_routes", .type = WHARF_CONFIG_JSON,
     .description = "{server name or *.suffix: upstreams}, routed by the ClientHello"},
};
static const wharf_config_schema proxy_schema = {.struct_size = sizeof proxy_schema,
                                                 .key_size = sizeof(wharf_config_key),
                                                 .key_count = sizeof proxy_keys / sizeof proxy_keys[0],
                                                 .keys = proxy_keys};

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 1,
    .name = "proxy",
    .version = "1.0.0",
    .description = "Layer-4 proxy: balancing, retries, passive health, PROXY protocol, SNI routing, upstream TLS",
    .init = proxy_init,
    .handle_stream = proxy_handle_stream,
    .shutdown = proxy_shutdown,
    .config_schema = &proxy_schema,
    /* Most connections go straight to connect_relay; SNI routing reads the ClientHello
     * first, which only costs the channel this saves. */
    .flags = WHARF_PLUGIN_RELAYS_AT_ONCE,
};

WHARF_PLUGIN_DEFINE(&descriptor)
