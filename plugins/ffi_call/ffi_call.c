/*
 * ffi_call — serve an existing C function without writing a plugin. The config names a
 * shared library, a function and its C signature (grammar in signature.h); each framed
 * request calls the function through libffi and the result is written back, framed the
 * same way.
 *
 * THIS CALLS NATIVE CODE THAT WHARF DOES NOT CHECK. The function runs on the event loop,
 * with the worker's privileges, on bytes a client sent. A wrong signature corrupts memory.
 * A function that crashes kills its worker process: the supervisor restarts that worker,
 * and only the connections it held are lost (the worker model's containment, not a
 * sandbox). A function that blocks stalls every connection of its event loop. Serve only
 * functions you trust to be fast and memory-safe on any input.
 *
 * Config:
 *   library          a path, or a file name: looked up beside this plugin first (where wharf
 *                    keeps its plugins), then by the system loader (e.g. "libz.so.1")
 *   signature        e.g. "uint64 crc32(uint64 0, request, uint32 request_len)" (required)
 *   delimiter        requests end with it, and replies get it (default "\n"), or
 *   length_prefix    1, 2 or 4: each request and reply is preceded by its big-endian length
 *   reply            decimal (default) | hex: the return value as text;
 *                    output: the first N bytes of the output buffer, N being the return value
 *                    (a negative or too large N is answered "-ERR function returned N")
 *   output_capacity  the output buffer's size, for an `output` argument (default 65536)
 *   max_bytes        the largest request (default 1 MiB)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ffi.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "signature.h"
#include "wharf.h"
#include "wharf_plugin_config.h"

typedef enum reply_format { REPLY_DECIMAL, REPLY_HEX, REPLY_OUTPUT } reply_format;

typedef struct ffi_service {
    const wharf_host_api *host;
    void (*function)(void);
    signature sig;
    ffi_cif cif;
    ffi_type *types[SIGNATURE_MAX_ARGUMENTS];
    reply_format reply;
    size_t length_prefix; /* 0: delimiter framing */
    char delimiter[65];
    size_t delimiter_len;
    size_t max_bytes;
    uint8_t *output; /* the instance's output buffer (one loop: one call at a time) */
    size_t output_capacity;
} ffi_service;

static ffi_type *ffi_type_of(integer_kind kind) {
    switch (kind) {
    case KIND_INT8: return &ffi_type_sint8;
    case KIND_INT16: return &ffi_type_sint16;
    case KIND_INT32: return &ffi_type_sint32;
    case KIND_INT64: return &ffi_type_sint64;
    case KIND_UINT8: return &ffi_type_uint8;
    case KIND_UINT16: return &ffi_type_uint16;
    case KIND_UINT32: return &ffi_type_uint32;
    case KIND_UINT64: return &ffi_type_uint64;
    }
    return &ffi_type_sint64;
}

/* An integer argument's value, stored as its C type wants. */
typedef union integer_value {
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
} integer_value;

static integer_value integer_as(integer_kind kind, int64_t value) {
    integer_value out = {.i64 = 0};
    switch (kind) {
    case KIND_INT8: out.i8 = (int8_t)value; break;
    case KIND_INT16: out.i16 = (int16_t)value; break;
    case KIND_INT32: out.i32 = (int32_t)value; break;
    case KIND_INT64: out.i64 = value; break;
    case KIND_UINT8: out.u8 = (uint8_t)value; break;
    case KIND_UINT16: out.u16 = (uint16_t)value; break;
    case KIND_UINT32: out.u32 = (uint32_t)value; break;
    case KIND_UINT64: out.u64 = (uint64_t)value; break;
    }
    return out;
}

