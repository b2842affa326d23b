#include "CWharfTLS.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* BoringSSL as NIOSSL builds it (see tickets.c): the few functions a TLS session driven
 * straight on its socket needs, declared with their CNIOBoringSSL_ prefix. */
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;

extern SSL *CNIOBoringSSL_SSL_new(SSL_CTX *ctx);
extern void CNIOBoringSSL_SSL_free(SSL *ssl);
extern int CNIOBoringSSL_SSL_set_fd(SSL *ssl, int fd);
extern void CNIOBoringSSL_SSL_set_accept_state(SSL *ssl);
extern uint32_t CNIOBoringSSL_SSL_set_mode(SSL *ssl, uint32_t mode);
extern int CNIOBoringSSL_SSL_do_handshake(SSL *ssl);
extern int CNIOBoringSSL_SSL_read(SSL *ssl, void *buf, int num);
extern int CNIOBoringSSL_SSL_write(SSL *ssl, const void *buf, int num);
extern int CNIOBoringSSL_SSL_shutdown(SSL *ssl);
extern int CNIOBoringSSL_SSL_get_error(const SSL *ssl, int ret_code);
extern void CNIOBoringSSL_ERR_clear_error(void);
extern uint32_t CNIOBoringSSL_ERR_peek_last_error(void);
extern const char *CNIOBoringSSL_ERR_reason_error_string(uint32_t packed_error);
extern const char *CNIOBoringSSL_SSL_get_servername(const SSL *ssl, const int type);
extern int CNIOBoringSSL_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx,
                                                                int (*callback)(SSL *ssl, int *out_alert, void *arg));
extern SSL_CTX *CNIOBoringSSL_SSL_set_SSL_CTX(SSL *ssl, SSL_CTX *ctx);
extern uint16_t CNIOBoringSSL_SSL_version(const SSL *ssl);
extern void CNIOBoringSSL_SSL_get0_alpn_selected(const SSL *ssl, const uint8_t **out_data, unsigned *out_len);
extern X509 *CNIOBoringSSL_SSL_get_peer_certificate(const SSL *ssl);
extern int CNIOBoringSSL_i2d_X509(X509 *x509, uint8_t **outp);
extern void CNIOBoringSSL_X509_free(X509 *x509);
extern void CNIOBoringSSL_OPENSSL_free(void *ptr);
extern int CNIOBoringSSL_SSL_get_ex_new_index(long argl, void *argp, int *unused, void *dup, void *free_func);
extern int CNIOBoringSSL_SSL_set_ex_data(SSL *ssl, int index, void *data);
extern void *CNIOBoringSSL_SSL_get_ex_data(const SSL *ssl, int index);

#define SSL_ERROR_SSL 1
#define SSL_ERROR_WANT_READ 2
#define SSL_ERROR_WANT_WRITE 3
#define SSL_ERROR_SYSCALL 5
#define SSL_ERROR_ZERO_RETURN 6
#define SSL_MODE_ENABLE_PARTIAL_WRITE 0x00000001u
#define SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER 0x00000002u
#define SSL_MODE_RELEASE_BUFFERS 0x00000010u
#define TLSEXT_NAMETYPE_host_name 0
#define SSL_TLSEXT_ERR_OK 0

/* A session's server-name chooser, in its SSL's ex_data (see cwharf_tls_sni_install). */
typedef struct sni_chooser {
    cwharf_tls_context_for_name choose;
    void *arg;
} sni_chooser;
static int sni_index = -1;

static int servername_callback(SSL *ssl, int *out_alert, void *unused) {
    (void)out_alert;
    (void)unused;
    /* Sessions NIOSSL drives on the same context carry no chooser: their SNI handler
     * already picked the context before the handshake began. */
    sni_chooser *chooser = sni_index < 0 ? NULL : CNIOBoringSSL_SSL_get_ex_data(ssl, sni_index);
    if (chooser == NULL) return SSL_TLSEXT_ERR_OK;
    const char *name = CNIOBoringSSL_SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    void *context = chooser->choose(chooser->arg, name);
    if (context != NULL) CNIOBoringSSL_SSL_set_SSL_CTX(ssl, (SSL_CTX *)context);
    return SSL_TLSEXT_ERR_OK;
}

void cwharf_tls_sni_install(void *ssl_ctx) {
    if (sni_index < 0) sni_index = CNIOBoringSSL_SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    CNIOBoringSSL_SSL_CTX_set_tlsext_servername_callback((SSL_CTX *)ssl_ctx, servername_callback);
}

struct cwharf_tls_session {
    SSL *ssl;
    sni_chooser chooser;
    /* Why the last call failed with PROTOCOL_ERROR (BoringSSL's static text), or NULL. */
    const char *error;
};

