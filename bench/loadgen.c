/*
 * loadgen — a single-threaded epoll load generator for line-echo servers.
 *
 *   loadgen pingpong   --port P [--connections 64] [--size 64] [--duration 5] [--warmup 1] [--count N]
 *                      [--rate R]
 *   loadgen throughput --port P [--connections 16] [--size 16384] [--duration 5] [--warmup 1]
 *   loadgen connect    --port P [--connections 32] [--duration 5] [--warmup 1] [--count N]
 *   loadgen idle       --port P [--connections 10000] [--duration 10]
 *
 * Every message is `size` bytes ending in '\n', so line-based and byte echo servers are
 * measured alike. Prints one JSON object on stdout (idle also prints {"ready":...} once all
 * connections are open and answered). Latencies go into a log-linear histogram
 * (~3% precision), so memory stays fixed however many round trips are made.
 *
 * `--rate R` makes ping-pong open-loop: R requests a second in all, each connection sending
 * on its own fixed schedule, and a request's latency counts from when it was due, not from
 * when it went out, so a server that falls behind is charged for the wait it caused
 * (no coordinated omission). `total` and `elapsed` cover the warm-up too, for the runner's
 * CPU-per-operation figure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
static int port = 0, connections = 64, size = 64;
static double duration = 5, warmup = 1;
static long long count_limit = 0;
static double rate = 0;

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int open_connection(int nonblocking_connect) {
    int fd = connect_begun(host, port);
    if (fd < 0) return -1;
    if (!nonblocking_connect) {
        /* Wait for the handshake so every connection is established before measuring. */
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        struct sockaddr_in peer;
        socklen_t length = sizeof peer;
        for (int tries = 0; getpeername(fd, (struct sockaddr *)&peer, &length) < 0; tries++) {
            if (tries > 5000) { close(fd); return -1; }
            usleep(1000);
        }
        fcntl(fd, F_SETFL, flags);
    }
    return fd;
}

/* Closing with SO_LINGER 0 sends RST: no TIME_WAIT, so connect-rate runs do not run out
 * of ephemeral ports. */
static void close_reset(int fd) {
    struct linger linger = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
    close(fd);
}

typedef struct conn {
    int fd;
    size_t sent, received;
    uint64_t started;
    int state;
} conn;

static uint8_t *message;
static uint8_t scratch[1 << 17];

static int send_all(int fd, const uint8_t *data, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL);
        if (n > 0) { done += (size_t)n; continue; }
        if (n < 0 && errno == EAGAIN) { usleep(50); continue; }
        return -1;
    }
    return 0;
}

