#include "CWharfTLS.h"
#include "tls_api.h"

#include <string.h>
#include <time.h>

/* BoringSSL as NIOSSL builds it: every symbol carries the CNIOBoringSSL_ prefix. Only the
 * functions used here are declared; the structures stay opaque. */
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct hmac_ctx_st HMAC_CTX;
typedef struct env_md_st EVP_MD;
typedef struct engine_st ENGINE;

extern int CNIOBoringSSL_SSL_CTX_set_tlsext_ticket_key_cb(
    SSL_CTX *ctx, int (*callback)(SSL *, uint8_t *, uint8_t *, EVP_CIPHER_CTX *, HMAC_CTX *, int));
extern uint32_t CNIOBoringSSL_SSL_CTX_set_options(SSL_CTX *ctx, uint32_t options);
extern const EVP_CIPHER *CNIOBoringSSL_EVP_aes_128_cbc(void);
extern const EVP_MD *CNIOBoringSSL_EVP_sha256(void);
extern int CNIOBoringSSL_EVP_EncryptInit_ex(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const uint8_t *,
                                            const uint8_t *);
extern int CNIOBoringSSL_EVP_DecryptInit_ex(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const uint8_t *,
                                            const uint8_t *);
extern int CNIOBoringSSL_HMAC_Init_ex(HMAC_CTX *, const void *, size_t, const EVP_MD *, ENGINE *);
extern uint8_t *CNIOBoringSSL_HMAC(const EVP_MD *, const void *, size_t, const uint8_t *, size_t, uint8_t *,
                                   unsigned int *);
extern int CNIOBoringSSL_RAND_bytes(uint8_t *, size_t);
extern int CNIOBoringSSL_SSL_session_reused(const SSL *ssl);
/* The last three are CRYPTO_EX_unused *, CRYPTO_EX_dup * and CRYPTO_EX_free *: all NULL here. */
extern int CNIOBoringSSL_SSL_get_ex_new_index(long argl, void *argp, int *unused, void *dup, void *free_func);
extern int CNIOBoringSSL_SSL_set_ex_data(SSL *ssl, int index, void *data);
extern void *CNIOBoringSSL_SSL_get_ex_data(const SSL *ssl, int index);
extern int CNIOBoringSSL_CRYPTO_memcmp(const void *, const void *, size_t);

#define NO_TICKET_OPTION 0x00004000u /* SSL_OP_NO_TICKET */

/* Written once before any handshake (configure), read by every loop thread after. */
static uint8_t secret[32];
static uint64_t period = 12 * 3600;
static int configured;
/* Bumped by each configure, so keys derived from an earlier secret are never reused. */
static uint64_t secret_generation;
/* Marks a connection that was issued a ticket (SSL ex_data), -1 until configured. */
static int issued_index = -1;

/* The key of period `n`: two HMACs of the secret, so nothing about the secret leaks. */
static void derive(uint64_t n, ticket_key *key) {
    uint8_t input[9], out[32];
    unsigned int length = 0;
    for (int i = 0; i < 8; i++) input[i] = (uint8_t)(n >> (8 * i));
    input[8] = 1;
    CNIOBoringSSL_HMAC(CNIOBoringSSL_EVP_sha256(), secret, sizeof secret, input, sizeof input, out, &length);
    memcpy(key->name, out, 16);
    memcpy(key->hmac_key, out + 16, 16);
    input[8] = 2;
    CNIOBoringSSL_HMAC(CNIOBoringSSL_EVP_sha256(), secret, sizeof secret, input, sizeof input, out, &length);
    memcpy(key->aes_key, out, 16);
}

/* The keys this thread derived last, one slot per period parity (the current period and
 * the one before never share a slot). A resumption asks for a key three times (the ticket
 * presented, two new ones) and each derivation is two HMACs, while a period lasts hours.
 * Per thread: the loops never share it, so there is nothing to lock. */
typedef struct cached_key {
    uint64_t period;
    uint64_t generation;
    int valid;
    ticket_key key;
} cached_key;
static _Thread_local cached_key cache[2];

