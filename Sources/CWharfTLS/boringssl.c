#include "tls_api.h"

/* BoringSSL as NIOSSL builds it (see tickets.c): every symbol carries the CNIOBoringSSL_
 * prefix, so it never clashes with a system OpenSSL loaded beside it. */
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
/* The last three are CRYPTO_EX_unused *, CRYPTO_EX_dup * and CRYPTO_EX_free *: all NULL here. */
extern int CNIOBoringSSL_SSL_get_ex_new_index(long argl, void *argp, int *unused, void *dup, void *free_func);
extern int CNIOBoringSSL_SSL_set_ex_data(SSL *ssl, int index, void *data);
extern void *CNIOBoringSSL_SSL_get_ex_data(const SSL *ssl, int index);

static void set_mode(SSL *ssl, uint32_t mode) {
    (void)CNIOBoringSSL_SSL_set_mode(ssl, mode);
}

static const char *last_error_reason(void) {
    return CNIOBoringSSL_ERR_reason_error_string(CNIOBoringSSL_ERR_peek_last_error());
}

static void set_servername_callback(SSL_CTX *ctx, int (*callback)(SSL *ssl, int *alert, void *arg)) {
    (void)CNIOBoringSSL_SSL_CTX_set_tlsext_servername_callback(ctx, callback);
}

static int new_ex_index(void) {
    return CNIOBoringSSL_SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

const tls_api boringssl_api = {
    .ssl_new = CNIOBoringSSL_SSL_new,
    .ssl_free = CNIOBoringSSL_SSL_free,
    .set_fd = CNIOBoringSSL_SSL_set_fd,
    .set_accept_state = CNIOBoringSSL_SSL_set_accept_state,
    .set_mode = set_mode,
    .do_handshake = CNIOBoringSSL_SSL_do_handshake,
    .read = CNIOBoringSSL_SSL_read,
    .write = CNIOBoringSSL_SSL_write,
    .shutdown = CNIOBoringSSL_SSL_shutdown,
    .get_error = CNIOBoringSSL_SSL_get_error,
    .clear_errors = CNIOBoringSSL_ERR_clear_error,
    .last_error_reason = last_error_reason,
    .get_servername = CNIOBoringSSL_SSL_get_servername,
    .set_ssl_ctx = CNIOBoringSSL_SSL_set_SSL_CTX,
    .set_servername_callback = set_servername_callback,
    .version = CNIOBoringSSL_SSL_version,
    .alpn_selected = CNIOBoringSSL_SSL_get0_alpn_selected,
    .peer_certificate = CNIOBoringSSL_SSL_get_peer_certificate,
    .i2d_x509 = CNIOBoringSSL_i2d_X509,
    .x509_free = CNIOBoringSSL_X509_free,
    .free_bytes = CNIOBoringSSL_OPENSSL_free,
    .new_ex_index = new_ex_index,
    .set_ex_data = CNIOBoringSSL_SSL_set_ex_data,
    .get_ex_data = CNIOBoringSSL_SSL_get_ex_data,
};