static int run_pingpong(void) {
    int ep = epoll_create1(0);
    conn *conns = calloc((size_t)connections, sizeof *conns);
    for (int i = 0; i < connections; i++) {
        conns[i].fd = open_connection(0);
        if (conns[i].fd < 0) die("connect");
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &event);
    }
    uint64_t start = now_ns(), measure_from = start + (uint64_t)(warmup * 1e9),
             end = measure_from + (uint64_t)(duration * 1e9);
    /* Open loop: connection i is due every `interval`, its schedule offset by i/connections. */
    uint64_t interval = rate > 0 ? (uint64_t)((double)connections * 1e9 / rate) : 0;
    for (int i = 0; i < connections; i++) {
        conns[i].started = start + (interval * (uint64_t)i) / (uint64_t)connections;
        conns[i].state = 1; /* 1: waiting to send at `started`; 0: waiting for the echo */
    }
    long long trips = 0, total = 0, errors = 0;
    struct epoll_event events[512];
    for (uint64_t t = now_ns(); count_limit ? trips < count_limit : t < end; t = now_ns()) {
        if (count_limit && t > start + 600000000000ull) break;
        uint64_t next_due = UINT64_MAX;
        /* Closed loop: only the first pass sends here; an echo's arrival sends the next. */
        for (int i = 0; i < connections && (interval || total == 0); i++) {
            conn *c = &conns[i];
            if (c->state != 1) continue;
            if (interval == 0 || c->started <= t) {
                if (interval == 0) c->started = t;
                c->state = 0;
                c->received = 0;
                if (send_all(c->fd, message, (size_t)size) < 0) errors++;
            } else if (c->started < next_due) {
                next_due = c->started;
            }
        }
        struct timespec wait = {0, 100000000};
        if (next_due != UINT64_MAX) {
            uint64_t gap = next_due > t ? next_due - t : 0;
            wait.tv_sec = (time_t)(gap / 1000000000ull);
            wait.tv_nsec = (long)(gap % 1000000000ull);
        }
        int ready = epoll_pwait2(ep, events, 512, &wait, NULL);
        for (int e = 0; e < ready; e++) {
            conn *c = events[e].data.ptr;
            ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
            if (n <= 0) {
                if (n < 0 && errno == EAGAIN) continue;
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            c->received += (size_t)n;
            if (c->received < (size_t)size) continue;
            uint64_t finished = now_ns();
            total++;
            if (c->started >= measure_from) {
                hist_record(finished - c->started);
                trips++;
            }
            if (interval) {
                c->state = 1;
                c->started += interval;
            } else {
                c->received = 0;
                c->started = finished;
                if (send_all(c->fd, message, (size_t)size) < 0) errors++;
            }
        }
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    if (count_limit) duration = (double)(now_ns() - measure_from) / 1e9;
    printf("{\"mode\":\"pingpong\",\"connections\":%d,\"size\":%d,\"rate\":%.0f,\"seconds\":%.3f,"
           "\"round_trips\":%lld,\"rps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"total\":%lld,\"elapsed\":%.3f,\"errors\":%lld}\n",
           connections, size, rate, duration, trips, (double)trips / duration, hist_percentile(50) / 1000,
           hist_percentile(99) / 1000, hist_percentile(99.9) / 1000, total, elapsed, errors);
    return errors ? 2 : 0;
}

static int run_throughput(void) {
    const size_t window = (size_t)size * 8;
    int ep = epoll_create1(0);
    conn *conns = calloc((size_t)connections, sizeof *conns);
    for (int i = 0; i < connections; i++) {
        conns[i].fd = open_connection(0);
        if (conns[i].fd < 0) die("connect");
        struct epoll_event event = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &event);
    }
    uint64_t start = now_ns(), measure_from = start + (uint64_t)(warmup * 1e9),
             end = measure_from + (uint64_t)(duration * 1e9);
    long long bytes_out = 0, bytes_in = 0, errors = 0;
    struct epoll_event events[512];
    for (uint64_t t = start; t < end; t = now_ns()) {
        int measuring = t >= measure_from;
        int ready = epoll_wait(ep, events, 512, 100);
        for (int e = 0; e < ready; e++) {
            conn *c = events[e].data.ptr;
            if (events[e].events & EPOLLIN) {
                ssize_t n;
                while ((n = recv(c->fd, scratch, sizeof scratch, 0)) > 0) {
                    c->received += (size_t)n;
                    if (measuring) bytes_in += n;
                }
                if (n == 0 || (n < 0 && errno != EAGAIN)) {
                    errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    continue;
                }
            }
            /* Keep at most `window` bytes in flight: the server echoes, and we read back. */
            while (c->sent - c->received < window) {
                size_t offset = c->sent % (size_t)size;
                ssize_t n = send(c->fd, message + offset, (size_t)size - offset, MSG_NOSIGNAL);
                if (n <= 0) break;
                c->sent += (size_t)n;
                if (measuring) bytes_out += n;
            }
            struct epoll_event event = {.events = EPOLLIN | (c->sent - c->received < window ? EPOLLOUT : 0),
                                        .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &event);
        }
    }
    printf("{\"mode\":\"throughput\",\"connections\":%d,\"size\":%d,\"seconds\":%.3f,\"mb_out\":%.1f,"
           "\"mb_in\":%.1f,\"mbps_out\":%.1f,\"mbps_in\":%.1f,\"errors\":%lld}\n",
           connections, size, duration, bytes_out / 1e6, bytes_in / 1e6, bytes_out / 1e6 / duration,
           bytes_in / 1e6 / duration, errors);
    return errors ? 2 : 0;
}

