/* The functions a TLS session on a socket needs (session.c), from whichever library runs
 * it: BoringSSL as NIOSSL links it (boringssl.c) or the system's OpenSSL 3, loaded at run
 * time (openssl.c). Both speak the OpenSSL API, so session.c is written once against this
 * table; entries whose shape differs between the two (a macro in one, another integer
 * width in the other) are small adapters. Private to CWharfTLS. */
#ifndef CWHARF_TLS_API_H
#define CWHARF_TLS_API_H

#include <stddef.h>
#include <stdint.h>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;

typedef struct tls_api {
    SSL *(*ssl_new)(SSL_CTX *ctx);
    void (*ssl_free)(SSL *ssl);
    int (*set_fd)(SSL *ssl, int fd);
    void (*set_accept_state)(SSL *ssl);
    void (*set_mode)(SSL *ssl, uint32_t mode);
    int (*do_handshake)(SSL *ssl);
    int (*read)(SSL *ssl, void *buffer, int count);
    int (*write)(SSL *ssl, const void *bytes, int count);
    int (*shutdown)(SSL *ssl);
    int (*get_error)(const SSL *ssl, int result);
    void (*clear_errors)(void);
    /* The reason of the thread's last queued error (static text), or NULL. */
    const char *(*last_error_reason)(void);
    const char *(*get_servername)(const SSL *ssl, int type);
    SSL_CTX *(*set_ssl_ctx)(SSL *ssl, SSL_CTX *ctx);
    void (*set_servername_callback)(SSL_CTX *ctx, int (*callback)(SSL *ssl, int *alert, void *arg));
    uint16_t (*version)(const SSL *ssl);
    void (*alpn_selected)(const SSL *ssl, const uint8_t **data, unsigned *length);
    /* The peer's certificate, owned by the caller (X509_free). */
    X509 *(*peer_certificate)(const SSL *ssl);
    int (*i2d_x509)(X509 *x509, uint8_t **out);
    void (*x509_free)(X509 *x509);
    void (*free_bytes)(void *bytes);
    int (*new_ex_index)(void);
    int (*set_ex_data)(SSL *ssl, int index, void *data);
    void *(*get_ex_data)(const SSL *ssl, int index);
} tls_api;

/* The two tables. openssl_api is NULL until cwharf_openssl_load succeeded. */
extern const tls_api boringssl_api;
extern const tls_api *openssl_api;

/* Shared by both libraries' ticket callbacks (tickets.c): the ticket key of the period that
 * was current `back` periods ago (0: now). Returns 0 if no secret is configured. */
typedef struct ticket_key {
    uint8_t name[16];
    uint8_t hmac_key[16];
    uint8_t aes_key[16];
} ticket_key;
int tickets_key(uint64_t back, ticket_key *key);

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
#define SSL_TLSEXT_ERR_NOACK 3

#endif
