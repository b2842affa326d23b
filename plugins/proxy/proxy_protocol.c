/* The PROXY protocol header (haproxy.org/download/2.9/doc/proxy-protocol.txt), versions 1
 * (text) and 2 (binary), describing the client connection to the upstream. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy.h"

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* The address as 16 bytes (IPv4 mapped into IPv6 when `as_v6`) or 4 bytes. */
static int binary_address(const char *text, int family, int as_v6, uint8_t *out) {
    if (family == AF_INET) {
        uint8_t v4[4];
        if (inet_pton(AF_INET, text, v4) != 1) return -1;
        if (!as_v6) {
            memcpy(out, v4, 4);
            return 0;
        }
        memset(out, 0, 10);
        out[10] = out[11] = 0xFF;
        memcpy(out + 12, v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
}

static int is_ip(int family) { return family == AF_INET || family == AF_INET6; }

size_t proxy_protocol_header(proxy_protocol_version version, const wharf_stream_info *client, uint8_t *out,
                             size_t capacity) {
    int known = is_ip(client->peer_family) && is_ip(client->local_family);
    int v6 = client->peer_family == AF_INET6 || client->local_family == AF_INET6;
    uint8_t source[16], destination[16];
    if (known && (binary_address(client->peer_address, client->peer_family, v6, source) != 0 ||
                  binary_address(client->local_address, client->local_family, v6, destination) != 0)) {
        known = 0;
    }
    if (version == PROXY_PROTOCOL_V1) {
        char text_source[64], text_destination[64];
        int n;
        if (!known) {
            n = snprintf((char *)out, capacity, "PROXY UNKNOWN\r\n");
        } else {
            inet_ntop(v6 ? AF_INET6 : AF_INET, source, text_source, sizeof text_source);
            inet_ntop(v6 ? AF_INET6 : AF_INET, destination, text_destination, sizeof text_destination);
            n = snprintf((char *)out, capacity, "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4", text_source,
                         text_destination, client->peer_port, client->local_port);
        }
        return n > 0 && (size_t)n < capacity ? (size_t)n : 0;
    }
    size_t address_len = !known ? 0 : v6 ? 36 : 12;
    if (capacity < 16 + address_len) return 0;
    memcpy(out, v2_signature, sizeof v2_signature);
    out[12] = 0x21;                            /* version 2, command PROXY */
    out[13] = !known ? 0x00 : v6 ? 0x21 : 0x11; /* AF_UNSPEC, or TCP over IPv6 / IPv4 */
    out[14] = (uint8_t)(address_len >> 8);
    out[15] = (uint8_t)address_len;
    if (known) {
        size_t size = v6 ? 16 : 4;
        uint8_t *p = out + 16;
        memcpy(p, source, size);
        memcpy(p + size, destination, size);
        p += 2 * size;
        p[0] = (uint8_t)(client->peer_port >> 8);
        p[1] = (uint8_t)client->peer_port;
        p[2] = (uint8_t)(client->local_port >> 8);
        p[3] = (uint8_t)client->local_port;
    }
    return 16 + address_len;
}
