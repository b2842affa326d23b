/* What the load generators (loadgen.c, tlsgen.c) share: the clock, a non-blocking TCP
 * connect, and a log-linear latency histogram (~3% precision), so memory stays fixed
 * however many requests are timed. Each tool is one translation unit: plain statics. */
#ifndef WHARF_BENCH_LOADTOOLS_H
#define WHARF_BENCH_LOADTOOLS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Every descriptor the hard limit allows: a load generator holds thousands of sockets. */
static void raise_descriptor_limit(void) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
}

/* The request every connection sends: `size` bytes ending in '\n', so line echo servers and
 * byte echo backends are measured alike. */
static uint8_t *line_message(int size) {
    uint8_t *message = malloc((size_t)size);
    memset(message, 'x', (size_t)size - 1);
    message[size - 1] = '\n';
    return message;
}

/* A TCP_NODELAY socket with a connect to host:port begun (it may still be in progress);
 * -1 if the socket cannot be made or the connect fails at once. */
static int connect_begun(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &address.sin_addr);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- histogram: 2^k major buckets, 32 linear sub-buckets each ---- */
#define SUB 32
static uint64_t hist[64 * SUB];
static uint64_t hist_count;

static void hist_record(uint64_t ns) {
    if (ns == 0) ns = 1;
    int major = 63 - __builtin_clzll(ns);
    int index;
    if (major < 5) {
        index = (int)ns;
    } else {
        uint64_t sub = (ns >> (major - 5)) & (SUB - 1);
        index = (major - 4) * SUB + (int)sub;
    }
    hist[index]++;
    hist_count++;
}

static double hist_value(int index) {
    if (index < SUB) return index;
    int major = index / SUB + 4;
    uint64_t sub = (uint64_t)(index % SUB);
    return (double)(((uint64_t)SUB + sub) << (major - 5));
}

static double hist_percentile(double p) {
    if (hist_count == 0) return 0;
    uint64_t target = (uint64_t)(p / 100.0 * (double)hist_count);
    uint64_t seen = 0;
    for (int i = 0; i < 64 * SUB; i++) {
        seen += hist[i];
        if (seen > target) return hist_value(i);
    }
    return 0;
}

#endif
