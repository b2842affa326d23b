#include "CWharfTLS.h"
#include "tls_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The system's OpenSSL 3 (libssl.so.3), loaded at run time so the daemon neither needs its
 * headers to build nor the library to start: the relay pump's TLS sessions run on it when
 * present, because its RSA (AVX-512 IFMA where the CPU has it), SHA-512 and X25519 code is
 * faster than the BoringSSL that NIOSSL vendors on some CPUs, and it is the library nginx
 * and HAProxy use. Its symbols carry no prefix and BoringSSL's do, so the two coexist; the
 * handle is opened RTLD_LOCAL, so nothing else in the process binds to it by accident. */

typedef struct ssl_method_st SSL_METHOD;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct hmac_ctx_st HMAC_CTX;
typedef struct evp_md_st EVP_MD;
typedef struct engine_st ENGINE;
typedef struct stack_st_X509_NAME STACK_OF_X509_NAME;

typedef int (*alpn_select_function)(SSL *ssl, const uint8_t **out, uint8_t *out_length, const uint8_t *in,
                                    unsigned in_length, void *arg);

/* The functions used besides the session table's (`table` below), with OpenSSL 3.0's
 * signatures; filled by dlsym in load(). */
static struct {
    const char *(*OpenSSL_version)(int type);
    const SSL_METHOD *(*TLS_server_method)(void);
    SSL_CTX *(*SSL_CTX_new)(const SSL_METHOD *method);
    void (*SSL_CTX_free)(SSL_CTX *ctx);
    long (*SSL_CTX_ctrl)(SSL_CTX *ctx, int command, long larg, void *parg);
    long (*SSL_CTX_callback_ctrl)(SSL_CTX *ctx, int command, void (*function)(void));
    uint64_t (*SSL_CTX_set_options)(SSL_CTX *ctx, uint64_t options);
    int (*SSL_CTX_use_certificate_chain_file)(SSL_CTX *ctx, const char *file);
    int (*SSL_CTX_use_PrivateKey_file)(SSL_CTX *ctx, const char *file, int type);
    int (*SSL_CTX_check_private_key)(const SSL_CTX *ctx);
    int (*SSL_CTX_load_verify_locations)(SSL_CTX *ctx, const char *file, const char *directory);
    STACK_OF_X509_NAME *(*SSL_load_client_CA_file)(const char *file);
    void (*SSL_CTX_set_client_CA_list)(SSL_CTX *ctx, STACK_OF_X509_NAME *names);
    void (*SSL_CTX_set_verify)(SSL_CTX *ctx, int mode, void *callback);
    int (*SSL_CTX_set_num_tickets)(SSL_CTX *ctx, size_t count);
    int (*SSL_CTX_set_session_id_context)(SSL_CTX *ctx, const uint8_t *context, unsigned length);
    void (*SSL_CTX_set_alpn_select_cb)(SSL_CTX *ctx, alpn_select_function callback, void *arg);
    int (*SSL_select_next_proto)(uint8_t **out, uint8_t *out_length, const uint8_t *server, unsigned server_length,
                                 const uint8_t *client, unsigned client_length);
    long (*SSL_ctrl)(SSL *ssl, int command, long larg, void *parg);
    int (*SSL_version)(const SSL *ssl);
    int (*SSL_CTX_set_ex_data)(SSL_CTX *ctx, int index, void *data);
    unsigned long (*ERR_peek_last_error)(void);
    const char *(*ERR_reason_error_string)(unsigned long error);
    void (*CRYPTO_free)(void *pointer, const char *file, int line);
    int (*CRYPTO_get_ex_new_index)(int class_index, long argl, void *argp, void *new_function, void *dup_function,
                                   void *free_function);
    const EVP_CIPHER *(*EVP_aes_128_cbc)(void);
    const EVP_MD *(*EVP_sha256)(void);
    int (*EVP_EncryptInit_ex)(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, ENGINE *engine, const uint8_t *key,
                              const uint8_t *iv);
    int (*EVP_DecryptInit_ex)(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, ENGINE *engine, const uint8_t *key,
                              const uint8_t *iv);
    int (*HMAC_Init_ex)(HMAC_CTX *ctx, const void *key, int length, const EVP_MD *md, ENGINE *engine);
    int (*RAND_bytes)(uint8_t *bytes, int count);
    int (*CRYPTO_memcmp)(const void *a, const void *b, size_t length);
} ossl;

