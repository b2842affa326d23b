/*
 * tlsgen — loadgen's TLS twin: a single-threaded epoll load generator over OpenSSL.
 *
 *   tlsgen handshake --port P [--connections 32] [--size 64] [--duration 5] [--warmup 1]
 *                    [--resume] [--tls12]
 *   tlsgen pingpong  --port P [--connections 64] [--size 64] [--duration 5] [--warmup 1] [--tls12]
 *   tlsgen idle      --port P [--connections 2000]
 *
 * handshake: each connection does a full TLS handshake (or, with --resume, resumes the
 * session its previous connection got: a TLS 1.3 ticket or a TLS 1.2 session), one round
 * trip of `size` bytes, and closes (RST, so no TIME_WAIT); connections per second.
 * pingpong: `connections` TLS connections kept open, each sending `size` bytes and waiting
 * for the whole echo before the next; round trips per second. idle: `connections` TLS
 * connections, each served one round trip, then held open until stdin closes (it prints
 * {"ready":...} once all are open), for the server's memory per idle TLS connection.
 * Messages end in '\n', so line
 * echo servers and byte echo backends behind a proxy are measured alike. Certificates are
 * not verified (the harness makes them at run time). Prints one JSON object, with `total`
 * and `elapsed` covering the warm-up too (for the runner's CPU per operation).
 * Build: cc -O2 tlsgen.c -o tlsgen -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadtools.h"

/* ---- options ---- */
static const char *host = "127.0.0.1";
static int port = 0, connections = 32, size = 64, resume = 0, tls12 = 0;
static double duration = 5, warmup = 1;

enum state { CONNECTING, HANDSHAKING, WRITING, READING };

typedef struct conn {
    int fd;
    SSL *ssl;
    SSL_SESSION *session; /* the previous connection's, for --resume */
    enum state state;
    int received;
    uint64_t started;
} conn;

static SSL_CTX *context;
static uint8_t *message;
static int ep;

static void watch(conn *c, uint32_t events, int op) {
    struct epoll_event event = {.events = events, .data.ptr = c};
    epoll_ctl(ep, op, c->fd, &event);
}

