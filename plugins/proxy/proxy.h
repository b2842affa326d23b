/* The proxy plugin's parts: its configuration, the upstream balancer, the PROXY protocol
 * header writer and the TLS ClientHello reader. Internal to plugins/proxy. */
#ifndef WHARF_PROXY_H
#define WHARF_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "wharf.h"

#define PROXY_MAX_UPSTREAMS 64 /* per pool: the tried set of one connection is a 64-bit mask */
#define PROXY_MAX_ROUTES 64
#define PROXY_NAME_MAX 256
#define PROXY_PATH_MAX 1024

typedef enum { BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONNECTIONS, BALANCE_RANDOM_TWO } balance_method;
typedef enum { PROXY_PROTOCOL_OFF, PROXY_PROTOCOL_V1, PROXY_PROTOCOL_V2 } proxy_protocol_version;

typedef struct upstream {
    char host[PROXY_NAME_MAX]; /* a name or an IP address, without brackets */
    uint32_t port;
    char label[PROXY_NAME_MAX + 16]; /* as configured, for logs */
    uint32_t active;                 /* connections open to it from this loop */
    uint64_t failed_until_ms;        /* passive health: skipped until then (monotonic) */
    uint64_t logged_at_ms;           /* its failures are logged at most once a second... */
    uint32_t unlogged;               /* ...and these were not, since */
    uint32_t series;                 /* its row in the plugin's metrics (upstream_metrics.c) */
} upstream;

typedef struct upstream_pool {
    upstream members[PROXY_MAX_UPSTREAMS];
    size_t count;
    size_t cursor; /* round robin position */
} upstream_pool;

typedef struct sni_route {
    char pattern[PROXY_NAME_MAX]; /* "db.example" or "*.example" (any subdomain) */
    upstream_pool pool;
} sni_route;

typedef struct proxy_config {
    upstream_pool default_pool; /* `upstreams`; in SNI mode, where unmatched names go */
    sni_route *routes;          /* `sni_routes`: present means SNI passthrough mode */
    size_t route_count;
    balance_method balance;
    uint32_t connect_timeout_ms;
    uint32_t retries;
    uint32_t fail_timeout_ms;
    uint32_t idle_timeout_ms;
    proxy_protocol_version proxy_protocol;
    int tls_enabled;
    wharf_tls_client_options tls;
    char tls_ca[PROXY_PATH_MAX];
    char tls_server_name[PROXY_NAME_MAX];
    char tls_alpn[PROXY_NAME_MAX];
    char tls_certificate[PROXY_PATH_MAX];
    char tls_key[PROXY_PATH_MAX];
} proxy_config;

/* Parses the instance's JSON config; WHARF_OK, or WHARF_E_INVALID with a message naming
 * the key. The config owns `routes` (free with proxy_config_free). */
int32_t proxy_config_parse(const char *json, size_t len, proxy_config *config, char *error, size_t error_len);
void proxy_config_free(proxy_config *config);

/* Picks the upstream for the next attempt of one connection, skipping those in `tried`
 * (bit i = members[i]) and, while any healthy one is left, those marked failed. NULL when
 * every member was tried. `random_state` feeds random_two. */
/* Whether any member not in `tried` is left to try (healthy or not). */
int balancer_has_untried(const upstream_pool *pool, uint64_t tried);
upstream *balancer_pick(upstream_pool *pool, balance_method method, uint64_t tried, uint64_t now_ms,
                        uint64_t *random_state);
uint64_t monotonic_ms(void);

/* Writes the PROXY protocol header for a connection from `source` to `destination` (the
 * client's peer and local addresses) into out[capacity]; returns its length, or 0 if it
 * does not fit. Families other than IPv4/IPv6 give "UNKNOWN" (v1) or AF_UNSPEC (v2). */
size_t proxy_protocol_header(proxy_protocol_version version, const wharf_stream_info *client, uint8_t *out,
                             size_t capacity);

/* The SNI host name of a complete ClientHello handshake message (`message`, starting at
 * its 4-byte header). 1 and the name in out[capacity] (lowercased); 0 if it carries no
 * server_name; -1 if the message is malformed. */
int client_hello_server_name(const uint8_t *message, size_t len, char *out, size_t capacity);

/* The route whose pattern matches `name` (exact names first, then wildcards in order), or NULL. */
sni_route *sni_route_match(sni_route *routes, size_t count, const char *name);

/* The proxy's metrics [ABI 1.4], one series per upstream of every pool, labelled with the
 * route ("default" or the SNI pattern) and the upstream as configured. All NULL on an
 * older host; the update functions then do nothing. */
typedef struct upstream_metrics {
    const wharf_host_api *host;
    wharf_metric *connects; /* proxy_upstream_connects_total: connect attempts */
    wharf_metric *failures; /* proxy_upstream_connect_failures_total */
    wharf_metric *active;   /* proxy_upstream_active: relayed connections open now */
} upstream_metrics;

/* Numbers the upstreams' series and registers the metrics; WHARF_OK or the host's error. */
int32_t upstream_metrics_register(upstream_metrics *metrics, const wharf_host_api *host,
                                  const wharf_instance *instance, proxy_config *config);
void upstream_metrics_add(const upstream_metrics *metrics, wharf_metric *metric, const upstream *target, int64_t value);

#endif