cwharf_tls_session *cwharf_tls_session_accept(void *ssl_ctx, int fd, cwharf_tls_context_for_name choose, void *arg) {
    cwharf_tls_session *session = calloc(1, sizeof *session);
    if (session == NULL) return NULL;
    session->ssl = CNIOBoringSSL_SSL_new((SSL_CTX *)ssl_ctx);
    if (session->ssl == NULL || CNIOBoringSSL_SSL_set_fd(session->ssl, fd) != 1) {
        cwharf_tls_session_free(session);
        CNIOBoringSSL_ERR_clear_error();
        return NULL;
    }
    CNIOBoringSSL_SSL_set_accept_state(session->ssl);
    /* Partial writes: a full socket takes what fits, as write(2) does. Moving buffer: a
     * retried write may come from another address holding the same bytes (the relay's
     * pending buffer). Released buffers: an idle session holds no 16 KiB record buffers. */
    CNIOBoringSSL_SSL_set_mode(session->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                                 SSL_MODE_RELEASE_BUFFERS);
    if (choose != NULL && sni_index >= 0) {
        session->chooser.choose = choose;
        session->chooser.arg = arg;
        CNIOBoringSSL_SSL_set_ex_data(session->ssl, sni_index, &session->chooser);
    }
    return session;
}

void cwharf_tls_session_free(cwharf_tls_session *session) {
    if (session == NULL) return;
    if (session->ssl != NULL) CNIOBoringSSL_SSL_free(session->ssl);
    free(session);
}

/* What BoringSSL's result means for the caller; clears the thread's error queue, which
 * SSL_get_error reads, so one session's failure is never blamed on the next. */
static long outcome(cwharf_tls_session *session, int result) {
    int error = CNIOBoringSSL_SSL_get_error(session->ssl, result);
    int saved = errno;
    if (error == SSL_ERROR_SSL) session->error = CNIOBoringSSL_ERR_reason_error_string(CNIOBoringSSL_ERR_peek_last_error());
    CNIOBoringSSL_ERR_clear_error();
    switch (error) {
    case SSL_ERROR_WANT_READ: return CWHARF_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return CWHARF_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return CWHARF_TLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        /* No errno: the peer closed TCP without close_notify, an ordinary end here. */
        if (saved == 0) return CWHARF_TLS_CLOSED;
        errno = saved;
        return CWHARF_TLS_SOCKET_ERROR;
    default: return CWHARF_TLS_PROTOCOL_ERROR;
    }
}

long cwharf_tls_session_handshake(cwharf_tls_session *session) {
    errno = 0;
    int result = CNIOBoringSSL_SSL_do_handshake(session->ssl);
    if (result == 1) return 0;
    return outcome(session, result);
}

long cwharf_tls_session_read(cwharf_tls_session *session, void *buffer, size_t capacity) {
    errno = 0;
    int result = CNIOBoringSSL_SSL_read(session->ssl, buffer, capacity > INT32_MAX ? INT32_MAX : (int)capacity);
    return result > 0 ? result : outcome(session, result);
}

long cwharf_tls_session_write(cwharf_tls_session *session, const void *bytes, size_t count) {
    if (count == 0) return 0;
    errno = 0;
    int result = CNIOBoringSSL_SSL_write(session->ssl, bytes, count > INT32_MAX ? INT32_MAX : (int)count);
    return result > 0 ? result : outcome(session, result);
}

void cwharf_tls_session_shutdown(cwharf_tls_session *session) {
    /* One attempt: close_notify goes out if the socket takes it; no reply is waited for. */
    (void)CNIOBoringSSL_SSL_shutdown(session->ssl);
    CNIOBoringSSL_ERR_clear_error();
}

const char *cwharf_tls_session_error(const cwharf_tls_session *session) {
    return session->error;
}

uint16_t cwharf_tls_session_version(const cwharf_tls_session *session) {
    return CNIOBoringSSL_SSL_version(session->ssl);
}

const char *cwharf_tls_session_server_name(const cwharf_tls_session *session) {
    return CNIOBoringSSL_SSL_get_servername(session->ssl, TLSEXT_NAMETYPE_host_name);
}

size_t cwharf_tls_session_alpn(const cwharf_tls_session *session, const uint8_t **protocol) {
    unsigned length = 0;
    *protocol = NULL;
    CNIOBoringSSL_SSL_get0_alpn_selected(session->ssl, protocol, &length);
    return length;
}

long cwharf_tls_session_peer_certificate(const cwharf_tls_session *session, uint8_t **der) {
    *der = NULL;
    X509 *certificate = CNIOBoringSSL_SSL_get_peer_certificate(session->ssl);
    if (certificate == NULL) return 0;
    int length = CNIOBoringSSL_i2d_X509(certificate, der);
    CNIOBoringSSL_X509_free(certificate);
    return length;
}

void cwharf_tls_free_bytes(uint8_t *bytes) {
    CNIOBoringSSL_OPENSSL_free(bytes);
}
