/*
 * ticker — loop-level work (ABI 1.5) outside any client connection. Loop 0's instance:
 *   - from init, starts a thread that loop_posts "start" onto the loop;
 *   - "start" loop_connects to config `port` and loop_timer_starts a timer every
 *     `interval_ms`; each tick writes "tick N\n" on that connection;
 *   - each line the peer sends back is logged as "ticker heard: ...";
 *   - how its timer and its connection end is logged ("ticker timer ended: ...",
 *     "ticker stream closed: ..."), and shutdown logs the order it saw.
 * Accepted connections get "hello\n" and are closed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

typedef struct ticker {
    const wharf_host_api *host;
    const wharf_instance *instance;
    wharf_loop *loop;
    uint32_t port;
    uint32_t interval_ms;
    wharf_stream *upstream;
    int ticks;
    int timer_ended;
    int stream_closed;
    pthread_t thread;
    int thread_started;
} ticker;

static long config_number(const char *json, const char *key, long fallback) {
    const char *at = strstr(json, key);
    if (at == NULL) return fallback;
    at = strchr(at, ':');
    return at == NULL ? fallback : strtol(at + 1, NULL, 10);
}

static void on_tick(void *userdata, wharf_timer *timer, int32_t status);

static void schedule(ticker *self) {
    int32_t started = self->host->loop_timer_start(self->loop, self->interval_ms, on_tick, self, NULL);
    if (started != WHARF_OK) wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "ticker timer_start: %s", self->host->strerror(started));
}

static void on_tick(void *userdata, wharf_timer *timer, int32_t status) {
    ticker *self = userdata;
    (void)timer;
    if (status != WHARF_OK) {
        self->timer_ended = 1;
        wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "ticker timer ended: %s", self->host->strerror(status));
        return;
    }
    if (self->upstream != NULL) {
        char line[32];
        int n = snprintf(line, sizeof line, "tick %d\n", ++self->ticks);
        self->host->write(self->upstream, (const uint8_t *)line, (size_t)n, NULL, NULL);
    }
    schedule(self);
}

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    ticker *self = userdata;
    if (status != WHARF_OK) return;
    wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "ticker heard: %.*s", (int)(len - 1), (const char *)data);
    self->host->read_until(stream, (const uint8_t *)"\n", 1, 1024, on_line, self);
}

static void on_upstream_closed(void *userdata, wharf_stream *stream, int32_t reason) {
    ticker *self = userdata;
    (void)stream;
    self->upstream = NULL;
    self->stream_closed = 1;
    wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "ticker stream closed: %s", self->host->strerror(reason));
}

static void on_connected(void *userdata, int32_t status, wharf_stream *upstream) {
    ticker *self = userdata;
    if (status != WHARF_OK) {
        wharf_logf(self->host, self->instance, WHARF_LOG_WARNING, "ticker connect failed: %s", self->host->strerror(status));
        return;
    }
    self->upstream = upstream;
    self->host->set_close_callback(upstream, on_upstream_closed, self);
    self->host->write(upstream, (const uint8_t *)"connected\n", 10, NULL, NULL);
    self->host->read_until(upstream, (const uint8_t *)"\n", 1, 1024, on_line, self);
}

static void on_start(void *userdata, int32_t status) {
    ticker *self = userdata;
    if (status != WHARF_OK) return;
    self->host->loop_connect(self->loop, "127.0.0.1", 9, self->port, NULL, on_connected, self);
    schedule(self);
}

static void *post_from_thread(void *userdata) {
    ticker *self = userdata;
    self->host->loop_post(self->loop, on_start, self);
    return NULL;
}

static int32_t ticker_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out, char *error,
                           size_t error_len) {
    (void)error;
    (void)error_len;
    ticker *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    self->instance = args->instance;
    self->loop = args->loop;
    self->port = (uint32_t)config_number(args->config_json, "\"port\"", 0);
    self->interval_ms = (uint32_t)config_number(args->config_json, "\"interval_ms\"", 50);
    if (args->loop != NULL && args->loop_index == 0) {
        self->thread_started = pthread_create(&self->thread, NULL, post_from_thread, self) == 0;
    }
    *instance_out = self;
    return WHARF_OK;
}

static int32_t ticker_handle_stream(void *instance, wharf_stream *stream) {
    ticker *self = instance;
    self->host->write(stream, (const uint8_t *)"hello\n", 6, NULL, NULL);
    self->host->close(stream);
    return WHARF_OK;
}

static void ticker_shutdown(void *instance) {
    ticker *self = instance;
    if (self->thread_started) {
        pthread_join(self->thread, NULL);
        wharf_logf(self->host, self->instance, WHARF_LOG_WARNING,
                   "ticker shutdown after timer_ended=%d stream_closed=%d ticks>0=%d", self->timer_ended,
                   self->stream_closed, self->ticks > 0);
    }
    free(self);
}

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 5,
    .name = "ticker",
    .version = "1.0.0",
    .description = "Loop-level timers, connects and posts (test fixture)",
    .init = ticker_init,
    .handle_stream = ticker_handle_stream,
    .shutdown = ticker_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
