/*
 * wharf_plugin_config.h — reading a plugin's JSON config (wharf_init_args.config_json).
 *
 * A convenience for the example plugins, not part of the ABI: header-only, C11, no
 * allocation. It reads a JSON object (what Wharf passes to init): integers, booleans,
 * strings (with JSON escapes decoded to UTF-8), arrays and nested objects (walk them with
 * wharf_json_each_element / wharf_json_each_member), and it rejects unknown keys so a typo
 * in the config fails loudly instead of being ignored.
 *
 * Every function returns WHARF_CONFIG_FOUND (1), WHARF_CONFIG_ABSENT (0) or
 * WHARF_CONFIG_BAD (-1, with a message in the caller's buffer).
 */
#ifndef WHARF_PLUGIN_CONFIG_H
#define WHARF_PLUGIN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define WHARF_CONFIG_FOUND 1
#define WHARF_CONFIG_ABSENT 0
#define WHARF_CONFIG_BAD (-1)

typedef struct wharf_json_cursor {
    const char *p;
    const char *end;
} wharf_json_cursor;

static inline void wharf_json_skip_space(wharf_json_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* Skips one JSON value; 0 on success, -1 on malformed input. Depth-bounded. */
static inline int wharf_json_skip_value(wharf_json_cursor *c, int depth) {
    wharf_json_skip_space(c);
    if (c->p >= c->end || depth > 64) return -1;
    char first = *c->p;
    if (first == '"') {
        for (c->p++; c->p < c->end; c->p++) {
            if (*c->p == '\\') { c->p++; continue; }
            if (*c->p == '"') { c->p++; return 0; }
        }
        return -1;
    }
    if (first == '{' || first == '[') {
        char close = first == '{' ? '}' : ']';
        c->p++;
        wharf_json_skip_space(c);
        if (c->p < c->end && *c->p == close) { c->p++; return 0; }
        for (;;) {
            if (first == '{') {
                if (wharf_json_skip_value(c, depth + 1) != 0) return -1; /* key */
                wharf_json_skip_space(c);
                if (c->p >= c->end || *c->p != ':') return -1;
                c->p++;
            }
            if (wharf_json_skip_value(c, depth + 1) != 0) return -1;
            wharf_json_skip_space(c);
            if (c->p >= c->end) return -1;
            if (*c->p == ',') { c->p++; continue; }
            if (*c->p == close) { c->p++; return 0; }
            return -1;
        }
    }
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' &&
           *c->p != '\n' && *c->p != '\r' && *c->p != '\t') c->p++;
    return 0;
}

/* Calls visit(key, key_len, value, value_len, ctx) for each top-level member; stops and
 * returns the visitor's nonzero result, or -1 if the text is not a JSON object. */
static inline int wharf_json_each_member(const char *json, size_t len,
                                         int (*visit)(const char *, size_t, const char *, size_t, void *),
                                         void *ctx) {
    wharf_json_cursor c = {json, json + len};
    wharf_json_skip_space(&c);
    if (c.p >= c.end || *c.p != '{') return -1;
    c.p++;
    wharf_json_skip_space(&c);
    if (c.p < c.end && *c.p == '}') return 0;
    for (;;) {
        wharf_json_skip_space(&c);
        if (c.p >= c.end || *c.p != '"') return -1;
        const char *key = c.p + 1;
        if (wharf_json_skip_value(&c, 1) != 0) return -1;
        size_t key_len = (size_t)(c.p - key - 1);
        wharf_json_skip_space(&c);
        if (c.p >= c.end || *c.p != ':') return -1;
        c.p++;
        wharf_json_skip_space(&c);
        const char *value = c.p;
        if (wharf_json_skip_value(&c, 1) != 0) return -1;
        int result = visit(key, key_len, value, (size_t)(c.p - value), ctx);
        if (result != 0) return result;
        wharf_json_skip_space(&c);
        if (c.p < c.end && *c.p == ',') { c.p++; continue; }
        if (c.p < c.end && *c.p == '}') return 0;
        return -1;
    }
}

typedef struct wharf_json_lookup {
    const char *key;
    const char *value;
    size_t value_len;
} wharf_json_lookup;

static inline int wharf_json_lookup_visit(const char *key, size_t key_len, const char *value, size_t value_len,
                                          void *ctx) {
    wharf_json_lookup *lookup = (wharf_json_lookup *)ctx;
    if (strlen(lookup->key) == key_len && memcmp(lookup->key, key, key_len) == 0) {
        lookup->value = value;
        lookup->value_len = value_len;
        return 1;
    }
    return 0;
}