/* libffi widens integer results to ffi_arg: narrow them back, with their sign. */
static int64_t result_value(integer_kind kind, ffi_arg raw, uint64_t *as_unsigned) {
    int64_t value = 0;
    switch (kind) {
    case KIND_INT8: value = (int8_t)raw; break;
    case KIND_INT16: value = (int16_t)raw; break;
    case KIND_INT32: value = (int32_t)raw; break;
    case KIND_INT64: value = (int64_t)raw; break;
    case KIND_UINT8: value = (uint8_t)raw; break;
    case KIND_UINT16: value = (uint16_t)raw; break;
    case KIND_UINT32: value = (uint32_t)raw; break;
    case KIND_UINT64: value = (int64_t)(uint64_t)raw; break;
    }
    *as_unsigned = (uint64_t)raw;
    return value;
}

static void send_framed(ffi_service *self, wharf_stream *stream, const uint8_t *data, size_t len) {
    if (self->length_prefix > 0) {
        uint8_t prefix[4];
        for (size_t i = 0; i < self->length_prefix; i++) {
            prefix[i] = (uint8_t)(len >> (8 * (self->length_prefix - 1 - i)));
        }
        self->host->write(stream, prefix, self->length_prefix, NULL, NULL);
        self->host->write(stream, data, len, NULL, NULL);
    } else {
        self->host->write(stream, data, len, NULL, NULL);
        self->host->write(stream, (const uint8_t *)self->delimiter, self->delimiter_len, NULL, NULL);
    }
}

/* Calls the function on one request and writes the reply. */
static void serve(ffi_service *self, wharf_stream *stream, const uint8_t *request, size_t len) {
    integer_value integers[SIGNATURE_MAX_ARGUMENTS];
    const uint8_t *request_pointer = request != NULL ? request : (const uint8_t *)"";
    uint8_t *output_pointer = self->output;
    void *values[SIGNATURE_MAX_ARGUMENTS];
    for (size_t i = 0; i < self->sig.count; i++) {
        const argument *arg = &self->sig.arguments[i];
        switch (arg->role) {
        case ROLE_REQUEST: values[i] = &request_pointer; break;
        case ROLE_OUTPUT: values[i] = &output_pointer; break;
        case ROLE_CONSTANT: integers[i] = integer_as(arg->kind, arg->constant); values[i] = &integers[i]; break;
        case ROLE_REQUEST_LEN: integers[i] = integer_as(arg->kind, (int64_t)len); values[i] = &integers[i]; break;
        case ROLE_OUTPUT_CAPACITY:
            integers[i] = integer_as(arg->kind, (int64_t)self->output_capacity);
            values[i] = &integers[i];
            break;
        }
    }
    ffi_arg raw = 0;
    ffi_call(&self->cif, self->function, &raw, values);
    uint64_t as_unsigned = 0;
    int64_t result = result_value(self->sig.result, raw, &as_unsigned);
    char text[64];
    int n = 0;
    switch (self->reply) {
    case REPLY_DECIMAL:
        n = integer_kind_is_signed(self->sig.result) ? snprintf(text, sizeof text, "%" PRId64, result)
                                                     : snprintf(text, sizeof text, "%" PRIu64, as_unsigned);
        send_framed(self, stream, (const uint8_t *)text, (size_t)n);
        return;
    case REPLY_HEX:
        n = snprintf(text, sizeof text, "%" PRIx64, integer_kind_is_signed(self->sig.result) ? (uint64_t)result : as_unsigned);
        send_framed(self, stream, (const uint8_t *)text, (size_t)n);
        return;
    case REPLY_OUTPUT:
        if (result < 0 || (uint64_t)result > self->output_capacity) {
            n = snprintf(text, sizeof text, "-ERR function returned %" PRId64, result);
            send_framed(self, stream, (const uint8_t *)text, (size_t)n);
            return;
        }
        send_framed(self, stream, self->output, (size_t)result);
        return;
    }
}

static void read_request(ffi_service *self, wharf_stream *stream);

static void on_request(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    ffi_service *self = userdata;
    if (status != WHARF_OK) return;
    serve(self, stream, data, len - self->delimiter_len);
    read_request(self, stream);
}

static void on_body(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    ffi_service *self = userdata;
    if (status != WHARF_OK) return;
    serve(self, stream, data, len);
    read_request(self, stream);
}

