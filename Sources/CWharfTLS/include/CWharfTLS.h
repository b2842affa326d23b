/* TLS session ticket keys shared by every worker of a supervisor, rotated by time.
 *
 * NIOSSL exposes no ticket settings, so this reaches the SSL_CTX underneath it and sets
 * BoringSSL's ticket key callback. The keys are derived, never stored: for each period
 * (`period_seconds`, e.g. 12 hours) the key is HMAC-SHA256(secret, period). Every worker
 * got the same 32-byte secret from the supervisor, so a ticket one worker issued is
 * accepted by any other, across reloads too; a ticket is accepted during its own period
 * and the next one (then renewed), so keys rotate with no coordination at all. */
#ifndef CWHARF_TLS_H
#define CWHARF_TLS_H

#include <stddef.h>
#include <stdint.h>

/* Sets the process's secret (32 bytes) and rotation period. Call once, before any
 * handshake; until it is called the callback declines to issue tickets. */
void cwharf_tls_tickets_configure(const uint8_t *secret, size_t length, uint64_t period_seconds);

/* Installs the callback on a BoringSSL SSL_CTX (an OpaquePointer from NIOSSLContext). */
void cwharf_tls_tickets_install(void *ssl_ctx);

/* Turns session tickets off for this SSL_CTX (SSL_OP_NO_TICKET). */
void cwharf_tls_tickets_disable(void *ssl_ctx);

#endif
