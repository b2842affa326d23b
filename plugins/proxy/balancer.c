/* Choosing an upstream: round robin, least connections or "power of two random choices",
 * with passive health (an upstream whose connect failed is skipped for fail_timeout_ms
 * unless nothing healthy is left, as nginx's max_fails/fail_timeout). */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "proxy.h"

uint64_t monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static uint64_t next_random(uint64_t *state) { /* xorshift64*: statistical spread, not security */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Bit i set: members[i] may be picked in this round. */
static uint64_t candidates(const upstream_pool *pool, uint64_t tried, uint64_t now_ms) {
    uint64_t untried = 0, healthy = 0;
    for (size_t i = 0; i < pool->count; i++) {
        if (tried & (1ULL << i)) continue;
        untried |= 1ULL << i;
        if (pool->members[i].failed_until_ms <= now_ms) healthy |= 1ULL << i;
    }
    return healthy != 0 ? healthy : untried;
}

static size_t nth_set_bit(uint64_t bits, size_t n) {
    for (size_t i = 0; i < 64; i++) {
        if ((bits & (1ULL << i)) && n-- == 0) return i;
    }
    return 0;
}

int balancer_has_untried(const upstream_pool *pool, uint64_t tried) {
    uint64_t all = pool->count >= 64 ? UINT64_MAX : (1ULL << pool->count) - 1;
    return (all & ~tried) != 0;
}

upstream *balancer_pick(upstream_pool *pool, balance_method method, uint64_t tried, uint64_t now_ms,
                        uint64_t *random_state) {
    uint64_t allowed = candidates(pool, tried, now_ms);
    if (allowed == 0) return NULL;
    size_t count = (size_t)__builtin_popcountll(allowed);
    size_t chosen = 0;
    switch (method) {
    case BALANCE_ROUND_ROBIN:
    case BALANCE_LEAST_CONNECTIONS: {
        /* Start after the cursor so ties (and round robin) rotate. */
        size_t best = SIZE_MAX;
        for (size_t step = 0; step < pool->count; step++) {
            size_t i = (pool->cursor + step) % pool->count;
            if (!(allowed & (1ULL << i))) continue;
            if (method == BALANCE_ROUND_ROBIN) { best = i; break; }
            if (best == SIZE_MAX || pool->members[i].active < pool->members[best].active) best = i;
        }
        chosen = best;
        pool->cursor = (chosen + 1) % pool->count;
        break;
    }
    case BALANCE_RANDOM_TWO: {
        size_t first = nth_set_bit(allowed, (size_t)(next_random(random_state) % count));
        chosen = first;
        if (count > 1) {
            uint64_t others = allowed & ~(1ULL << first);
            size_t second = nth_set_bit(others, (size_t)(next_random(random_state) % (count - 1)));
            if (pool->members[second].active < pool->members[first].active) chosen = second;
        }
        break;
    }
    }
    return &pool->members[chosen];
}