static void key_for(uint64_t n, ticket_key *key) {
    cached_key *slot = &cache[n & 1];
    if (!slot->valid || slot->period != n || slot->generation != secret_generation) {
        derive(n, &slot->key);
        slot->period = n;
        slot->generation = secret_generation;
        slot->valid = 1;
    }
    *key = slot->key;
}

static uint64_t current_period(void) {
    return (uint64_t)time(NULL) / period;
}

int tickets_key(uint64_t back, ticket_key *key) {
    uint64_t now = current_period();
    if (!configured || back > now) return 0;
    key_for(now - back, key);
    return 1;
}

/* BoringSSL issues every handshake the context's number of TLS 1.3 tickets (two). OpenSSL,
 * and so nginx and HAProxy, issues two after a full handshake but one after a resumption:
 * the client replaces the ticket it used, and two after the full handshake already let it
 * open connections in parallel. Each ticket costs a session copy, a key derivation and an
 * encryption, about 5% of a resumed handshake, so Wharf does as OpenSSL does. */
static int declines_another_ticket(SSL *ssl) {
    if (issued_index < 0 || !CNIOBoringSSL_SSL_session_reused(ssl)) return 0;
    if (CNIOBoringSSL_SSL_get_ex_data(ssl, issued_index) != NULL) return 1;
    CNIOBoringSSL_SSL_set_ex_data(ssl, issued_index, (void *)1);
    return 0;
}

static int ticket_callback(SSL *ssl, uint8_t *name, uint8_t *iv, EVP_CIPHER_CTX *cipher, HMAC_CTX *hmac,
                           int encrypt) {
    ticket_key key;
    if (encrypt) {
        if (declines_another_ticket(ssl) || !tickets_key(0, &key)) return 0; /* no ticket this time */
        if (CNIOBoringSSL_RAND_bytes(iv, 16) != 1) return -1;
        memcpy(name, key.name, 16);
        if (CNIOBoringSSL_EVP_EncryptInit_ex(cipher, CNIOBoringSSL_EVP_aes_128_cbc(), NULL, key.aes_key, iv) != 1 ||
            CNIOBoringSSL_HMAC_Init_ex(hmac, key.hmac_key, 16, CNIOBoringSSL_EVP_sha256(), NULL) != 1) {
            return -1;
        }
        return 1;
    }
    /* This period's key, or the previous one's: accepted, and the ticket renewed. */
    for (uint64_t back = 0; back <= 1 && tickets_key(back, &key); back++) {
        if (CNIOBoringSSL_CRYPTO_memcmp(name, key.name, 16) != 0) continue;
        if (CNIOBoringSSL_HMAC_Init_ex(hmac, key.hmac_key, 16, CNIOBoringSSL_EVP_sha256(), NULL) != 1 ||
            CNIOBoringSSL_EVP_DecryptInit_ex(cipher, CNIOBoringSSL_EVP_aes_128_cbc(), NULL, key.aes_key, iv) != 1) {
            return -1;
        }
        return back == 0 ? 1 : 2;
    }
    return 0; /* unknown or expired (or no secret yet): a full handshake */
}

void cwharf_tls_tickets_configure(const uint8_t *key, size_t length, uint64_t period_seconds) {
    memset(secret, 0, sizeof secret);
    memcpy(secret, key, length < sizeof secret ? length : sizeof secret);
    if (period_seconds > 0) period = period_seconds;
    secret_generation++;
    if (issued_index < 0) issued_index = CNIOBoringSSL_SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    configured = 1;
}

void cwharf_tls_tickets_install(void *ssl_ctx) {
    CNIOBoringSSL_SSL_CTX_set_tlsext_ticket_key_cb((SSL_CTX *)ssl_ctx, ticket_callback);
}

void cwharf_tls_tickets_disable(void *ssl_ctx) {
    CNIOBoringSSL_SSL_CTX_set_options((SSL_CTX *)ssl_ctx, NO_TICKET_OPTION);
}