#define SSL_CTRL_MODE 33
#define SSL_CTRL_SET_READ_AHEAD 41
#define SSL_CTRL_SET_TLSEXT_SERVERNAME_CB 53
#define SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB 72
#define SSL_CTRL_SET_MIN_PROTO_VERSION 123
#define SSL_OP_IGNORE_UNEXPECTED_EOF (1ull << 7)
#define SSL_OP_NO_TICKET (1ull << 14)
#define SSL_OP_NO_RENEGOTIATION (1ull << 30)
#define SSL_FILETYPE_PEM 1
#define SSL_VERIFY_PEER 0x01
#define SSL_VERIFY_FAIL_IF_NO_PEER_CERT 0x02
#define OPENSSL_NPN_NEGOTIATED 1
#define CRYPTO_EX_INDEX_SSL 0
#define TLS1_3_VERSION 0x0304
#define CRYPTO_EX_INDEX_SSL_CTX 1

/* Adapters where OpenSSL's shape differs from the table's (tls_api.h). */
static void set_mode(SSL *ssl, uint32_t mode) {
    (void)ossl.SSL_ctrl(ssl, SSL_CTRL_MODE, (long)mode, NULL);
}

static const char *last_error_reason(void) {
    return ossl.ERR_reason_error_string(ossl.ERR_peek_last_error());
}

static void set_servername_callback(SSL_CTX *ctx, int (*callback)(SSL *ssl, int *alert, void *arg)) {
    (void)ossl.SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, (void (*)(void))callback);
}

static uint16_t version(const SSL *ssl) {
    return (uint16_t)ossl.SSL_version(ssl);
}

static void free_bytes(void *bytes) {
    ossl.CRYPTO_free(bytes, __FILE__, __LINE__);
}

static int new_ex_index(void) {
    return ossl.CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, NULL, NULL, NULL, NULL);
}

/* CRYPTO_EX_free: the ALPN copy goes with its context. */
static void free_alpn(void *parent, void *pointer, void *data, int index, long argl, void *argp) {
    (void)parent;
    (void)data;
    (void)index;
    (void)argl;
    (void)argp;
    free(pointer);
}

static tls_api table;
const tls_api *openssl_api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_failure[256];
/* A context's copy of its ALPN list (SSL_CTX ex_data, freed with the context). */
static int alpn_index = -1;

/* Looks `symbol` up into `field` (an entry of `ossl` or of the session table), or gives up
 * loading with the name of what is missing. */
#define RESOLVE_AS(field, symbol)                                                                                      \
    do {                                                                                                               \
        *(void **)&(field) = dlsym(handle, symbol);                                                                    \
        if ((field) == NULL) {                                                                                         \
            snprintf(load_failure, sizeof load_failure, "libssl.so.3 lacks %s", symbol);                               \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)
#define RESOLVE(name) RESOLVE_AS(ossl.name, #name)

static void load(void) {
    void *handle = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        snprintf(load_failure, sizeof load_failure, "%s", dlerror());
        return;
    }
    RESOLVE(OpenSSL_version);
    RESOLVE(TLS_server_method);
    RESOLVE(SSL_CTX_new);
    RESOLVE(SSL_CTX_free);
    RESOLVE(SSL_CTX_ctrl);
    RESOLVE(SSL_CTX_callback_ctrl);
    RESOLVE(SSL_CTX_set_options);
    RESOLVE(SSL_CTX_use_certificate_chain_file);
    RESOLVE(SSL_CTX_use_PrivateKey_file);
    RESOLVE(SSL_CTX_check_private_key);
    RESOLVE(SSL_CTX_load_verify_locations);
    RESOLVE(SSL_load_client_CA_file);
    RESOLVE(SSL_CTX_set_client_CA_list);
    RESOLVE(SSL_CTX_set_verify);
    RESOLVE(SSL_CTX_set_num_tickets);
    RESOLVE(SSL_CTX_set_session_id_context);
    RESOLVE(SSL_CTX_set_alpn_select_cb);
    RESOLVE(SSL_select_next_proto);
    RESOLVE(SSL_ctrl);
    RESOLVE(SSL_version);
    RESOLVE(SSL_CTX_set_ex_data);
    RESOLVE(ERR_peek_last_error);
    RESOLVE(ERR_reason_error_string);
    RESOLVE(CRYPTO_free);
    RESOLVE(CRYPTO_get_ex_new_index);
    RESOLVE(EVP_aes_128_cbc);
    RESOLVE(EVP_sha256);
    RESOLVE(EVP_EncryptInit_ex);
    RESOLVE(EVP_DecryptInit_ex);
    RESOLVE(HMAC_Init_ex);
    RESOLVE(RAND_bytes);
    RESOLVE(CRYPTO_memcmp);
    /* The session table: OpenSSL's own functions where their shape is the table's, the
     * adapters above where it is not. */
    RESOLVE_AS(table.ssl_new, "SSL_new");
    RESOLVE_AS(table.ssl_free, "SSL_free");
    RESOLVE_AS(table.set_fd, "SSL_set_fd");
    RESOLVE_AS(table.set_accept_state, "SSL_set_accept_state");
    RESOLVE_AS(table.do_handshake, "SSL_do_handshake");
    RESOLVE_AS(table.read, "SSL_read");
    RESOLVE_AS(table.write, "SSL_write");
    RESOLVE_AS(table.shutdown, "SSL_shutdown");
    RESOLVE_AS(table.get_error, "SSL_get_error");
    RESOLVE_AS(table.clear_errors, "ERR_clear_error");
    RESOLVE_AS(table.get_servername, "SSL_get_servername");
    RESOLVE_AS(table.set_ssl_ctx, "SSL_set_SSL_CTX");
    RESOLVE_AS(table.alpn_selected, "SSL_get0_alpn_selected");
    RESOLVE_AS(table.peer_certificate, "SSL_get1_peer_certificate");
    RESOLVE_AS(table.i2d_x509, "i2d_X509");
    RESOLVE_AS(table.x509_free, "X509_free");
    RESOLVE_AS(table.set_ex_data, "SSL_set_ex_data");
    RESOLVE_AS(table.get_ex_data, "SSL_get_ex_data");
    table.set_mode = set_mode;
    table.last_error_reason = last_error_reason;
    table.set_servername_callback = set_servername_callback;
    table.version = version;
    table.free_bytes = free_bytes;
    table.new_ex_index = new_ex_index;
    alpn_index = ossl.CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, NULL, NULL, NULL, (void *)free_alpn);
    openssl_api = &table;
}

