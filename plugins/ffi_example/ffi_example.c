/*
 * ffi_example — not a plugin: an ordinary shared library whose functions the ffi_call
 * plugin serves in etc/ffi.example.yaml and in the tests. It knows nothing of Wharf.
 */
#include <stddef.h>
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

/* Writes `in` reversed into `out`; returns the length, or -1 if it does not fit. */
EXPORT int64_t ffi_example_reverse(const uint8_t *in, size_t len, uint8_t *out, size_t capacity);
EXPORT int64_t ffi_example_reverse(const uint8_t *in, size_t len, uint8_t *out, size_t capacity) {
    if (len > capacity) return -1;
    for (size_t i = 0; i < len; i++) out[i] = in[len - 1 - i];
    return (int64_t)len;
}

/* The sum of the bytes, plus `bias`: a signed result to format. */
EXPORT int32_t ffi_example_checksum(int32_t bias, const uint8_t *in, uint32_t len);
EXPORT int32_t ffi_example_checksum(int32_t bias, const uint8_t *in, uint32_t len) {
    int32_t sum = bias;
    for (uint32_t i = 0; i < len; i++) sum += in[i];
    return sum;
}

/* Crashes (a NULL write) when the request is "crash"; otherwise returns its length. It
 * shows what a faulty function costs: its worker, not the service. */
EXPORT int32_t ffi_example_crash_on_request(const uint8_t *in, size_t len);
EXPORT int32_t ffi_example_crash_on_request(const uint8_t *in, size_t len) {
    if (len == 5 && in[0] == 'c' && in[1] == 'r' && in[2] == 'a' && in[3] == 's' && in[4] == 'h') {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    return (int32_t)len;
}