static void on_prefix(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    ffi_service *self = userdata;
    if (status != WHARF_OK) return;
    size_t body = 0;
    for (size_t i = 0; i < len; i++) body = body << 8 | data[i];
    if (body > self->max_bytes) {
        self->host->close(stream);
        return;
    }
    self->host->read_bytes(stream, body, 0, on_body, self);
}

static void read_request(ffi_service *self, wharf_stream *stream) {
    if (self->length_prefix > 0) {
        self->host->read_bytes(stream, self->length_prefix, 0, on_prefix, self);
    } else {
        self->host->read_until(stream, (const uint8_t *)self->delimiter, self->delimiter_len,
                               self->max_bytes + self->delimiter_len, on_request, self);
    }
}

static int32_t ffi_call_handle_stream(void *instance, wharf_stream *stream) {
    read_request(instance, stream);
    return WHARF_OK;
}

/* dlopen `name`: a path as given; a bare file name beside this plugin first, then by the
 * system's search. */
static void *open_library(const char *name, char *error, size_t error_len) {
    if (strchr(name, '/') == NULL) {
        Dl_info self;
        if (dladdr((void *)&open_library, &self) != 0 && self.dli_fname != NULL) {
            const char *slash = strrchr(self.dli_fname, '/');
            if (slash != NULL) {
                char beside[4096];
                int n = snprintf(beside, sizeof beside, "%.*s/%s", (int)(slash - self.dli_fname), self.dli_fname, name);
                if (n > 0 && (size_t)n < sizeof beside) {
                    void *handle = dlopen(beside, RTLD_NOW | RTLD_LOCAL);
                    if (handle != NULL) return handle;
                }
            }
        }
    }
    void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) snprintf(error, error_len, "config key 'library': cannot load %s: %s", name, dlerror());
    return handle;
}

