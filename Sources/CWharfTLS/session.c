#include "CWharfTLS.h"
#include "tls_api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const tls_api *api_of(int library) {
    return library == CWHARF_TLS_OPENSSL ? openssl_api : &boringssl_api;
}

/* A session's server-name chooser, in its SSL's ex_data (see cwharf_tls_sni_install). Each
 * library numbers its ex_data separately: -1 until the first install. */
typedef struct sni_chooser {
    cwharf_tls_context_for_name choose;
    void *arg;
} sni_chooser;
static int sni_index[2] = {-1, -1};

static int choose_context(const tls_api *api, int index, SSL *ssl) {
    /* Sessions NIOSSL drives on the same context carry no chooser: their SNI handler
     * already picked the context before the handshake began. */
    sni_chooser *chooser = index < 0 ? NULL : api->get_ex_data(ssl, index);
    if (chooser == NULL) return SSL_TLSEXT_ERR_OK;
    const char *name = api->get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    void *context = chooser->choose(chooser->arg, name);
    if (context != NULL) api->set_ssl_ctx(ssl, (SSL_CTX *)context);
    return SSL_TLSEXT_ERR_OK;
}

static int boringssl_servername(SSL *ssl, int *alert, void *unused) {
    (void)alert;
    (void)unused;
    return choose_context(&boringssl_api, sni_index[CWHARF_TLS_BORINGSSL], ssl);
}

static int openssl_servername(SSL *ssl, int *alert, void *unused) {
    (void)alert;
    (void)unused;
    return choose_context(openssl_api, sni_index[CWHARF_TLS_OPENSSL], ssl);
}

void cwharf_tls_sni_install(int library, void *ssl_ctx) {
    const tls_api *api = api_of(library);
    if (api == NULL) return;
    if (sni_index[library] < 0) sni_index[library] = api->new_ex_index();
    api->set_servername_callback((SSL_CTX *)ssl_ctx,
                                 library == CWHARF_TLS_OPENSSL ? openssl_servername : boringssl_servername);
}

struct cwharf_tls_session {
    const tls_api *api;
    SSL *ssl;
    sni_chooser chooser;
    /* Why the last call failed with PROTOCOL_ERROR (the library's static text), or NULL. */
    const char *error;
};

cwharf_tls_session *cwharf_tls_session_accept(int library, void *ssl_ctx, int fd, cwharf_tls_context_for_name choose,
                                              void *arg) {
    const tls_api *api = api_of(library);
    if (api == NULL) return NULL;
    cwharf_tls_session *session = calloc(1, sizeof *session);
    if (session == NULL) return NULL;
    session->api = api;
    session->ssl = api->ssl_new((SSL_CTX *)ssl_ctx);
    if (session->ssl == NULL || api->set_fd(session->ssl, fd) != 1) {
        cwharf_tls_session_free(session);
        api->clear_errors();
        return NULL;
    }
    api->set_accept_state(session->ssl);
    /* Partial writes: a full socket takes what fits, as write(2) does. Moving buffer: a
     * retried write may come from another address holding the same bytes (the relay's
     * pending buffer). Released buffers: an idle session holds no 16 KiB record buffers. */
    api->set_mode(session->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                    SSL_MODE_RELEASE_BUFFERS);
    if (choose != NULL && sni_index[library] >= 0) {
        session->chooser.choose = choose;
        session->chooser.arg = arg;
        api->set_ex_data(session->ssl, sni_index[library], &session->chooser);
    }
    return session;
}

void cwharf_tls_session_free(cwharf_tls_session *session) {
    if (session == NULL) return;
    if (session->ssl != NULL) session->api->ssl_free(session->ssl);
    free(session);
}

/* What the library's result means for the caller; clears the thread's error queue, which
 * SSL_get_error reads, so one session's failure is never blamed on the next. */
static long outcome(cwharf_tls_session *session, int result) {
    const tls_api *api = session->api;
    int error = api->get_error(session->ssl, result);
    int saved = errno;
    if (error == SSL_ERROR_SSL) session->error = api->last_error_reason();
    api->clear_errors();
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
    int result = session->api->do_handshake(session->ssl);
    if (result == 1) return 0;
    return outcome(session, result);
}

long cwharf_tls_session_read(cwharf_tls_session *session, void *buffer, size_t capacity) {
    errno = 0;
    int result = session->api->read(session->ssl, buffer, capacity > INT32_MAX ? INT32_MAX : (int)capacity);
    return result > 0 ? result : outcome(session, result);
}

long cwharf_tls_session_write(cwharf_tls_session *session, const void *bytes, size_t count) {
    if (count == 0) return 0;
    errno = 0;
    int result = session->api->write(session->ssl, bytes, count > INT32_MAX ? INT32_MAX : (int)count);
    return result > 0 ? result : outcome(session, result);
}

void cwharf_tls_session_shutdown(cwharf_tls_session *session) {
    /* One attempt: close_notify goes out if the socket takes it; no reply is waited for. */
    (void)session->api->shutdown(session->ssl);
    session->api->clear_errors();
}

const char *cwharf_tls_session_error(const cwharf_tls_session *session) {
    return session->error;
}

uint16_t cwharf_tls_session_version(const cwharf_tls_session *session) {
    return session->api->version(session->ssl);
}

const char *cwharf_tls_session_server_name(const cwharf_tls_session *session) {
    return session->api->get_servername(session->ssl, TLSEXT_NAMETYPE_host_name);
}

size_t cwharf_tls_session_alpn(const cwharf_tls_session *session, const uint8_t **protocol) {
    unsigned length = 0;
    *protocol = NULL;
    session->api->alpn_selected(session->ssl, protocol, &length);
    return length;
}

long cwharf_tls_session_peer_certificate(const cwharf_tls_session *session, uint8_t **der) {
    *der = NULL;
    X509 *certificate = session->api->peer_certificate(session->ssl);
    if (certificate == NULL) return 0;
    int length = session->api->i2d_x509(certificate, der);
    session->api->x509_free(certificate);
    return length;
}

void cwharf_tls_session_free_bytes(const cwharf_tls_session *session, uint8_t *bytes) {
    if (bytes != NULL) session->api->free_bytes(bytes);
}
