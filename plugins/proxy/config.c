/* The proxy's configuration: every key checked, every error naming its key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "wharf_plugin_config.h"

typedef struct parse_context {
    upstream_pool *pool;
    const char *key; /* for messages: "upstreams" or "sni_routes.<name>" */
    char *error;
    size_t error_len;
} parse_context;

/* "host:port", "[v6 address]:port". */
static int parse_upstream(const char *text, size_t len, upstream *out, const char *key, size_t index, char *error,
                          size_t error_len) {
    const char *colon = NULL;
    const char *host = text;
    size_t host_len;
    if (len > 0 && text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (close == NULL || close + 1 >= text + len || close[1] != ':') goto bad;
        host = text + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        for (const char *p = text; p < text + len; p++) {
            if (*p == ':') {
                if (colon != NULL) {
                    snprintf(error, error_len, "config key '%s[%zu]': write IPv6 addresses in brackets, e.g. [::1]:6379",
                             key, index);
                    return -1;
                }
                colon = p;
            }
        }
        if (colon == NULL) goto bad;
        host_len = (size_t)(colon - text);
    }
    if (host_len == 0 || host_len >= sizeof out->host) goto bad;
    long port = 0;
    const char *digits = colon + 1;
    if (digits >= text + len) goto bad;
    for (const char *p = digits; p < text + len; p++) {
        if (*p < '0' || *p > '9' || port > 65535) goto bad;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) goto bad;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint32_t)port;
    snprintf(out->label, sizeof out->label, "%.*s", (int)len, text);
    return 0;
bad:
    snprintf(error, error_len, "config key '%s[%zu]': expected \"host:port\" or \"[ipv6]:port\", got \"%.*s\"", key,
             index, (int)(len > 80 ? 80 : len), text);
    return -1;
}

static int add_upstream(const char *value, size_t value_len, size_t index, void *ctx) {
    parse_context *parse = ctx;
    char text[PROXY_NAME_MAX + 16];
    size_t text_len;
    if (wharf_json_decode_string(value, value_len, text, sizeof text, &text_len) != 0) {
        snprintf(parse->error, parse->error_len, "config key '%s[%zu]': expected a \"host:port\" string", parse->key,
                 index);
        return 2;
    }
    if (parse->pool->count == PROXY_MAX_UPSTREAMS) {
        snprintf(parse->error, parse->error_len, "config key '%s': at most %d upstreams", parse->key,
                 PROXY_MAX_UPSTREAMS);
        return 2;
    }
    upstream *member = &parse->pool->members[parse->pool->count];
    if (parse_upstream(text, text_len, member, parse->key, index, parse->error, parse->error_len) != 0) return 2;
    parse->pool->count++;
    return 0;
}

/* A pool from a JSON array of "host:port" strings, or one such string. */
static int parse_pool(const char *value, size_t value_len, parse_context *parse) {
    if (value_len > 0 && value[0] == '"') return add_upstream(value, value_len, 0, parse) == 0 ? 0 : -1;
    int result = wharf_json_each_element(value, value_len, add_upstream, parse);
    if (result == -1) {
        snprintf(parse->error, parse->error_len, "config key '%s': expected a list of \"host:port\" strings",
                 parse->key);
    }
    if (result == 0 && parse->pool->count == 0) {
        snprintf(parse->error, parse->error_len, "config key '%s': the list is empty", parse->key);
        return -1;
    }
    return result == 0 ? 0 : -1;
}

typedef struct routes_context {
    proxy_config *config;
    char *error;
    size_t error_len;
} routes_context;

static int add_route(const char *key, size_t key_len, const char *value, size_t value_len, void *ctx) {
    routes_context *routes = ctx;
    proxy_config *config = routes->config;
    if (config->route_count == PROXY_MAX_ROUTES) {
        snprintf(routes->error, routes->error_len, "config key 'sni_routes': at most %d routes", PROXY_MAX_ROUTES);
        return 2;
    }
    sni_route *route = &config->routes[config->route_count];
    char name[PROXY_NAME_MAX];
    size_t name_len;
    if (wharf_json_decode_string(key - 1, key_len + 2, name, sizeof name, &name_len) != 0 || name_len == 0 ||
        (name[0] == '*' && (name_len < 3 || name[1] != '.'))) {
        snprintf(routes->error, routes->error_len,
                 "config key 'sni_routes': bad server name '%.*s' (a name, or *.suffix for any subdomain)",
                 (int)key_len, key);
        return 2;
    }
    memcpy(route->pattern, name, name_len + 1);
    char path[PROXY_NAME_MAX + 16];
    snprintf(path, sizeof path, "sni_routes.%s", name);
    parse_context parse = {&route->pool, path, routes->error, routes->error_len};
    if (parse_pool(value, value_len, &parse) != 0) return 2;
    config->route_count++;
    return 0;
}