/* The config, checked as a whole: every problem names its key. */
static int32_t configure(ffi_service *self, const char *json, size_t json_len, char *error, size_t error_len) {
    static const char *const keys[] = {"library", "signature", "delimiter", "length_prefix", "reply",
                                       "output_capacity", "max_bytes", NULL};
    char library[1024], text[512], reply[16];
    size_t library_len = 0, text_len = 0, reply_len = 0;
    long long length_prefix = 0, output_capacity = 65536, max_bytes = 1 << 20;
    memcpy(self->delimiter, "\n", 2);
    self->delimiter_len = 1;
    int found = wharf_config_check_keys(json, json_len, keys, error, error_len);
    if (found >= 0) found = wharf_config_string(json, json_len, "library", library, sizeof library, &library_len, error, error_len);
    if (found == WHARF_CONFIG_ABSENT) {
        snprintf(error, error_len, "config key 'library' is required: the shared library to call into");
        return WHARF_E_INVALID;
    }
    if (found >= 0) found = wharf_config_string(json, json_len, "signature", text, sizeof text, &text_len, error, error_len);
    if (found == WHARF_CONFIG_ABSENT) {
        snprintf(error, error_len, "config key 'signature' is required, e.g. \"uint64 crc32(uint64 0, request, uint32 request_len)\"");
        return WHARF_E_INVALID;
    }
    int has_delimiter = 0;
    if (found >= 0) {
        found = has_delimiter = wharf_config_string(json, json_len, "delimiter", self->delimiter, sizeof self->delimiter,
                                                    &self->delimiter_len, error, error_len);
    }
    if (found >= 0) found = wharf_config_int(json, json_len, "length_prefix", 1, 4, &length_prefix, error, error_len);
    if (found >= 0) found = wharf_config_string(json, json_len, "reply", reply, sizeof reply, &reply_len, error, error_len);
    if (found >= 0) found = wharf_config_int(json, json_len, "output_capacity", 1, 1 << 30, &output_capacity, error, error_len);
    if (found >= 0) found = wharf_config_int(json, json_len, "max_bytes", 1, 1 << 30, &max_bytes, error, error_len);
    if (found < 0) return WHARF_E_INVALID;
    if (length_prefix == 3 || (length_prefix > 0 && has_delimiter == WHARF_CONFIG_FOUND)) {
        snprintf(error, error_len, "config key 'length_prefix': 1, 2 or 4, and not together with 'delimiter'");
        return WHARF_E_INVALID;
    }
    if (self->delimiter_len == 0) {
        snprintf(error, error_len, "config key 'delimiter': must not be empty");
        return WHARF_E_INVALID;
    }
    if (reply_len == 0 || strcmp(reply, "decimal") == 0) {
        self->reply = REPLY_DECIMAL;
    } else if (strcmp(reply, "hex") == 0) {
        self->reply = REPLY_HEX;
    } else if (strcmp(reply, "output") == 0) {
        self->reply = REPLY_OUTPUT;
    } else {
        snprintf(error, error_len, "config key 'reply': expected decimal, hex or output, got \"%s\"", reply);
        return WHARF_E_INVALID;
    }
    self->length_prefix = (size_t)length_prefix;
    self->max_bytes = (size_t)max_bytes;
    if (self->length_prefix > 0) self->delimiter_len = 0;

    char why[256];
    if (signature_parse(text, text_len, &self->sig, why, sizeof why) != 0) {
        snprintf(error, error_len, "config key 'signature': %s", why);
        return WHARF_E_INVALID;
    }
    int has_output = 0;
    for (size_t i = 0; i < self->sig.count; i++) {
        argument_role role = self->sig.arguments[i].role;
        has_output |= role == ROLE_OUTPUT;
        self->types[i] = role == ROLE_REQUEST || role == ROLE_OUTPUT ? &ffi_type_pointer
                                                                      : ffi_type_of(self->sig.arguments[i].kind);
    }
    if (has_output != (self->reply == REPLY_OUTPUT)) {
        snprintf(error, error_len, has_output ? "config key 'reply': a signature with an output buffer needs reply: output"
                                              : "config key 'reply': output needs an 'output' argument in the signature");
        return WHARF_E_INVALID;
    }
    if (ffi_prep_cif(&self->cif, FFI_DEFAULT_ABI, (unsigned)self->sig.count, ffi_type_of(self->sig.result),
                     self->types) != FFI_OK) {
        snprintf(error, error_len, "config key 'signature': libffi cannot call it");
        return WHARF_E_INVALID;
    }
    void *handle = open_library(library, error, error_len);
    if (handle == NULL) return WHARF_E_INVALID;
    void *symbol = dlsym(handle, self->sig.name);
    if (symbol == NULL) {
        snprintf(error, error_len, "config key 'signature': no function '%s' in %s", self->sig.name, library);
        return WHARF_E_INVALID;
    }
    /* Object to function pointer, as POSIX dlsym requires. */
    memcpy(&self->function, &symbol, sizeof symbol);
    if (has_output) {
        self->output = malloc((size_t)output_capacity);
        if (self->output == NULL) return WHARF_E_NOMEM;
        self->output_capacity = (size_t)output_capacity;
    }
    return WHARF_OK;
}

static void ffi_call_shutdown(void *instance) {
    ffi_service *self = instance;
    if (self == NULL) return;
    free(self->output);
    free(self);
}

static int32_t ffi_call_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out, char *error,
                             size_t error_len) {
    ffi_service *self = calloc(1, sizeof *self);
    if (self == NULL) return WHARF_E_NOMEM;
    self->host = host;
    int32_t status = configure(self, args->config_json, args->config_json_len, error, error_len);
    if (status != WHARF_OK) {
        ffi_call_shutdown(self);
        return status;
    }
    *instance_out = self;
    return WHARF_OK;
}

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .name = "ffi_call",
    .version = "1.0.0",
    .description = "Serves a C function of a shared library through libffi (runs untrusted native code)",
    .init = ffi_call_init,
    .handle_stream = ffi_call_handle_stream,
    .shutdown = ffi_call_shutdown,
};

WHARF_PLUGIN_DEFINE(&descriptor)
