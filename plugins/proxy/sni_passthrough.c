/* SNI passthrough for the proxy plugin: collect the client's TLS ClientHello (it may span
 * several records), route by its server name, and keep the records to replay upstream. */
#include <stdlib.h>
#include <string.h>

#include "session.h"

static void read_record_header(session *s);

static void route_by_name(session *s, const char *name) {
    proxy *self = s->plugin;
    sni_route *route = name != NULL ? sni_route_match(self->config.routes, self->config.route_count, name) : NULL;
    if (route != NULL) {
        s->pool = &route->pool;
    } else if (self->config.default_pool.count > 0) {
        s->pool = &self->config.default_pool;
    } else {
        wharf_logf(self->host, self->instance, WHARF_LOG_INFO, "no route for server name \"%s\"; closing", name ? name : "");
        self->host->close(s->client);
        return;
    }
    connect_next(s);
}

static int append(uint8_t **buffer, size_t *len, const uint8_t *data, size_t n) {
    if (*len + n > MAX_CLIENT_HELLO) return -1;
    uint8_t *grown = realloc(*buffer, *len + n);
    if (grown == NULL) return -1;
    memcpy(grown + *len, data, n);
    *buffer = grown;
    *len += n;
    return 0;
}

static void on_record_body(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    session *s = userdata;
    if (status != WHARF_OK) return; /* closing; the close notification follows */
    if (append(&s->preread, &s->preread_len, data, len) != 0 || append(&s->hello, &s->hello_len, data, len) != 0) {
        s->plugin->host->close(stream);
        return;
    }
    if (s->hello_len < 4) {
        read_record_header(s);
        return;
    }
    size_t message_len = 4 + ((size_t)s->hello[1] << 16 | (size_t)s->hello[2] << 8 | s->hello[3]);
    if (s->hello_len < message_len) {
        read_record_header(s); /* the ClientHello continues in the next record */
        return;
    }
    char name[PROXY_NAME_MAX];
    int found = client_hello_server_name(s->hello, message_len, name, sizeof name);
    if (found < 0) {
        wharf_logf(s->plugin->host, s->plugin->instance, WHARF_LOG_INFO, "malformed TLS ClientHello; closing");
        s->plugin->host->close(stream);
        return;
    }
    route_by_name(s, found == 1 ? name : NULL);
}

static void on_record_header(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    session *s = userdata;
    if (status != WHARF_OK) return;
    size_t body = (size_t)data[3] << 8 | data[4];
    /* A handshake record (22) of TLS 1.0-1.3 framing, at most 2^14 bytes plus expansion. */
    if (data[0] != 22 || data[1] != 3 || body == 0 || body > 16384 + 2048) {
        if (s->preread_len == 0 && s->plugin->config.default_pool.count > 0) {
            /* Not TLS at all: no name to route by, so the default upstreams get it. */
            if (append(&s->preread, &s->preread_len, data, len) != 0) {
                s->plugin->host->close(stream);
                return;
            }
            route_by_name(s, NULL);
            return;
        }
        wharf_logf(s->plugin->host, s->plugin->instance, WHARF_LOG_INFO, "not a TLS handshake record; closing");
        s->plugin->host->close(stream);
        return;
    }
    if (append(&s->preread, &s->preread_len, data, len) != 0 ||
        s->plugin->host->read_bytes(stream, body, 0, on_record_body, s) != WHARF_OK) {
        s->plugin->host->close(stream);
    }
}

static void read_record_header(session *s) {
    if (s->plugin->host->read_bytes(s->client, 5, 0, on_record_header, s) != WHARF_OK) s->plugin->host->close(s->client);
}

void sni_route_client(session *s) { read_record_header(s); }