typedef struct alpn_context {
    char *out;
    size_t capacity;
    size_t used;
} alpn_context;

static int add_alpn(const char *value, size_t value_len, size_t index, void *ctx) {
    (void)index;
    alpn_context *list = ctx;
    char protocol[PROXY_NAME_MAX];
    size_t protocol_len;
    if (wharf_json_decode_string(value, value_len, protocol, sizeof protocol, &protocol_len) != 0 ||
        protocol_len == 0 || memchr(protocol, ',', protocol_len) != NULL ||
        list->used + protocol_len + 2 > list->capacity) {
        return 2;
    }
    if (list->used > 0) list->out[list->used++] = ',';
    memcpy(list->out + list->used, protocol, protocol_len + 1);
    list->used += protocol_len;
    return 0;
}

static int parse_tls(const char *json, size_t len, proxy_config *config, char *error, size_t error_len) {
    static const char *const keys[] = {"verify", "ca", "server_name", "alpn", "certificate", "key", NULL};
    if (wharf_config_check_keys(json, len, keys, error, error_len) != WHARF_CONFIG_FOUND) {
        char inner[200];
        snprintf(inner, sizeof inner, "%s", error);
        snprintf(error, error_len, "tls: %s", inner);
        return -1;
    }
    int verify = 1;
    size_t n;
    if (wharf_config_bool(json, len, "verify", &verify, error, error_len) < 0 ||
        wharf_config_string(json, len, "ca", config->tls_ca, sizeof config->tls_ca, &n, error, error_len) < 0 ||
        wharf_config_string(json, len, "server_name", config->tls_server_name, sizeof config->tls_server_name, &n,
                            error, error_len) < 0 ||
        wharf_config_string(json, len, "certificate", config->tls_certificate, sizeof config->tls_certificate, &n,
                            error, error_len) < 0 ||
        wharf_config_string(json, len, "key", config->tls_key, sizeof config->tls_key, &n, error, error_len) < 0) {
        return -1;
    }
    size_t alpn_len = 0;
    const char *alpn = wharf_json_find(json, len, "alpn", &alpn_len);
    if (alpn != NULL) {
        /* A list becomes the comma-separated form the host takes. */
        alpn_context list = {config->tls_alpn, sizeof config->tls_alpn, 0};
        if (wharf_json_each_element(alpn, alpn_len, add_alpn, &list) != 0) {
            snprintf(error, error_len, "config key 'tls.alpn': expected a list of protocol names, e.g. [h2, http/1.1]");
            return -1;
        }
    }
    if ((config->tls_certificate[0] != '\0') != (config->tls_key[0] != '\0')) {
        snprintf(error, error_len, "config key 'tls': certificate and key go together");
        return -1;
    }
    config->tls_enabled = 1;
    config->tls = (wharf_tls_client_options){
        .struct_size = sizeof config->tls,
        .insecure_no_verify = !verify,
        .ca_file = config->tls_ca[0] ? config->tls_ca : NULL,
        .server_name = config->tls_server_name[0] ? config->tls_server_name : NULL,
        .alpn = config->tls_alpn[0] ? config->tls_alpn : NULL,
        .certificate_file = config->tls_certificate[0] ? config->tls_certificate : NULL,
        .key_file = config->tls_key[0] ? config->tls_key : NULL,
    };
    return 0;
}

static int parse_choice(const char *json, size_t len, const char *key, const char *const *names, int *out,
                        char *error, size_t error_len) {
    char text[32];
    size_t text_len;
    int found = wharf_config_string(json, len, key, text, sizeof text, &text_len, error, error_len);
    if (found != WHARF_CONFIG_FOUND) {
        /* YAML's `off` arrives as a string; a bare false is accepted for it too. */
        size_t value_len;
        const char *value = wharf_json_find(json, len, key, &value_len);
        if (found == WHARF_CONFIG_BAD && value != NULL && value_len == 5 && memcmp(value, "false", 5) == 0) {
            *out = 0;
            return 0;
        }
        return found == WHARF_CONFIG_ABSENT ? 0 : -1;
    }
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], text) == 0) {
            *out = i;
            return 0;
        }
    }
    size_t used = (size_t)snprintf(error, error_len, "config key '%s': expected one of", key);
    for (int i = 0; names[i] != NULL && used < error_len; i++) {
        used += (size_t)snprintf(error + used, error_len - used, "%s %s", i ? "," : "", names[i]);
    }
    if (used < error_len) snprintf(error + used, error_len - used, "; got \"%s\"", text);
    return -1;
}

