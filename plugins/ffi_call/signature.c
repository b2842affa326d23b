/* The parser of ffi_call's signature grammar (signature.h). */
#include "signature.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cursor {
    const char *start, *p, *end;
    char *error;
    size_t error_len;
} cursor;

static int fail(cursor *c, const char *what) {
    snprintf(c->error, c->error_len, "signature, column %zu: %s", (size_t)(c->p - c->start) + 1, what);
    return -1;
}

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int is_word_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* The next identifier (letters, digits, '_'), or an empty span. */
static size_t word(cursor *c, const char **out) {
    skip_space(c);
    *out = c->p;
    while (c->p < c->end && is_word_char(*c->p)) c->p++;
    return (size_t)(c->p - *out);
}

static int word_is(const char *w, size_t n, const char *text) { return strlen(text) == n && memcmp(w, text, n) == 0; }

static const struct {
    const char *name;
    integer_kind kind;
} types[] = {
    {"int8", KIND_INT8}, {"int16", KIND_INT16}, {"int32", KIND_INT32}, {"int64", KIND_INT64},
    {"uint8", KIND_UINT8}, {"uint16", KIND_UINT16}, {"uint32", KIND_UINT32}, {"uint64", KIND_UINT64},
    {"int8_t", KIND_INT8}, {"int16_t", KIND_INT16}, {"int32_t", KIND_INT32}, {"int64_t", KIND_INT64},
    {"uint8_t", KIND_UINT8}, {"uint16_t", KIND_UINT16}, {"uint32_t", KIND_UINT32}, {"uint64_t", KIND_UINT64},
    {"size", KIND_UINT64}, {"size_t", KIND_UINT64}, {"ssize", KIND_INT64}, {"ssize_t", KIND_INT64},
    {"char", KIND_INT8}, {"short", KIND_INT16}, {"int", KIND_INT32}, {"long", KIND_INT64},
};

/* A type, with "unsigned" before char, short, int or long. */
static int parse_type(cursor *c, integer_kind *out) {
    const char *w;
    size_t n = word(c, &w);
    int is_unsigned = word_is(w, n, "unsigned");
    if (is_unsigned) {
        const char *save = c->p;
        n = word(c, &w);
        if (n == 0) { /* plain "unsigned" */
            c->p = save;
            *out = KIND_UINT32;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (!word_is(w, n, types[i].name)) continue;
        integer_kind kind = types[i].kind;
        if (is_unsigned) {
            if (i < 16 || word_is(w, n, "size") || word_is(w, n, "size_t") || word_is(w, n, "ssize") ||
                word_is(w, n, "ssize_t")) {
                break; /* "unsigned uint32" and the like */
            }
            kind = (integer_kind)(kind + (KIND_UINT8 - KIND_INT8));
        }
        *out = kind;
        return 0;
    }
    c->p = w;
    return fail(c, "expected an integer type (int8 ... uint64, size, ssize, or a C spelling such as uint32_t)");
}

static int parse_integer(cursor *c, int64_t *out) {
    skip_space(c);
    const char *begin = c->p;
    int negative = c->p < c->end && *c->p == '-';
    if (negative) c->p++;
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
        c->p = begin;
        return fail(c, "expected request, request_len, output, output_capacity or an integer constant");
    }
    uint64_t value = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        uint64_t digit = (uint64_t)(*c->p - '0');
        if (value > (UINT64_MAX - digit) / 10) return fail(c, "integer constant too large");
        value = value * 10 + digit;
        c->p++;
    }
    if (negative ? value > (uint64_t)INT64_MAX + 1 : value > (uint64_t)INT64_MAX) {
        c->p = begin;
        return fail(c, "integer constant out of range");
    }
    *out = negative ? (int64_t)(0 - value) : (int64_t)value;
    return 0;
}

static int parse_argument(cursor *c, argument *out) {
    skip_space(c);
    const char *save = c->p;
    const char *w;
    size_t n = word(c, &w);
    if (word_is(w, n, "request")) {
        out->role = ROLE_REQUEST;
        return 0;
    }
    if (word_is(w, n, "output")) {
        out->role = ROLE_OUTPUT;
        return 0;
    }
    c->p = save;
    if (parse_type(c, &out->kind) != 0) return -1;
    skip_space(c);
    save = c->p;
    n = word(c, &w);
    if (word_is(w, n, "request_len")) {
        out->role = ROLE_REQUEST_LEN;
        return 0;
    }
    if (word_is(w, n, "output_capacity")) {
        out->role = ROLE_OUTPUT_CAPACITY;
        return 0;
    }
    c->p = save;
    out->role = ROLE_CONSTANT;
    if (parse_integer(c, &out->constant) != 0) return -1;
    if (!integer_kind_fits(out->kind, out->constant)) {
        c->p = save;
        return fail(c, "the constant does not fit its type");
    }
    return 0;
}

int signature_parse(const char *text, size_t len, signature *out, char *error, size_t error_len) {
    cursor c = {text, text, text + len, error, error_len};
    memset(out, 0, sizeof *out);
    if (parse_type(&c, &out->result) != 0) return -1;
    const char *w;
    size_t n = word(&c, &w);
    if (n == 0 || (w[0] >= '0' && w[0] <= '9')) return fail(&c, "expected the function's name");
    if (n >= sizeof out->name) return fail(&c, "the function's name is too long");
    memcpy(out->name, w, n);
    out->name[n] = '\0';
    skip_space(&c);
    if (c.p >= c.end || *c.p != '(') return fail(&c, "expected '(' after the function's name");
    c.p++;
    skip_space(&c);
    if (c.p < c.end && *c.p == ')') {
        c.p++;
    } else {
        for (;;) {
            if (out->count == SIGNATURE_MAX_ARGUMENTS) return fail(&c, "more than 8 arguments");
            if (parse_argument(&c, &out->arguments[out->count]) != 0) return -1;
            out->count++;
            skip_space(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            if (c.p < c.end && *c.p == ')') {
                c.p++;
                break;
            }
            return fail(&c, "expected ',' or ')'");
        }
    }
    skip_space(&c);
    if (c.p != c.end) return fail(&c, "unexpected text after ')'");
    return 0;
}

int integer_kind_is_signed(integer_kind kind) { return kind <= KIND_INT64; }

int integer_kind_fits(integer_kind kind, int64_t value) {
    switch (kind) {
    case KIND_INT8: return value >= INT8_MIN && value <= INT8_MAX;
    case KIND_INT16: return value >= INT16_MIN && value <= INT16_MAX;
    case KIND_INT32: return value >= INT32_MIN && value <= INT32_MAX;
    case KIND_INT64: return 1;
    case KIND_UINT8: return value >= 0 && value <= UINT8_MAX;
    case KIND_UINT16: return value >= 0 && value <= UINT16_MAX;
    case KIND_UINT32: return value >= 0 && value <= (int64_t)UINT32_MAX;
    case KIND_UINT64: return value >= 0;
    }
    return 0;
}
