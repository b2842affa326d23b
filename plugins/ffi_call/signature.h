/* The signature grammar of ffi_call (see ffi_call.c for the whole plugin):
 *
 *   signature    := type name "(" [ argument { "," argument } ] ")"
 *   type         := int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | size | ssize
 *                   (C spellings work too: int8_t ... uint64_t, size_t, ssize_t, int, unsigned,
 *                   long, unsigned long, char, unsigned char, short, unsigned short)
 *   argument     := type INTEGER              a constant, e.g. "uint32 0"
 *                 | "request"                 const uint8_t *: the request's bytes
 *                 | type "request_len"        the request's length
 *                 | "output"                  uint8_t *: a buffer of output_capacity bytes
 *                 | type "output_capacity"    that buffer's size
 *
 * e.g. zlib's crc32:  "uint64 crc32(uint64 0, request, uint32 request_len)"
 */
#ifndef FFI_CALL_SIGNATURE_H
#define FFI_CALL_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>

#define SIGNATURE_MAX_ARGUMENTS 8

typedef enum integer_kind {
    KIND_INT8, KIND_INT16, KIND_INT32, KIND_INT64,
    KIND_UINT8, KIND_UINT16, KIND_UINT32, KIND_UINT64,
} integer_kind;

typedef enum argument_role {
    ROLE_CONSTANT,
    ROLE_REQUEST,
    ROLE_REQUEST_LEN,
    ROLE_OUTPUT,
    ROLE_OUTPUT_CAPACITY,
} argument_role;

typedef struct argument {
    argument_role role;
    integer_kind kind; /* for the integer roles */
    int64_t constant;  /* ROLE_CONSTANT */
} argument;

typedef struct signature {
    integer_kind result;
    char name[128];
    size_t count;
    argument arguments[SIGNATURE_MAX_ARGUMENTS];
} signature;

/* Parses `text`; on failure returns -1 with a message naming the column in `error`. */
int signature_parse(const char *text, size_t len, signature *out, char *error, size_t error_len);

/* 1 if the kind is signed. */
int integer_kind_is_signed(integer_kind kind);

/* Whether `value` fits the kind. */
int integer_kind_fits(integer_kind kind, int64_t value);

#endif
