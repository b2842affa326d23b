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

/* A server-side TLS session driven straight on a non-blocking socket (the relay pump's
 * TLS: no NIO channel, no memory BIOs). One thread at a time. It runs on either library:
 * BoringSSL, as NIOSSL links it, on a context taken from a NIOSSLContext; or the system's
 * OpenSSL 3, on a context from cwharf_openssl_context_new. */
typedef struct cwharf_tls_session cwharf_tls_session;

/* Which library a context (an SSL_CTX) belongs to. */
#define CWHARF_TLS_BORINGSSL 0
#define CWHARF_TLS_OPENSSL 1

/* What the session calls return besides a byte count (reads, writes) or 0 (a finished
 * handshake). SOCKET_ERROR leaves the socket's errno in errno. */
#define CWHARF_TLS_WANT_READ (-1L)
#define CWHARF_TLS_WANT_WRITE (-2L)
#define CWHARF_TLS_CLOSED (-3L)
#define CWHARF_TLS_SOCKET_ERROR (-4L)
#define CWHARF_TLS_PROTOCOL_ERROR (-5L)

/* Chooses the context (an SSL_CTX of the session's library) for the name a client asked
 * for (NULL: none asked); NULL keeps the one the session began with. Called during the
 * handshake. */
typedef void *(*cwharf_tls_context_for_name)(void *arg, const char *name);

/* Lets sessions of this SSL_CTX switch context by SNI (their `choose`); sessions without
 * one, such as NIOSSL's on the same context, are left alone. */
void cwharf_tls_sni_install(int library, void *ssl_ctx);

/* A session accepting on `fd` with `ssl_ctx`'s settings; NULL if the library refuses (or
 * OpenSSL is not loaded). The socket stays the caller's (the session never closes it). */
cwharf_tls_session *cwharf_tls_session_accept(int library, void *ssl_ctx, int fd, cwharf_tls_context_for_name choose,
                                              void *arg);
void cwharf_tls_session_free(cwharf_tls_session *session);

/* 0 once done, else WANT_READ / WANT_WRITE (call again when the socket is ready), CLOSED
 * (the peer left), SOCKET_ERROR or PROTOCOL_ERROR. */
long cwharf_tls_session_handshake(cwharf_tls_session *session);
/* Bytes read (> 0), or WANT_READ, WANT_WRITE, CLOSED (close_notify, or TCP's end without
 * one), SOCKET_ERROR, PROTOCOL_ERROR. */
long cwharf_tls_session_read(cwharf_tls_session *session, void *buffer, size_t capacity);
/* Bytes taken (> 0; maybe fewer than `count`), or as read. After WANT_WRITE, call again with
 * the same bytes first (they may have moved). */
long cwharf_tls_session_write(cwharf_tls_session *session, const void *bytes, size_t count);
/* Why the last call gave PROTOCOL_ERROR (e.g. "NO_SHARED_CIPHER"), or NULL. */
const char *cwharf_tls_session_error(const cwharf_tls_session *session);
/* Sends close_notify if the socket takes it now; waits for nothing. */
void cwharf_tls_session_shutdown(cwharf_tls_session *session);

/* After the handshake: the wire version (0x0304: TLS 1.3), the SNI name (NULL: none), the
 * ALPN protocol (its length; 0: none) and the client's certificate as DER (its length, 0:
 * none; free `*der` with cwharf_tls_session_free_bytes). */
uint16_t cwharf_tls_session_version(const cwharf_tls_session *session);
const char *cwharf_tls_session_server_name(const cwharf_tls_session *session);
size_t cwharf_tls_session_alpn(const cwharf_tls_session *session, const uint8_t **protocol);
long cwharf_tls_session_peer_certificate(const cwharf_tls_session *session, uint8_t **der);
void cwharf_tls_session_free_bytes(const cwharf_tls_session *session, uint8_t *bytes);

/* The system's OpenSSL 3: loads libssl.so.3 on the first call (any thread; later calls
 * return at once). NULL once loaded, else why it could not be (dlerror's text). */
const char *cwharf_openssl_load(void);
/* "OpenSSL 3.0.x …" once loaded, else NULL. */
const char *cwharf_openssl_version(void);

#define CWHARF_TLS_CLIENT_AUTH_NONE 0
#define CWHARF_TLS_CLIENT_AUTH_OPTIONAL 1
#define CWHARF_TLS_CLIENT_AUTH_REQUIRE 2

/* A listener's TLS settings, as the config states them (one certificate: SNI builds one
 * context per certificate). The strings are read during the call only. */
typedef struct cwharf_openssl_settings {
    const char *certificate_file; /* PEM chain, leaf first */
    const char *key_file;         /* PEM private key */
    const char *client_ca_file;   /* NULL: no client certificates asked for */
    int client_auth;              /* CWHARF_TLS_CLIENT_AUTH_… */
    int min_version;              /* 0x0303 or 0x0304 */
    const uint8_t *alpn;          /* wire format (length-prefixed names), server preference */
    size_t alpn_length;
    int session_tickets;          /* 0: none; else the keys of cwharf_tls_tickets_configure */
} cwharf_openssl_settings;

/* An OpenSSL SSL_CTX for `settings`, or NULL with the reason in `error`. Free it with
 * cwharf_openssl_context_free once no session uses it. */
void *cwharf_openssl_context_new(const cwharf_openssl_settings *settings, char *error, size_t capacity);
void cwharf_openssl_context_free(void *ssl_ctx);

#endif
