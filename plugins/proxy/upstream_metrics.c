/* The proxy's own metrics: per upstream, connect attempts, failures and open relays, under
 * the admin endpoint's /metrics (ABI 1.4 metric_register). */
#include <stdlib.h>

#include "proxy.h"

#define MAX_SERIES 256

static void number_pool(upstream_pool *pool, const char *route, const char **values, uint32_t *count) {
    for (size_t i = 0; i < pool->count; i++) {
        upstream *member = &pool->members[i];
        member->series = *count; /* past MAX_SERIES the host ignores the updates */
        if (*count < MAX_SERIES) {
            values[2 * *count] = route;
            values[2 * *count + 1] = member->label;
        }
        (*count)++;
    }
}

int32_t upstream_metrics_register(upstream_metrics *metrics, const wharf_host_api *host,
                                  const wharf_instance *instance, proxy_config *config) {
    metrics->host = host;
    if (!WHARF_HOST_HAS(host, metric_register)) return WHARF_OK;
    const char **values = calloc(2 * MAX_SERIES, sizeof *values);
    if (values == NULL) return WHARF_E_NOMEM;
    uint32_t count = 0;
    number_pool(&config->default_pool, "default", values, &count);
    for (size_t i = 0; i < config->route_count; i++) {
        number_pool(&config->routes[i].pool, config->routes[i].pattern, values, &count);
    }
    static const char *const labels[] = {"route", "upstream"};
    wharf_metric_spec spec = {
        .struct_size = sizeof spec,
        .label_count = 2,
        .label_names = labels,
        .series_count = count < MAX_SERIES ? count : MAX_SERIES,
        .label_values = values,
    };
    struct {
        uint32_t type;
        const char *name;
        const char *help;
        wharf_metric **out;
    } wanted[] = {
        {WHARF_METRIC_COUNTER, "proxy_upstream_connects_total", "Connect attempts to each upstream.", &metrics->connects},
        {WHARF_METRIC_COUNTER, "proxy_upstream_connect_failures_total", "Connects to each upstream that failed.",
         &metrics->failures},
        {WHARF_METRIC_GAUGE, "proxy_upstream_active", "Relayed connections open to each upstream.", &metrics->active},
    };
    int32_t status = WHARF_OK;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0] && status == WHARF_OK; i++) {
        spec.type = wanted[i].type;
        spec.name = wanted[i].name;
        spec.help = wanted[i].help;
        status = host->metric_register(instance, &spec, wanted[i].out);
    }
    free(values);
    return status;
}

void upstream_metrics_add(const upstream_metrics *metrics, wharf_metric *metric, const upstream *target, int64_t value) {
    if (metric != NULL) metrics->host->metric_add(metric, target->series, value);
}