static int start(conn *c) {
    c->fd = connect_begun(host, port);
    if (c->fd < 0) return -1;
    c->ssl = SSL_new(context);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    if (resume && c->session) SSL_set_session(c->ssl, c->session);
    c->state = CONNECTING;
    c->received = 0;
    c->started = now_ns();
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

/* Closing with SO_LINGER 0 sends RST: no TIME_WAIT, so connect-rate runs do not run out
 * of ephemeral ports. */
static void finish(conn *c) {
    if (resume) {
        if (c->session) SSL_SESSION_free(c->session);
        c->session = SSL_get1_session(c->ssl);
    }
    /* No close_notify goes out (the RST ends it), but OpenSSL must not count the session
     * as broken off, or it would refuse to resume it. */
    SSL_set_quiet_shutdown(c->ssl, 1);
    SSL_shutdown(c->ssl);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    struct linger linger = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
    SSL_free(c->ssl);
    close(c->fd);
}

/* Wants what SSL asked for; returns -1 on a real error. */
static int want(conn *c, int result) {
    int error = SSL_get_error(c->ssl, result);
    if (error == SSL_ERROR_WANT_READ) watch(c, EPOLLIN, EPOLL_CTL_MOD);
    else if (error == SSL_ERROR_WANT_WRITE) watch(c, EPOLLOUT, EPOLL_CTL_MOD);
    else return -1;
    return 0;
}

static uint8_t scratch[1 << 17];

/* Advances one connection; returns 1 when a round trip completed, 0 to wait, -1 on error. */
static int step(conn *c) {
    for (;;) {
        int result;
        switch (c->state) {
        case CONNECTING:
            c->state = HANDSHAKING;
            /* fall through */
        case HANDSHAKING:
            result = SSL_connect(c->ssl);
            if (result != 1) return want(c, result);
            c->state = WRITING;
            break;
        case WRITING:
            result = SSL_write(c->ssl, message, size);
            if (result <= 0) return want(c, result);
            c->state = READING;
            c->received = 0;
            break;
        case READING:
            result = SSL_read(c->ssl, scratch, sizeof scratch);
            if (result <= 0) return want(c, result);
            c->received += result;
            if (c->received < size) break;
            return 1;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tlsgen handshake|pingpong --port P [options]\n");
        return 64;
    }
    const char *mode = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) { resume = 1; continue; }
        if (!strcmp(argv[i], "--tls12")) { tls12 = 1; continue; }
        if (i + 1 >= argc) break;
        if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host")) host = argv[++i];
        else if (!strcmp(argv[i], "--connections")) connections = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[++i]);
        else { fprintf(stderr, "tlsgen: unknown option %s\n", argv[i]); return 64; }
    }
    int handshakes = !strcmp(mode, "handshake"), idle = !strcmp(mode, "idle");
    if (port <= 0 || connections <= 0 || size < 2 || (!handshakes && !idle && strcmp(mode, "pingpong"))) {
        fprintf(stderr, "tlsgen: need handshake|pingpong|idle, --port, connections > 0, size >= 2\n");
        return 64;
    }
    if (idle) duration = 600; /* bounded: the runner closes stdin long before */
    raise_descriptor_limit();
    message = line_message(size);
    context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    if (tls12) SSL_CTX_set_max_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_CLIENT);

    ep = epoll_create1(0);
    conn *conns = calloc((size_t)connections, sizeof *conns);
    for (int i = 0; i < connections; i++)
        if (start(&conns[i]) < 0) { perror("tlsgen: connect"); return 1; }
    uint64_t begin = now_ns(), measure_from = begin + (uint64_t)(warmup * 1e9),
             end = measure_from + (uint64_t)(duration * 1e9);
    long long done = 0, total = 0, errors = 0, counted_resumed = 0;
    struct epoll_event events[512];
    for (uint64_t t = begin; t < end; t = now_ns()) {
        int ready = epoll_wait(ep, events, 512, 100);
        for (int e = 0; e < ready; e++) {
            conn *c = events[e].data.ptr;
            int result = step(c);
            if (result == 0) continue;
            uint64_t finished = now_ns();
            if (result > 0) {
                total++;
                int reused = SSL_session_reused(c->ssl);
                if (c->started >= measure_from) {
                    done++;
                    counted_resumed += reused;
                    hist_record(finished - c->started);
                }
            } else {
                errors++;
                ERR_clear_error();
            }
            if (idle) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); /* served: now it only waits */
                if (total + errors == connections) {
                    printf("{\"ready\":true,\"connections\":%d,\"errors\":%lld}\n", connections, errors);
                    fflush(stdout);
                    while (read(0, scratch, sizeof scratch) > 0) {
                    }
                    return errors ? 2 : 0;
                }
            } else if (handshakes || result < 0) {
                finish(c);
                if (start(c) < 0) errors++;
            } else {
                c->state = WRITING;
                c->started = finished;
                watch(c, EPOLLOUT, EPOLL_CTL_MOD);
            }
        }
    }
    double elapsed = (double)(now_ns() - begin) / 1e9;
    printf("{\"mode\":\"tls-%s\",\"connections\":%d,\"size\":%d,\"seconds\":%.3f,\"completed\":%lld,"
           "\"rate\":%.1f,\"resumed\":%lld,\"p50_us\":%.1f,\"p99_us\":%.1f,\"total\":%lld,\"elapsed\":%.3f,"
           "\"errors\":%lld}\n",
           mode, connections, size, duration, done, (double)done / duration, counted_resumed,
           hist_percentile(50) / 1000, hist_percentile(99) / 1000, total, elapsed, errors);
    return errors ? 2 : 0;
}