const char *cwharf_openssl_load(void) {
    pthread_once(&load_once, load);
    return openssl_api != NULL ? NULL : load_failure;
}

const char *cwharf_openssl_version(void) {
    return openssl_api != NULL ? ossl.OpenSSL_version(0) : NULL;
}

/* Server preference, and no ALPN rather than a failed handshake when nothing matches, as
 * NIOSSL does. `arg` is the context's copy of the list: two bytes of length, then the list
 * in wire format. */
static int alpn_select(SSL *ssl, const uint8_t **out, uint8_t *out_length, const uint8_t *in, unsigned in_length,
                       void *arg) {
    (void)ssl;
    const uint8_t *server = arg;
    unsigned server_length = (unsigned)server[0] << 8 | server[1];
    uint8_t *chosen = NULL;
    if (ossl.SSL_select_next_proto(&chosen, out_length, server + 2, server_length, in, in_length) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* The keys every worker derives (tickets.c); a ticket from a BoringSSL-served worker is
 * simply unknown here, and the client does one full handshake. OpenSSL issues two TLS 1.3
 * tickets after a full handshake and, when the decrypted one is to be renewed (2), one
 * after a resumption. A TLS 1.3 client uses a ticket once, so it always gets its
 * replacement, as BoringSSL's sessions give it; a TLS 1.2 ticket is renewed only when its
 * key is the previous period's. */
static int ticket_callback(SSL *ssl, uint8_t *name, uint8_t *iv, EVP_CIPHER_CTX *cipher, HMAC_CTX *hmac,
                           int encrypt) {
    ticket_key key;
    if (encrypt) {
        if (!tickets_key(0, &key)) return 0; /* no secret yet: no ticket */
        if (ossl.RAND_bytes(iv, 16) != 1) return -1;
        memcpy(name, key.name, 16);
        if (ossl.EVP_EncryptInit_ex(cipher, ossl.EVP_aes_128_cbc(), NULL, key.aes_key, iv) != 1 ||
            ossl.HMAC_Init_ex(hmac, key.hmac_key, 16, ossl.EVP_sha256(), NULL) != 1) {
            return -1;
        }
        return 1;
    }
    for (uint64_t back = 0; back <= 1 && tickets_key(back, &key); back++) {
        if (ossl.CRYPTO_memcmp(name, key.name, 16) != 0) continue;
        if (ossl.HMAC_Init_ex(hmac, key.hmac_key, 16, ossl.EVP_sha256(), NULL) != 1 ||
            ossl.EVP_DecryptInit_ex(cipher, ossl.EVP_aes_128_cbc(), NULL, key.aes_key, iv) != 1) {
            return -1;
        }
        return back == 0 && ossl.SSL_version(ssl) < TLS1_3_VERSION ? 1 : 2;
    }
    return 0;
}

static void *fail(SSL_CTX *ctx, char *error, size_t capacity, const char *what) {
    const char *reason = last_error_reason();
    snprintf(error, capacity, "%s%s%s", what, reason != NULL ? ": " : "", reason != NULL ? reason : "");
    table.clear_errors();
    if (ctx != NULL) ossl.SSL_CTX_free(ctx);
    return NULL;
}

void *cwharf_openssl_context_new(const cwharf_openssl_settings *settings, char *error, size_t capacity) {
    if (cwharf_openssl_load() != NULL) {
        snprintf(error, capacity, "%s", load_failure);
        return NULL;
    }
    SSL_CTX *ctx = ossl.SSL_CTX_new(ossl.TLS_server_method());
    if (ctx == NULL) return fail(NULL, error, capacity, "SSL_CTX_new");
    /* A TLS end without close_notify is an ordinary end for a relay (as BoringSSL reports
     * it); no renegotiation a client could use to make the server work again. */
    ossl.SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                      (settings->session_tickets ? 0 : SSL_OP_NO_TICKET));
    /* Read what the socket has, not a record's 5-byte header and then its body: half the
     * read calls (nginx sets it too). Safe with the pump, which reads a TLS side until the
     * library says WANT_READ, so bytes read ahead never wait for an edge that will not come. */
    (void)ossl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, NULL);
    if (ossl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, settings->min_version, NULL) != 1) {
        return fail(ctx, error, capacity, "min_version");
    }
    if (ossl.SSL_CTX_use_certificate_chain_file(ctx, settings->certificate_file) != 1) {
        return fail(ctx, error, capacity, settings->certificate_file);
    }
    if (ossl.SSL_CTX_use_PrivateKey_file(ctx, settings->key_file, SSL_FILETYPE_PEM) != 1 ||
        ossl.SSL_CTX_check_private_key(ctx) != 1) {
        return fail(ctx, error, capacity, settings->key_file);
    }
    /* Sessions (cache and tickets) belong to this listener; OpenSSL refuses to resume a
     * verified session without an id context. */
    static const uint8_t id_context[] = "wharf";
    ossl.SSL_CTX_set_session_id_context(ctx, id_context, sizeof id_context - 1);
    if (settings->client_ca_file != NULL) {
        /* The names list is loaded last: once loaded it belongs to us until the context
         * takes it, and nothing can fail in between. */
        STACK_OF_X509_NAME *names = NULL;
        if (ossl.SSL_CTX_load_verify_locations(ctx, settings->client_ca_file, NULL) != 1 ||
            (names = ossl.SSL_load_client_CA_file(settings->client_ca_file)) == NULL) {
            return fail(ctx, error, capacity, settings->client_ca_file);
        }
        ossl.SSL_CTX_set_client_CA_list(ctx, names);
    }
    switch (settings->client_auth) {
    case CWHARF_TLS_CLIENT_AUTH_OPTIONAL: ossl.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); break;
    case CWHARF_TLS_CLIENT_AUTH_REQUIRE:
        ossl.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        break;
    default: break;
    }
    if (settings->alpn_length > 0 && settings->alpn_length <= 0xffff) {
        uint8_t *list = malloc(2 + settings->alpn_length);
        if (list == NULL) return fail(ctx, error, capacity, "alpn");
        list[0] = (uint8_t)(settings->alpn_length >> 8);
        list[1] = (uint8_t)settings->alpn_length;
        memcpy(list + 2, settings->alpn, settings->alpn_length);
        if (ossl.SSL_CTX_set_ex_data(ctx, alpn_index, list) != 1) {
            free(list);
            return fail(ctx, error, capacity, "alpn");
        }
        ossl.SSL_CTX_set_alpn_select_cb(ctx, alpn_select, list);
    }
    if (!settings->session_tickets) {
        /* SSL_OP_NO_TICKET alone still sends TLS 1.3 tickets, stateful ones (an id into this
         * process's cache); none at all is what the setting promises, as with BoringSSL. */
        ossl.SSL_CTX_set_num_tickets(ctx, 0);
    } else {
        (void)ossl.SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB, (void (*)(void))ticket_callback);
    }
    table.clear_errors();
    return ctx;
}

void cwharf_openssl_context_free(void *ssl_ctx) {
    if (ssl_ctx != NULL && openssl_api != NULL) ossl.SSL_CTX_free((SSL_CTX *)ssl_ctx);
}