static int run_connect(void) {
    static const uint8_t ping[] = "ping\n";
    int ep = epoll_create1(0);
    conn *conns = calloc((size_t)connections, sizeof *conns);
    long long done = 0, measured = 0, errors = 0;
    uint64_t start = now_ns(), measure_from = start + (uint64_t)(warmup * 1e9),
             end = measure_from + (uint64_t)(duration * 1e9);
    for (int i = 0; i < connections; i++) {
        conns[i].started = now_ns();
        conns[i].fd = open_connection(1);
        if (conns[i].fd < 0) die("connect");
        struct epoll_event event = {.events = EPOLLOUT, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &event);
    }
    struct epoll_event events[512];
    uint64_t t = start;
    while ((count_limit ? done < count_limit : t < end) && t < start + 600000000000ull) {
        int ready = epoll_wait(ep, events, 512, 100);
        t = now_ns();
        for (int e = 0; e < ready; e++) {
            conn *c = events[e].data.ptr;
            int failed = 0;
            if (c->state == 0) {
                int error = 0;
                socklen_t length = sizeof error;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length);
                if (error || send(c->fd, ping, 5, MSG_NOSIGNAL) != 5) {
                    failed = 1;
                } else {
                    c->state = 1;
                    c->received = 0;
                    struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &event);
                    continue;
                }
            } else {
                ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
                if (n < 0 && errno == EAGAIN) continue;
                if (n <= 0) failed = 1;
                else if ((c->received += (size_t)n) < 5) continue;
            }
            if (failed) errors++;
            else {
                done++;
                if (c->started >= measure_from) {
                    measured++;
                    hist_record(t - c->started);
                }
            }
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close_reset(c->fd);
            c->started = now_ns();
            c->fd = open_connection(1);
            c->state = 0;
            if (c->fd < 0) { errors++; continue; }
            struct epoll_event event = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &event);
        }
    }
    double seconds = count_limit ? (double)(t - start) / 1e9 : duration;
    long long counted = count_limit ? done : measured;
    /* A cycle is connect + one round trip + close, timed from socket() to the echo. */
    printf("{\"mode\":\"connect\",\"connections\":%d,\"seconds\":%.3f,\"completed\":%lld,\"cps\":%.1f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"total\":%lld,\"elapsed\":%.3f,\"errors\":%lld}\n",
           connections, seconds, counted, (double)counted / seconds, hist_percentile(50) / 1000,
           hist_percentile(99) / 1000, done, (double)(now_ns() - start) / 1e9, errors);
    return errors ? 2 : 0;
}

static int run_idle(void) {
    int *fds = calloc((size_t)connections, sizeof *fds);
    long long errors = 0;
    static const uint8_t hello[] = "hello\n";
    for (int i = 0; i < connections; i++) {
        fds[i] = open_connection(0);
        if (fds[i] < 0) { errors++; continue; }
        /* One round trip each: every connection is really being served, not just queued. */
        if (send_all(fds[i], hello, 6) < 0) { errors++; continue; }
        size_t got = 0;
        uint64_t deadline = now_ns() + 5000000000ull;
        while (got < 6 && now_ns() < deadline) {
            ssize_t n = recv(fds[i], scratch, sizeof scratch, 0);
            if (n > 0) got += (size_t)n;
            else if (n == 0 || errno != EAGAIN) break;
            else usleep(100);
        }
        if (got < 6) errors++;
    }
    printf("{\"ready\":true,\"connections\":%d,\"errors\":%lld}\n", connections, errors);
    fflush(stdout);
    /* Hold them until the runner closes our stdin (or the duration passes). */
    uint64_t end = now_ns() + (uint64_t)(duration * 1e9);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    while (now_ns() < end) {
        char byte;
        ssize_t n = read(0, &byte, 1);
        if (n == 0) break;
        usleep(20000);
    }
    for (int i = 0; i < connections; i++) if (fds[i] >= 0) close(fds[i]);
    printf("{\"mode\":\"idle\",\"connections\":%d,\"errors\":%lld}\n", connections, errors);
    return errors ? 2 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: loadgen pingpong|throughput|connect|idle --port P [options]\n");
        return 64;
    }
    const char *mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--connections")) connections = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--count")) count_limit = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else { fprintf(stderr, "loadgen: unknown option %s\n", argv[i]); return 64; }
    }
    if (port <= 0 || connections <= 0 || size < 2) {
        fprintf(stderr, "loadgen: need --port, connections > 0, size >= 2\n");
        return 64;
    }
    raise_descriptor_limit();
    message = line_message(size);
    if (!strcmp(mode, "pingpong")) return run_pingpong();
    if (!strcmp(mode, "throughput")) return run_throughput();
    if (!strcmp(mode, "connect")) return run_connect();
    if (!strcmp(mode, "idle")) return run_idle();
    fprintf(stderr, "loadgen: unknown mode %s\n", mode);
    return 64;
}
