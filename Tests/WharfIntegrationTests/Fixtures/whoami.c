/* Reports what the host knows of the connection, then echoes lines. The first line sent is
 *   "peer=ADDR:PORT local=ADDR:PORT proxied=N tls=VVVV sni=NAME alpn=PROTO subject=SUBJECT\n"
 * Built with -DVARIANT_STARTTLS it first speaks just enough SMTP for `openssl s_client
 * -starttls smtp` (greeting, EHLO, STARTTLS), upgrades with start_tls, then reports over
 * TLS. Built with -DVARIANT_RELAYS_AT_ONCE it declares WHARF_PLUGIN_RELAYS_AT_ONCE and
 * then does everything but relay. Test fixture. */
#include <stdio.h>
#include <string.h>

#include "wharf.h"

static const wharf_host_api *host;

static void on_line(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    (void)userdata;
    if (status != WHARF_OK) return;
    host->write(stream, data, len, NULL, NULL);
    host->read_until(stream, (const uint8_t *)"\n", 1, 0, on_line, NULL);
}

static void report(wharf_stream *stream) {
    wharf_stream_info info = {.struct_size = sizeof info};
    char line[1400];
    if (host->get_info(stream, &info) != WHARF_OK) {
        host->close(stream);
        return;
    }
    int n = snprintf(line, sizeof line, "peer=%s:%u local=%s:%u proxied=%u tls=%04x sni=%s alpn=%s subject=%s\n",
                     info.peer_address, info.peer_port,
                     info.local_address, info.local_port, info.proxied, info.tls_version, info.tls_server_name,
                     info.tls_alpn, info.tls_peer_subject);
    host->write(stream, (const uint8_t *)line, (size_t)n, NULL, NULL);
    host->read_until(stream, (const uint8_t *)"\n", 1, 0, on_line, NULL);
}

#ifdef VARIANT_STARTTLS
static void on_upgraded(void *userdata, wharf_stream *stream, int32_t status) {
    (void)userdata;
    if (status != WHARF_OK) {
        wharf_logf(host, NULL, WHARF_LOG_INFO, "start_tls failed: %s", host->strerror(status));
        return;
    }
    report(stream);
}

static void on_go_ahead_sent(void *userdata, wharf_stream *stream, int32_t status) {
    (void)userdata;
    if (status != WHARF_OK) return;
    int32_t result = host->start_tls(stream, NULL, on_upgraded, NULL);
    if (result != WHARF_OK) {
        wharf_logf(host, NULL, WHARF_LOG_INFO, "start_tls refused: %s", host->strerror(result));
        host->close(stream);
    }
}

static void on_command(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data, size_t len) {
    (void)userdata;
    if (status != WHARF_OK) return;
    if (len >= 4 && (memcmp(data, "EHLO", 4) == 0 || memcmp(data, "ehlo", 4) == 0)) {
        const char *reply = "250-wharf\r\n250 STARTTLS\r\n";
        host->write(stream, (const uint8_t *)reply, strlen(reply), NULL, NULL);
        host->read_until(stream, (const uint8_t *)"\n", 1, 512, on_command, NULL);
    } else if (len >= 8 && memcmp(data, "STARTTLS", 8) == 0) {
        const char *reply = "220 go ahead\r\n";
        host->write(stream, (const uint8_t *)reply, strlen(reply), on_go_ahead_sent, NULL);
    } else {
        const char *reply = "500 unknown\r\n";
        host->write(stream, (const uint8_t *)reply, strlen(reply), NULL, NULL);
        host->close(stream);
    }
}
#endif

static int32_t whoami_init(const wharf_host_api *api, const wharf_init_args *args, void **out, char *error,
                           size_t error_len) {
    (void)args;
    if (api->abi_minor < 2) {
        snprintf(error, error_len, "needs ABI 1.2");
        return WHARF_E_UNSUPPORTED;
    }
    host = api;
    *out = NULL;
    return WHARF_OK;
}

static int32_t whoami_handle_stream(void *instance, wharf_stream *stream) {
    (void)instance;
#ifdef VARIANT_STARTTLS
    const char *greeting = "220 wharf ESMTP\r\n";
    host->write(stream, (const uint8_t *)greeting, strlen(greeting), NULL, NULL);
    return host->read_until(stream, (const uint8_t *)"\n", 1, 512, on_command, NULL);
#else
    report(stream);
    return WHARF_OK;
#endif
}

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 2,
    .name = "whoami",
    .version = "1.0.0",
    .description = "Reports the connection's addresses and TLS facts, then echoes (test fixture)",
    .init = whoami_init,
    .handle_stream = whoami_handle_stream,
    .shutdown = NULL,
#ifdef VARIANT_RELAYS_AT_ONCE
    /* A false hint: the stream is used as any other, so the host must build its channel. */
    .flags = WHARF_PLUGIN_RELAYS_AT_ONCE,
#endif
};

WHARF_PLUGIN_DEFINE(&descriptor)
