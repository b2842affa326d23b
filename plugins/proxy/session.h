/* One client connection of the proxy plugin and the instance it belongs to, shared by
 * proxy.c (connecting and relaying) and sni_passthrough.c (routing by server name).
 * Internal to plugins/proxy. */
#ifndef WHARF_PROXY_SESSION_H
#define WHARF_PROXY_SESSION_H

#include "proxy.h"

#define MAX_CLIENT_HELLO 65536 /* all records of one ClientHello */

typedef struct proxy {
    const wharf_host_api *host;
    const wharf_instance *instance;
    proxy_config config;
    uint64_t random_state;
    uint64_t unreachable_logged_at_ms; /* "no upstream reachable": once a second at most */
    uint32_t unreachable_unlogged;
    upstream_metrics metrics;
} proxy;

typedef struct session {
    proxy *plugin;
    wharf_stream *client;
    wharf_stream *upstream;
    upstream_pool *pool;
    upstream *target;   /* being connected to, then connected to */
    uint64_t tried;     /* bit i: pool->members[i] was tried for this client */
    uint32_t attempts;
    int connecting;     /* a connect callback is still to come: the session must outlive it */
    uint8_t *preread;   /* SNI mode: the ClientHello records, replayed to the upstream */
    size_t preread_len;
    uint8_t *hello;     /* the handshake message reassembled from those records */
    size_t hello_len;
} session;

/* Picks the next upstream of s->pool and connects to it (retrying as configured); closes
 * the client when none is left. */
void connect_next(session *s);

/* SNI passthrough: reads the client's TLS ClientHello, sets s->pool by its server name
 * (keeping the records read in s->preread, to be replayed) and connects. */
void sni_route_client(session *s);

#endif