static inline const char *wharf_json_find(const char *json, size_t len, const char *key, size_t *value_len) {
    wharf_json_lookup lookup = {key, NULL, 0};
    if (wharf_json_each_member(json, len, wharf_json_lookup_visit, &lookup) < 0) return NULL;
    *value_len = lookup.value_len;
    return lookup.value;
}

typedef struct wharf_json_key_check {
    const char *const *allowed;
    char *error;
    size_t error_len;
} wharf_json_key_check;

static inline int wharf_json_key_check_visit(const char *key, size_t key_len, const char *value, size_t value_len,
                                             void *ctx) {
    (void)value;
    (void)value_len;
    wharf_json_key_check *check = (wharf_json_key_check *)ctx;
    for (const char *const *name = check->allowed; *name != NULL; name++) {
        if (strlen(*name) == key_len && memcmp(*name, key, key_len) == 0) return 0;
    }
    snprintf(check->error, check->error_len, "unknown config key '%.*s'", (int)key_len, key);
    return 2;
}

/* Fails with a message naming the first key not in the NULL-terminated `allowed` list. */
static inline int wharf_config_check_keys(const char *json, size_t len, const char *const *allowed, char *error,
                                          size_t error_len) {
    wharf_json_key_check check = {allowed, error, error_len};
    int result = wharf_json_each_member(json, len, wharf_json_key_check_visit, &check);
    if (result == -1) snprintf(error, error_len, "config is not a JSON object");
    return result == 0 ? WHARF_CONFIG_FOUND : WHARF_CONFIG_BAD;
}

/* An integer in [min, max]. */
static inline int wharf_config_int(const char *json, size_t len, const char *key, long long min, long long max,
                                   long long *out, char *error, size_t error_len) {
    size_t value_len = 0;
    const char *value = wharf_json_find(json, len, key, &value_len);
    if (value == NULL) return WHARF_CONFIG_ABSENT;
    long long result = 0;
    size_t i = 0;
    int negative = value_len > 0 && value[0] == '-';
    if (negative) i = 1;
    if (i == value_len) goto bad;
    for (; i < value_len; i++) {
        if (value[i] < '0' || value[i] > '9') goto bad;
        if (result > (9223372036854775807LL - (value[i] - '0')) / 10) goto bad;
        result = result * 10 + (value[i] - '0');
    }
    if (negative) result = -result;
    if (result < min || result > max) goto bad;
    *out = result;
    return WHARF_CONFIG_FOUND;
bad:
    snprintf(error, error_len, "config key '%s': expected an integer %lld-%lld, got %.*s", key, min, max,
             (int)(value_len > 40 ? 40 : value_len), value);
    return WHARF_CONFIG_BAD;
}