static int parse_millis(const char *json, size_t len, const char *key, uint32_t *out, long long min, char *error,
                        size_t error_len) {
    long long value = *out;
    if (wharf_config_int(json, len, key, min, 86400000LL, &value, error, error_len) < 0) return -1;
    *out = (uint32_t)value;
    return 0;
}

int32_t proxy_config_parse(const char *json, size_t len, proxy_config *config, char *error, size_t error_len) {
    static const char *const keys[] = {"upstreams", "balance", "connect_timeout_ms", "retries", "fail_timeout_ms",
                                       "idle_timeout_ms", "proxy_protocol", "tls", "sni_routes", NULL};
    static const char *const balances[] = {"round_robin", "least_connections", "random_two", NULL};
    static const char *const versions[] = {"off", "v1", "v2", NULL};
    memset(config, 0, sizeof *config);
    config->connect_timeout_ms = 2000;
    config->retries = 2;
    config->fail_timeout_ms = 10000;
    config->idle_timeout_ms = 300000;
    if (wharf_config_check_keys(json, len, keys, error, error_len) != WHARF_CONFIG_FOUND) return WHARF_E_INVALID;

    size_t value_len;
    const char *value = wharf_json_find(json, len, "upstreams", &value_len);
    if (value != NULL) {
        parse_context parse = {&config->default_pool, "upstreams", error, error_len};
        if (parse_pool(value, value_len, &parse) != 0) return WHARF_E_INVALID;
    }
    value = wharf_json_find(json, len, "sni_routes", &value_len);
    if (value != NULL) {
        config->routes = calloc(PROXY_MAX_ROUTES, sizeof *config->routes);
        if (config->routes == NULL) return WHARF_E_NOMEM;
        routes_context routes = {config, error, error_len};
        int result = wharf_json_each_member(value, value_len, add_route, &routes);
        if (result == -1) snprintf(error, error_len, "config key 'sni_routes': expected a map of name: upstreams");
        if (result == 0 && config->route_count == 0) {
            snprintf(error, error_len, "config key 'sni_routes': the map is empty");
            result = -1;
        }
        if (result != 0) goto fail;
    }
    if (config->default_pool.count == 0 && config->routes == NULL) {
        snprintf(error, error_len, "config key 'upstreams' is required (a list of \"host:port\")");
        goto fail;
    }
    long long retries = config->retries;
    int balance = 0, version = 0;
    if (parse_choice(json, len, "balance", balances, &balance, error, error_len) != 0 ||
        parse_choice(json, len, "proxy_protocol", versions, &version, error, error_len) != 0 ||
        parse_millis(json, len, "connect_timeout_ms", &config->connect_timeout_ms, 1, error, error_len) != 0 ||
        parse_millis(json, len, "fail_timeout_ms", &config->fail_timeout_ms, 0, error, error_len) != 0 ||
        parse_millis(json, len, "idle_timeout_ms", &config->idle_timeout_ms, 0, error, error_len) != 0 ||
        wharf_config_int(json, len, "retries", 0, PROXY_MAX_UPSTREAMS, &retries, error, error_len) < 0) {
        goto fail;
    }
    config->balance = (balance_method)balance;
    config->proxy_protocol = (proxy_protocol_version)version;
    config->retries = (uint32_t)retries;
    value = wharf_json_find(json, len, "tls", &value_len);
    if (value != NULL) {
        if (value_len == 0 || value[0] != '{') {
            snprintf(error, error_len, "config key 'tls': expected a map, e.g. {verify: true, ca: ca.pem}");
            goto fail;
        }
        if (parse_tls(value, value_len, config, error, error_len) != 0) goto fail;
    }
    return WHARF_OK;
fail:
    proxy_config_free(config);
    return WHARF_E_INVALID;
}

void proxy_config_free(proxy_config *config) {
    free(config->routes);
    config->routes = NULL;
    config->route_count = 0;
}
