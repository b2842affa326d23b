/* A plugin built at test time that uses time (ABI 1.3): timers, per-read deadlines, and a
 * log line with every stream's close reason. It serves lines:
 *
 *   after MS TEXT   replies "armed", then "TEXT" once MS milliseconds have passed
 *   cancel          cancels the last armed timer; its callback replies "cancelled"
 *   deadline MS     set_read_timeout(MS); replies "ok". A read that times out replies
 *                   "read timed out" and reads on (bytes already received are kept)
 *   anything else   echoed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

typedef struct clock_plugin {
    const wharf_host_api *host;
    const wharf_instance *instance;
} clock_plugin;

typedef struct connection {
    clock_plugin *plugin;
    wharf_stream *stream;
    wharf_timer *last_timer;
} connection;

typedef struct armed {
    connection *conn;
    char text[66]; /* up to 63 characters of TEXT, "\n", NUL */
} armed;

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len);

static void reply(connection *conn, const char *text) {
    conn->plugin->host->write(conn->stream, (const uint8_t *)text, strlen(text), NULL, NULL);
}

static void read_next(connection *conn) {
    conn->plugin->host->read_until(conn->stream, (const uint8_t *)"\n", 1, 4096, on_line, conn);
}

static void on_timer(void *userdata, wharf_timer *timer, int32_t status) {
    armed *fired = userdata;
    connection *conn = fired->conn;
    if (conn->last_timer == timer) conn->last_timer = NULL;
    if (status == WHARF_OK) {
        reply(conn, fired->text);
    } else if (status == WHARF_E_CANCELLED) {
        reply(conn, "cancelled\n");
    } /* WHARF_E_CLOSED: the stream is closing; nothing to write to */
    free(fired);
}

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    connection *conn = userdata;
    const wharf_host_api *host = conn->plugin->host;
    if (status == WHARF_E_TIMEOUT) {
        reply(conn, "read timed out\n");
        read_next(conn);
        return;
    }
    if (status != WHARF_OK) return;
    char line[128];
    size_t n = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, data, n);
    line[n] = 0;
    unsigned long ms = 0;
    char text[64];
    if (sscanf(line, "after %lu %62s", &ms, text) == 2) {
        armed *timer = calloc(1, sizeof *timer);
        if (timer == NULL) return (void)host->abort(stream);
        timer->conn = conn;
        snprintf(timer->text, sizeof timer->text, "%s\n", text);
        if (host->timer_start(stream, ms, on_timer, timer, &conn->last_timer) != WHARF_OK) free(timer);
        reply(conn, "armed\n");
    } else if (strcmp(line, "cancel\n") == 0) {
        if (conn->last_timer == NULL || host->timer_cancel(conn->last_timer) != WHARF_OK) reply(conn, "none\n");
    } else if (sscanf(line, "deadline %lu", &ms) == 1) {
        reply(conn, host->set_read_timeout(stream, (uint32_t)ms) == WHARF_OK ? "ok\n" : "refused\n");
    } else {
        host->write(stream, data, len, NULL, NULL);
    }
    read_next(conn);
}

static void on_close(void *userdata, wharf_stream *stream, int32_t reason) {
    connection *conn = userdata;
    wharf_stream_info info = {.struct_size = sizeof info};
    conn->plugin->host->get_info(stream, &info);
    wharf_logf(conn->plugin->host, conn->plugin->instance, WHARF_LOG_INFO, "stream %llu closed: %s (%d)",
               (unsigned long long)info.stream_id, conn->plugin->host->strerror(reason), (int)reason);
}

static int32_t clock_init(const wharf_host_api *host, const wharf_init_args *args, void **out, char *error,
                          size_t error_len) {
    if (!WHARF_HOST_HAS(host, set_read_timeout)) {
        snprintf(error, error_len, "needs a host with ABI 1.3");
        return WHARF_E_UNSUPPORTED;
    }
    clock_plugin *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    self->instance = args->instance;
    *out = self;
    return WHARF_OK;
}

static int32_t clock_handle_stream(void *instance, wharf_stream *stream) {
    clock_plugin *self = instance;
    connection *conn = calloc(1, sizeof *conn);
    if (conn == NULL) return WHARF_E_NOMEM;
    conn->plugin = self;
    conn->stream = stream;
    self->host->set_context(stream, conn, free);
    self->host->set_close_callback(stream, on_close, conn);
    read_next(conn);
    return WHARF_OK;
}

static void clock_shutdown(void *instance) { free(instance); }

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 3,
    .name = "clock",
    .version = "1.0.0",
    .description = "timers, read deadlines and close reasons, for tests",
    .init = clock_init,
    .handle_stream = clock_handle_stream,
    .shutdown = clock_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