static inline size_t wharf_json_utf8(uint32_t code, char *out) {
    if (code < 0x80) { out[0] = (char)code; return 1; }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* Decodes one JSON string value (the text including its quotes) into out[capacity],
 * NUL-terminated; the decoded length (NULs allowed) goes to *out_len. 0 on success, -1 if
 * it is not a string or has a bad escape, -2 if it does not fit. */
static inline int wharf_json_decode_string(const char *value, size_t value_len, char *out, size_t capacity,
                                           size_t *out_len) {
    if (value_len < 2 || value[0] != '"' || value[value_len - 1] != '"' || capacity == 0) return -1;
    size_t n = 0;
    for (size_t i = 1; i + 1 < value_len; i++) {
        char piece[4];
        size_t piece_len = 1;
        piece[0] = value[i];
        if (value[i] == '\\') {
            if (i + 2 >= value_len) return -1;
            char e = value[++i];
            switch (e) {
            case 'n': piece[0] = '\n'; break;
            case 'r': piece[0] = '\r'; break;
            case 't': piece[0] = '\t'; break;
            case 'b': piece[0] = '\b'; break;
            case 'f': piece[0] = '\f'; break;
            case 'u': {
                uint32_t code = 0;
                if (i + 4 >= value_len) return -1;
                for (int k = 0; k < 4; k++) {
                    char h = value[++i];
                    code <<= 4;
                    if (h >= '0' && h <= '9') code |= (uint32_t)(h - '0');
                    else if (h >= 'a' && h <= 'f') code |= (uint32_t)(h - 'a' + 10);
                    else if (h >= 'A' && h <= 'F') code |= (uint32_t)(h - 'A' + 10);
                    else return -1;
                }
                piece_len = wharf_json_utf8(code, piece);
                break;
            }
            default: piece[0] = e; break;
            }
        }
        if (n + piece_len >= capacity) return -2;
        memcpy(out + n, piece, piece_len);
        n += piece_len;
    }
    out[n] = '\0';
    *out_len = n;
    return 0;
}

/* A string, JSON escapes decoded, into out[capacity] (NUL-terminated; may contain NULs,
 * so the decoded length goes to *out_len). */
static inline int wharf_config_string(const char *json, size_t len, const char *key, char *out, size_t capacity,
                                      size_t *out_len, char *error, size_t error_len) {
    size_t value_len = 0;
    const char *value = wharf_json_find(json, len, key, &value_len);
    if (value == NULL) return WHARF_CONFIG_ABSENT;
    switch (wharf_json_decode_string(value, value_len, out, capacity, out_len)) {
    case 0: return WHARF_CONFIG_FOUND;
    case -2: snprintf(error, error_len, "config key '%s': longer than %zu bytes", key, capacity - 1); break;
    default: snprintf(error, error_len, "config key '%s': expected a string", key); break;
    }
    return WHARF_CONFIG_BAD;
}

/* "host:port" or "[ipv6]:port" into host[capacity] (NUL-terminated, brackets removed) and
 * *port (1-65535). */
static inline int wharf_config_host_port(const char *json, size_t len, const char *key, char *host, size_t capacity,
                                         uint32_t *port, char *error, size_t error_len) {
    char text[300];
    size_t text_len = 0;
    int found = wharf_config_string(json, len, key, text, sizeof text, &text_len, error, error_len);
    if (found != WHARF_CONFIG_FOUND) return found;
    const char *name = text, *colon = NULL;
    size_t name_len = 0;
    if (text_len > 0 && text[0] == '[') {
        const char *close = memchr(text, ']', text_len);
        if (close != NULL && close + 1 < text + text_len && close[1] == ':') {
            name = text + 1;
            name_len = (size_t)(close - name);
            colon = close + 1;
        }
    } else {
        colon = memchr(text, ':', text_len);
        if (colon != NULL && memchr(colon + 1, ':', text_len - (size_t)(colon + 1 - text)) != NULL) colon = NULL;
        if (colon != NULL) name_len = (size_t)(colon - text);
    }
    long value = 0;
    int digits = 0;
    for (const char *p = colon == NULL ? NULL : colon + 1; p != NULL && p < text + text_len; p++, digits++) {
        if (*p < '0' || *p > '9' || value > 65535) { digits = -1000; break; }
        value = value * 10 + (*p - '0');
    }
    if (colon == NULL || name_len == 0 || name_len >= capacity || digits <= 0 || value < 1 || value > 65535) {
        snprintf(error, error_len, "config key '%s': expected \"host:port\" or \"[ipv6]:port\", got \"%.*s\"", key,
                 (int)(text_len > 80 ? 80 : text_len), text);
        return WHARF_CONFIG_BAD;
    }
    memcpy(host, name, name_len);
    host[name_len] = '\0';
    *port = (uint32_t)value;
    return WHARF_CONFIG_FOUND;
}

/* true or false. */
static inline int wharf_config_bool(const char *json, size_t len, const char *key, int *out, char *error,
                                    size_t error_len) {
    size_t value_len = 0;
    const char *value = wharf_json_find(json, len, key, &value_len);
    if (value == NULL) return WHARF_CONFIG_ABSENT;
    if (value_len == 4 && memcmp(value, "true", 4) == 0) { *out = 1; return WHARF_CONFIG_FOUND; }
    if (value_len == 5 && memcmp(value, "false", 5) == 0) { *out = 0; return WHARF_CONFIG_FOUND; }
    snprintf(error, error_len, "config key '%s': expected true or false", key);
    return WHARF_CONFIG_BAD;
}

/* Calls visit(value, value_len, index, ctx) for each element of the JSON array `array`;
 * stops and returns the visitor's nonzero result, or -1 if the text is not an array. */
static inline int wharf_json_each_element(const char *array, size_t len,
                                          int (*visit)(const char *, size_t, size_t, void *), void *ctx) {
    wharf_json_cursor c = {array, array + len};
    wharf_json_skip_space(&c);
    if (c.p >= c.end || *c.p != '[') return -1;
    c.p++;
    wharf_json_skip_space(&c);
    if (c.p < c.end && *c.p == ']') return 0;
    for (size_t index = 0;; index++) {
        wharf_json_skip_space(&c);
        const char *value = c.p;
        if (wharf_json_skip_value(&c, 1) != 0) return -1;
        int result = visit(value, (size_t)(c.p - value), index, ctx);
        if (result != 0) return result;
        wharf_json_skip_space(&c);
        if (c.p < c.end && *c.p == ',') { c.p++; continue; }
        if (c.p < c.end && *c.p == ']') return 0;
        return -1;
    }
}

#endif /* WHARF_PLUGIN_CONFIG_H */
