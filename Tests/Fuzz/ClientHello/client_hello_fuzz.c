/* libFuzzer target for the proxy plugin's ClientHello reader (SNI routing): any bytes, any
 * output capacity. It must never read or write out of bounds (AddressSanitizer), and a name
 * it returns is non-empty, NUL-terminated inside the buffer, lowercase and NUL-free, and
 * routes like any other name. Built by scripts/fuzz.sh; with -DWHARF_FUZZ_REPLAY it gets a
 * main that replays files instead (the tests run the committed corpus that way). */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define CHECK(condition)                                                            \
    do {                                                                            \
        if (!(condition)) {                                                         \
            fprintf(stderr, "client_hello: %s failed (line %d)\n", #condition, __LINE__); \
            abort();                                                                \
        }                                                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t capacity = 1 + data[0] % 255;
    char *name = malloc(capacity); /* exactly capacity bytes, so ASan sees any overrun */
    if (name == NULL) return 0;
    int found = client_hello_server_name(data + 1, size - 1, name, capacity);
    CHECK(found == -1 || found == 0 || found == 1);
    if (found == 1) {
        size_t length = strnlen(name, capacity);
        CHECK(length > 0 && length < capacity);
        for (size_t i = 0; i < length; i++) CHECK(name[i] < 'A' || name[i] > 'Z');
        sni_route routes[2];
        memset(routes, 0, sizeof routes);
        snprintf(routes[0].pattern, sizeof routes[0].pattern, "*.example");
        snprintf(routes[1].pattern, sizeof routes[1].pattern, "%s", name);
        CHECK(sni_route_match(routes, 2, name) != NULL);
    }
    free(name);
    return 0;
}

#ifdef WHARF_FUZZ_REPLAY
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *file = fopen(argv[i], "rb");
        if (file == NULL) return 2;
        static uint8_t buffer[1 << 20];
        size_t size = fread(buffer, 1, sizeof buffer, file);
        fclose(file);
        LLVMFuzzerTestOneInput(buffer, size);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
#endif
