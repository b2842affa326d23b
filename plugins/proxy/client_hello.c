/* Reading the server name from a TLS ClientHello without terminating TLS (RFC 8446 4.1.2
 * and RFC 6066 3), for SNI routing as nginx's ssl_preread. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

typedef struct reader {
    const uint8_t *p;
    const uint8_t *end;
} reader;

static int take(reader *r, size_t n, const uint8_t **out) {
    if ((size_t)(r->end - r->p) < n) return -1;
    if (out) *out = r->p;
    r->p += n;
    return 0;
}

static int take_u8(reader *r, size_t *out) {
    const uint8_t *b;
    if (take(r, 1, &b) != 0) return -1;
    *out = b[0];
    return 0;
}

static int take_u16(reader *r, size_t *out) {
    const uint8_t *b;
    if (take(r, 2, &b) != 0) return -1;
    *out = (size_t)b[0] << 8 | b[1];
    return 0;
}

/* A sub-reader over the next `length-prefixed` block (prefix of 1 or 2 bytes). */
static int take_block(reader *r, int prefix_bytes, reader *block) {
    size_t len;
    if ((prefix_bytes == 1 ? take_u8(r, &len) : take_u16(r, &len)) != 0) return -1;
    const uint8_t *start;
    if (take(r, len, &start) != 0) return -1;
    block->p = start;
    block->end = start + len;
    return 0;
}

int client_hello_server_name(const uint8_t *message, size_t len, char *out, size_t capacity) {
    reader r = {message, message + len};
    const uint8_t *header;
    if (take(&r, 4, &header) != 0 || header[0] != 1) return -1; /* handshake type client_hello */
    size_t body_len = (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
    if (body_len != (size_t)(r.end - r.p)) return -1;
    reader skipped;
    if (take(&r, 2 + 32, NULL) != 0 || take_block(&r, 1, &skipped) != 0 || /* version, random, session id */
        take_block(&r, 2, &skipped) != 0 || take_block(&r, 1, &skipped) != 0) { /* ciphers, compression */
        return -1;
    }
    if (r.p == r.end) return 0; /* no extensions at all */
    reader extensions;
    if (take_block(&r, 2, &extensions) != 0) return -1;
    while (extensions.p < extensions.end) {
        size_t type;
        reader data;
        if (take_u16(&extensions, &type) != 0 || take_block(&extensions, 2, &data) != 0) return -1;
        if (type != 0) continue; /* server_name */
        reader names;
        if (take_block(&data, 2, &names) != 0) return -1;
        while (names.p < names.end) {
            size_t name_type;
            reader name;
            if (take_u8(&names, &name_type) != 0 || take_block(&names, 2, &name) != 0) return -1;
            if (name_type != 0) continue; /* host_name */
            size_t name_len = (size_t)(name.end - name.p);
            if (name_len == 0 || name_len >= capacity) return -1;
            for (size_t i = 0; i < name_len; i++) {
                if (name.p[i] == 0) return -1;
                out[i] = (char)tolower(name.p[i]);
            }
            out[name_len] = '\0';
            return 1;
        }
        return 0;
    }
    return 0;
}

sni_route *sni_route_match(sni_route *routes, size_t count, const char *name) {
    for (size_t i = 0; i < count; i++) {
        if (routes[i].pattern[0] != '*' && strcasecmp(routes[i].pattern, name) == 0) return &routes[i];
    }
    size_t name_len = strlen(name);
    for (size_t i = 0; i < count; i++) {
        if (routes[i].pattern[0] != '*') continue;
        const char *suffix = routes[i].pattern + 1; /* ".example" */
        size_t suffix_len = strlen(suffix);
        if (name_len > suffix_len && strcasecmp(name + name_len - suffix_len, suffix) == 0) return &routes[i];
    }
    return NULL;
}
