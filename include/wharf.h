/*
 * wharf.h — the Wharf plugin ABI, version 1.7.
 *
 * Version history (each addition is marked [1.x] where it is declared):
 *   1.0  streams: reads, writes, close, contexts, info, regex, wakers
 *   1.1  connect (outgoing streams) and relay
 *   1.2  TLS (listener termination, start_tls, upstream TLS), PROXY protocol facts
 *   1.3  timers (timer_start, timer_cancel), per-read deadlines (set_read_timeout),
 *        distinct codes for a relayed stream, a stream not idle, and the listener's
 *        idle, read and lifetime timeouts
 *   1.4  plugin metrics (metric_register, metric_add, metric_set, metric_observe), shown
 *        under the admin endpoint's /metrics; WHARF_E_WRITE_FULL (max_write_buffer_size)
 *   1.5  loop-level work: init receives a wharf_loop (loop_post, loop_timer_start,
 *        loop_connect), and upstream connection pools (pool_create, pool_acquire,
 *        pool_release, pool_destroy); host-declared plugin config (the descriptor's
 *        config_schema, and config_integer, config_string, config_host_port,
 *        config_list_count, config_list_item, config_map_count, config_map_entry);
 *        WHARF_E_ABSENT
 *   1.6  connect_relay: connect a client's upstream and relay the two in one call, with no
 *        upstream stream (the host's fastest path for an L4 proxy)
 *   1.7  the descriptor's flags: WHARF_PLUGIN_RELAYS_AT_ONCE lets the host accept a
 *        connection without building its event-loop channel first
 *
 * This header is the whole contract between the Wharf daemon (the "host") and a plugin.
 * A plugin is a shared library that includes this file, exports one symbol and links
 * against nothing of Wharf:
 *
 *     cc -std=c11 -shared -fPIC -fvisibility=hidden -Iinclude myplugin.c -o libmyplugin.so
 *
 * ---------------------------------------------------------------------------------------
 * THE MODEL
 *
 * Loading. The host dlopen()s the library (RTLD_NOW | RTLD_LOCAL) and calls the entry
 * function WHARF_PLUGIN_ENTRY ("wharf_plugin_v1"), which returns a static descriptor.
 * No other symbol is looked up. A future incompatible ABI gets a new entry symbol.
 *
 * Instances and threads. The host runs N event loops ("workers"). A configured plugin
 * instance is created ONCE PER EVENT LOOP: init() is called N times, each call receiving
 * its loop index, and each returned instance state is used by exactly one loop thread.
 * Every handle_stream() for that instance and every callback about its streams runs on
 * that loop's thread, one at a time. So plugin state reached only through the instance
 * pointer needs no locks, whatever the worker count. Static (global) variables are shared
 * by all loops and must be thread-safe. init() and shutdown() run on the host's control
 * thread, never while any callback of that instance runs.
 *
 * Streams. A wharf_stream is a host-owned handle for one TCP connection. Its life:
 *
 *     handle_stream ─► reads / writes (one pending read at a time) ─► close notification
 *
 * Exactly one close notification is delivered per stream (peer close, local close, error,
 * host shutdown), after every pending read and write callback has been called. It is the
 * last callback that mentions the handle; when it returns, the host calls the context
 * destructor (wharf_host_api.set_context) and the handle is dead. A dead handle passed to
 * any host function yields WHARF_E_CLOSED: it is never a use-after-free.
 *
 * Completion. Every operation that returns WHARF_OK completes exactly once, through its
 * callback, on the stream's loop, and never inside the call that started it (so a plugin
 * that loops read -> callback -> read over pipelined data cannot recurse). An operation
 * that returns an error code did not start and its callback is never called.
 *
 * Memory. Data handed to a read callback is borrowed: the pointer is valid only until the
 * callback returns. write() copies the bytes before it returns. Strings passed to the
 * host are (pointer, length) pairs and need not be NUL-terminated unless stated.
 *
 * Socket reads. The host reads the socket only while a read is pending and unsatisfied
 * (or, with nothing pending, to notice a peer close on an empty buffer); otherwise unread
 * data stays in the kernel and TCP throttles the sender. Each socket read is at most the
 * listener's read_chunk_size (64 KiB); with fixed_read_chunks every read asks for exactly
 * that, as Tornado does, so read_bytes(n, partial) chunking matches Tornado's. By default
 * reads start at 2 KiB and grow while the peer keeps them full (idle connections then
 * hold ~2 KiB instead of 64). Delimiter and pattern reads are unaffected either way.
 *
 * End of input. When the peer shuts down its sending side (FIN), the stream does not close
 * at once: data already buffered stays readable and writes keep working, so a client that
 * half-closes after its last request still gets every reply. The first read that the
 * buffer cannot satisfy completes with WHARF_E_CLOSED, and the stream then closes
 * gracefully (pending writes are flushed first).
 *
 * TLS and PROXY headers [1.2]. A listener configured with `tls:` or `proxy_protocol:
 * accept` finishes the handshake and reads the header before handle_stream is called (a
 * connection that fails either, or stays silent past handshake_timeout_ms, never reaches
 * the plugin). Plugins always read and write plaintext; get_info shows the TLS facts and
 * the client address the header announced.
 *
 * Time [1.3]. Every listener bounds its connections (see etc/wharf.example.yaml):
 * idle_timeout_ms (no byte either way), read_timeout_ms (a message that began arriving
 * and did not complete: the slowloris guard; waiting for a message that has not begun is
 * idle time, not a slow read), max_lifetime_ms, and TCP keepalive for peers that vanish.
 * Each closes only its own connection: a pending read fails with the reason, then the
 * close notification carries it (WHARF_E_IDLE_TIMEOUT, WHARF_E_READ_TIMEOUT,
 * WHARF_E_LIFETIME), and the host logs it. Relayed pairs keep these limits too, and an
 * outgoing stream (connect) inherits its origin's. A plugin has timers (timer_start, like
 * IOLoop.call_later) that belong to a stream and die with it, and may put a deadline on its
 * own reads (set_read_timeout, like gen.with_timeout): such a read fails with
 * WHARF_E_TIMEOUT and leaves the stream open.
 *
 * Loop-level work [1.5]. Health checks, warm pools and periodic tasks belong to no client
 * connection. init() receives a wharf_loop: this instance's place on its event loop. With it
 * a plugin starts timers (loop_timer_start), opens connections (loop_connect) and keeps
 * connection pools (pool_create) that are not tied to a client stream, and gets back onto
 * the loop from any thread (loop_post). Their callbacks run on the loop, like every stream
 * callback of the instance, so they share its state without locks. Lifetime: loop-level
 * work lives as long as the instance. A draining instance (SIGTERM, or a reload that
 * retired its worker) keeps it while its client connections finish. Client connections
 * alone decide when the drain is over; loop-level streams never hold it up. Then the host
 * ends the loop-level work before shutdown() is called:
 *   - pools are destroyed, and waiting acquires fail with WHARF_E_SHUTDOWN;
 *   - loop-level timers complete with WHARF_E_SHUTDOWN;
 *   - loop-level streams, pooled or not, are closed, and their close notifications carry
 *     WHARF_E_SHUTDOWN.
 *
 * Thread safety of host functions. Functions marked [any thread] may be called from any
 * thread at any time. All others are [loop]: they must be called on the stream's loop
 * (from a callback, handle_stream, or a function posted with waker_post). Called from
 * another thread they return WHARF_E_WRONG_THREAD and do nothing.
 *
 * Struct evolution. Every struct that crosses the boundary starts with a uint32_t
 * struct_size and only ever grows at the end. Readers use min(declared, known) and treat
 * missing fields as zero. Fields use fixed-width integers: no C enums, bitfields, packing
 * or varargs. New host functions are appended to wharf_host_api and announced by a minor
 * version bump; a plugin built against a newer minor checks for them with WHARF_HOST_HAS.
 * ---------------------------------------------------------------------------------------
 */
#ifndef WHARF_H
#define WHARF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WHARF_ABI_MAJOR 1
#define WHARF_ABI_MINOR 7 /* see the version history at the top */

/* The one symbol a plugin exports. Its type is wharf_plugin_entry_fn. */
#define WHARF_PLUGIN_ENTRY wharf_plugin_v1
#define WHARF_PLUGIN_ENTRY_SYMBOL "wharf_plugin_v1"

/* Marks the entry function as exported even when the plugin builds with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define WHARF_EXPORT __attribute__((visibility("default")))
#else
#define WHARF_EXPORT
#endif

/* ---- Status codes ----------------------------------------------------------------------
 * 0 is success; errors are negative. wharf_host_api.strerror() names each one. Plugins
 * must treat unknown negative values as generic failures (new codes may be added). */
#define WHARF_OK 0
#define WHARF_E_CLOSED (-1)       /* the stream is closed (or closing), or the handle is dead */
#define WHARF_E_BUSY (-2)         /* a read is already pending on this stream (before 1.3 also
                                   * what WHARF_E_RELAYED and WHARF_E_NOT_IDLE now say) */
#define WHARF_E_LIMIT (-3)        /* a read's max_bytes was exceeded; the stream is being closed */
#define WHARF_E_BUFFER_FULL (-4)  /* max_buffer_size reached with the read unsatisfied; closing */
#define WHARF_E_INVALID (-5)      /* a bad argument (NULL pointer, zero-length delimiter...) */
#define WHARF_E_WRONG_THREAD (-6) /* a [loop] function was called off the stream's loop */
#define WHARF_E_NOMEM (-7)        /* an allocation failed */
#define WHARF_E_RESET (-8)        /* the peer reset the connection */
#define WHARF_E_IO (-9)           /* another socket error */
#define WHARF_E_UNSUPPORTED (-10) /* the host does not support this (e.g. a regex feature) */
#define WHARF_E_TIMEOUT (-11)     /* a deadline passed */
#define WHARF_E_SHUTDOWN (-12)    /* the host is shutting down */
#define WHARF_E_REFUSED (-13)     /* connect: the peer refused (no one listening) */
#define WHARF_E_RESOLVE (-14)     /* connect: the host name did not resolve */
#define WHARF_E_UNREACHABLE (-15) /* connect: no route to the host or network */
#define WHARF_E_TLS (-16)         /* TLS handshake failed (the host logs the reason) [1.2] */
/* [1.3] A plugin built against 1.2 or older never receives these: it gets WHARF_E_BUSY for
 * the first two and WHARF_E_TIMEOUT for the three timeouts, as its header documented. */
#define WHARF_E_RELAYED (-17)      /* the stream is relayed: the relay owns its reads and writes */
#define WHARF_E_NOT_IDLE (-18)     /* start_tls: something is pending, buffered or unsent */
#define WHARF_E_IDLE_TIMEOUT (-19) /* closed: no byte either way for the listener's idle_timeout_ms */
#define WHARF_E_READ_TIMEOUT (-20) /* closed: a message began and did not complete within the
                                    * listener's read_timeout_ms (slowloris guard) */
#define WHARF_E_LIFETIME (-21)     /* closed: the listener's max_lifetime_ms passed */
#define WHARF_E_CANCELLED (-22)    /* a timer was cancelled (timer_cancel) */
/* [1.4] A plugin built against 1.3 or older gets WHARF_E_BUFFER_FULL instead. */
#define WHARF_E_WRITE_FULL (-23)   /* a write would leave more than the listener's
                                    * max_write_buffer_size unsent; the stream is closing */
#define WHARF_E_ABSENT (-24)       /* config_*: an optional key without a default was not given [1.5] */

/* ---- Log levels (for wharf_host_api.log) ------------------------------------------------ */
#define WHARF_LOG_TRACE 0
#define WHARF_LOG_DEBUG 1
#define WHARF_LOG_INFO 2
#define WHARF_LOG_WARNING 3
#define WHARF_LOG_ERROR 4

/* ---- Opaque handles (host-owned) ------------------------------------------------------- */
typedef struct wharf_stream wharf_stream;     /* one connection; see THE MODEL above */
typedef struct wharf_instance wharf_instance; /* identifies a plugin instance for logging */
typedef struct wharf_regex wharf_regex;       /* a compiled pattern, see regex_compile */
typedef struct wharf_waker wharf_waker;       /* posts work onto a stream's loop from any thread */
typedef struct wharf_timer wharf_timer;       /* a pending timer_start [1.3] */
typedef struct wharf_metric wharf_metric;     /* a plugin's counter, gauge or histogram [1.4] */
typedef struct wharf_loop wharf_loop;         /* an instance's place on its event loop [1.5] */
typedef struct wharf_pool wharf_pool;         /* a pool of upstream connections [1.5] */

/* ---- Callback types --------------------------------------------------------------------
 * Every callback receives the userdata pointer given when the operation started. */

/* A read finished. status is WHARF_OK with `data`/`len` the bytes read (borrowed: valid
 * until the callback returns; `data` may be NULL when len is 0), or an error with
 * data == NULL, len == 0: WHARF_E_CLOSED (end of input or closed before the read could
 * be satisfied), WHARF_E_LIMIT, WHARF_E_BUFFER_FULL, WHARF_E_RESET, WHARF_E_IO,
 * WHARF_E_SHUTDOWN (the host is draining), and [1.3] WHARF_E_IDLE_TIMEOUT,
 * WHARF_E_READ_TIMEOUT, WHARF_E_LIFETIME (a listener limit closed the stream). After any of
 * these the stream is closing. The one exception is WHARF_E_TIMEOUT from a deadline the
 * plugin set (set_read_timeout [1.3]): only that read failed, and the stream stays open. */
typedef void (*wharf_read_cb)(void *userdata, wharf_stream *stream, int32_t status,
                              const uint8_t *data, size_t len);

/* A write finished: WHARF_OK once its bytes (and all earlier writes') were handed to the
 * kernel, or an error (WHARF_E_CLOSED, WHARF_E_RESET, WHARF_E_IO) if the stream closed
 * first. */
typedef void (*wharf_write_cb)(void *userdata, wharf_stream *stream, int32_t status);

/* The stream's close notification. `reason` is WHARF_OK for a clean close (peer EOF or a
 * local close()), otherwise the error that closed it (WHARF_E_RESET, WHARF_E_LIMIT,
 * WHARF_E_BUFFER_FULL, WHARF_E_IO, WHARF_E_SHUTDOWN, WHARF_E_TIMEOUT; [1.3]
 * WHARF_E_IDLE_TIMEOUT, WHARF_E_READ_TIMEOUT, WHARF_E_LIFETIME). */
typedef void (*wharf_close_cb)(void *userdata, wharf_stream *stream, int32_t reason);

/* Work posted with waker_post. status is WHARF_OK if the stream is still alive (so its
 * handle may be used), WHARF_E_CLOSED if it has closed (do not touch the stream handle;
 * free what userdata owns). Always runs on the stream's loop. */
typedef void (*wharf_post_fn)(void *userdata, int32_t status);

/* A connect finished: WHARF_OK with `upstream` a new stream (the plugin's to read, write
 * and close; it gets its own close notification), or an error with upstream == NULL:
 * WHARF_E_REFUSED, WHARF_E_TIMEOUT, WHARF_E_RESOLVE, WHARF_E_UNREACHABLE, WHARF_E_IO,
 * WHARF_E_SHUTDOWN, or, with options->tls [1.2], WHARF_E_TLS: the handshake failed, e.g.
 * the certificate did not verify; the host logs the exact reason. [1.1] */
typedef void (*wharf_connect_cb)(void *userdata, int32_t status, wharf_stream *upstream);

/* start_tls finished: WHARF_OK once the handshake is done (get_info shows its facts), or
 * WHARF_E_TLS / WHARF_E_TIMEOUT / WHARF_E_CLOSED; on failure the stream is closing. [1.2] */
typedef void (*wharf_tls_cb)(void *userdata, wharf_stream *stream, int32_t status);

/* A timer finished [1.3]: WHARF_OK when its delay passed, WHARF_E_CANCELLED after
 * timer_cancel, WHARF_E_CLOSED when its stream closed first (this runs before the stream's
 * close notification). Exactly once per started timer, on the stream's loop, never inside
 * timer_start or timer_cancel. After it returns the timer handle is dead. */
typedef void (*wharf_timer_cb)(void *userdata, wharf_timer *timer, int32_t status);

/* pool_acquire finished [1.5]: WHARF_OK with `stream` a connection to the pool's upstream,
 * now the plugin's to read and write until it gives it back with pool_release (or closes
 * it). On failure `stream` is NULL and status says why: a connect error (WHARF_E_REFUSED,
 * WHARF_E_TIMEOUT, WHARF_E_RESOLVE, WHARF_E_UNREACHABLE, WHARF_E_IO, WHARF_E_TLS), which
 * fails the oldest waiting acquire; WHARF_E_TIMEOUT, when no connection came free within
 * acquire_timeout_ms; or WHARF_E_SHUTDOWN, when the pool was destroyed. */
typedef void (*wharf_pool_cb)(void *userdata, int32_t status, wharf_stream *stream);

/* Destructor for a stream context (set_context). Runs on the stream's loop, once. */
typedef void (*wharf_context_free_fn)(void *context);

/* ---- Connection facts ------------------------------------------------------------------ */
#define WHARF_ADDR_TEXT_MAX 64

typedef struct wharf_stream_info {
    uint32_t struct_size;     /* set by the caller to sizeof(wharf_stream_info) */
    uint32_t loop_index;      /* 0 .. loop_count-1: the loop this stream lives on */
    uint32_t loop_count;
    uint32_t is_client;       /* 0: accepted by a listener; 1: an outgoing connection */
    uint64_t stream_id;       /* unique per process, for logs */
    int32_t peer_family;      /* AF_INET, AF_INET6 or AF_UNIX; 0 if unknown */
    uint32_t peer_port;
    char peer_address[WHARF_ADDR_TEXT_MAX]; /* NUL-terminated text, e.g. "127.0.0.1" or "::1" */
    int32_t local_family;
    uint32_t local_port;
    char local_address[WHARF_ADDR_TEXT_MAX];
    /* ---- 1.2 ---- */
    uint32_t proxied;          /* 1: peer_* and local_* come from a PROXY protocol header
                                * (listener proxy_protocol: accept), not from the socket */
    uint32_t tls_version;      /* 0: plain TCP; else the negotiated version: 0x0303 TLS 1.2,
                                * 0x0304 TLS 1.3 */
    char tls_server_name[256]; /* the SNI name the client asked for ("" if none); for an
                                * outgoing stream, the name Wharf sent */
    char tls_alpn[64];         /* the negotiated ALPN protocol, "" if none */
    char tls_peer_subject[512];/* the peer certificate's verified subject, e.g.
                                * "CN=alice,O=Example" ("" if the peer sent none) */
} wharf_stream_info;

/* ---- TLS for outgoing streams [1.2] ----------------------------------------------
 * Zero-initialised, this verifies the server against the system roots and the name given
 * to connect (the safe default). Strings are NUL-terminated and copied by the host before
 * connect/start_tls returns. The host caches the TLS context per distinct options, so
 * files are read once, not per connection. */
typedef struct wharf_tls_client_options {
    uint32_t struct_size;         /* sizeof(wharf_tls_client_options) */
    int32_t insecure_no_verify;   /* nonzero: accept any certificate (tests only) */
    const char *ca_file;          /* PEM roots to verify against; NULL: the system roots */
    const char *server_name;      /* SNI and the name verified; NULL: connect's host (no SNI
                                   * is sent for an IP address) */
    const char *alpn;             /* protocols to offer, comma-separated ("h2,http/1.1"); NULL: none */
    const char *certificate_file; /* client certificate chain (PEM) for mutual TLS, or NULL */
    const char *key_file;         /* its private key (PEM); required with certificate_file */
} wharf_tls_client_options;

/* ---- Outgoing connections [1.1] -------------------------------------------------- */
typedef struct wharf_connect_options {
    uint32_t struct_size;       /* sizeof(wharf_connect_options) */
    uint32_t timeout_ms;        /* one deadline for resolution and connecting; 0: 10000 */
    int32_t nodelay;            /* 0: leave Nagle on; nonzero: TCP_NODELAY (the default) */
    uint32_t source_port;       /* bind to this local port first (0: any) */
    const char *source_address; /* bind to this local IP first (NUL-terminated), or NULL */
    uint64_t max_buffer_size;   /* read buffer cap for the new stream; 0: the origin's */
    /* ---- 1.2 ---- */
    const wharf_tls_client_options *tls; /* non-NULL: TLS after connecting, inside the same
                                          * timeout; a failed handshake completes the connect
                                          * with WHARF_E_TLS */
} wharf_connect_options;

/* ---- Connection pools [1.5] -----------------------------------------------------------
 * A pool keeps connections to one upstream (host, port) on one loop and hands them out
 * one user at a time, so that many client connections share a few upstream ones. This is
 * what twemproxy, mcrouter and PgBouncer do. An acquire gets an idle connection at once.
 * Otherwise it gets a new one while fewer than max_total are open, or it waits in FIFO
 * order for a release, up to acquire_timeout_ms. An idle connection that receives bytes or
 * EOF is closed and dropped, never handed out. Zero fields take the defaults shown. */
typedef struct wharf_pool_options {
    uint32_t struct_size;         /* sizeof(wharf_pool_options) */
    uint32_t max_total;           /* connections open at once (idle, in use, connecting); 0: 10 */
    uint32_t max_idle;            /* idle connections kept for reuse; 0: max_total */
    uint32_t idle_timeout_ms;     /* close a connection idle this long; 0: 60000 */
    uint32_t acquire_timeout_ms;  /* fail an acquire still waiting after this; 0: 10000 */
    uint32_t max_waiting;         /* acquires that may wait at once; more fail at once with
                                   * WHARF_E_LIMIT; 0: 100000 */
    const wharf_connect_options *connect; /* how connections are made (timeout, TLS...); NULL:
                                           * defaults; copied by pool_create */
} wharf_pool_options;

/* ---- Host-side relay [1.1] ------------------------------------------------------- */
typedef struct wharf_relay_options {
    uint32_t struct_size;     /* sizeof(wharf_relay_options) */
    uint32_t idle_timeout_ms; /* end the relay after this long with no byte either way; 0: never */
} wharf_relay_options;

typedef struct wharf_relay_result {
    uint32_t struct_size;  /* sizeof(wharf_relay_result) as the host knows it */
    int32_t reason;        /* WHARF_OK: both directions ended (FIN each way); else why it ended:
                            * WHARF_E_RESET, WHARF_E_TIMEOUT (idle), WHARF_E_CLOSED (one side
                            * closed early or by the plugin), WHARF_E_IO, WHARF_E_SHUTDOWN */
    uint64_t bytes_a_to_b; /* bytes the host moved from a's peer to b's peer */
    uint64_t bytes_b_to_a;
} wharf_relay_result;

/* connect_relay's options [1.6]. */
typedef struct wharf_connect_relay_options {
    uint32_t struct_size;                 /* sizeof(wharf_connect_relay_options) */
    const wharf_connect_options *connect; /* NULL: connect's defaults */
    const wharf_relay_options *relay;     /* NULL: relay's defaults */
    const uint8_t *preface;               /* bytes the upstream gets before any relayed byte
                                           * (a PROXY header, a ClientHello already read);
                                           * copied during the call. NULL: none */
    size_t preface_len;
} wharf_connect_relay_options;

/* connect_relay's connect finished [1.6]: WHARF_OK when the upstream is connected and the
 * relay has begun (the wharf_relay_cb follows when it ends, then the client's close
 * callback), or a connect error as wharf_connect_cb's (WHARF_E_REFUSED, WHARF_E_TIMEOUT,
 * WHARF_E_RESOLVE, WHARF_E_UNREACHABLE, WHARF_E_IO, WHARF_E_TLS, WHARF_E_SHUTDOWN), after
 * which the client is an ordinary open stream again: try another upstream, write to it or
 * close it. WHARF_E_CLOSED (or the reason the host closed it) when the client closed while
 * connecting; its close callback comes too, before or after this. */
typedef void (*wharf_connect_relay_cb)(void *userdata, int32_t status);

/* The relay ended. `result` is valid during the callback. Both streams are closing; their
 * own close notifications follow this callback. [1.1] */
typedef void (*wharf_relay_cb)(void *userdata, const wharf_relay_result *result);

/* ---- Regex dialect ----------------------------------------------------------------------
 * read_until_regex matches bytes, not text: NUL bytes and invalid UTF-8 are ordinary bytes.
 *
 *   literal bytes; escapes \n \r \t \f \v \0 \xHH and \ before any punctuation
 *   .            any byte except \n (any byte at all with WHARF_REGEX_DOTALL)
 *   [abc] [a-z] [^...]   byte classes; escapes and \d \w \s work inside
 *   \d \D \w \W \s \S    ASCII digit, word ([A-Za-z0-9_]), space ([ \t\n\r\f\v]) and negations
 *   (...) (?:...)        grouping (nothing is captured)
 *   a|b                  alternation
 *   * + ? {m} {m,} {m,n} repetition (m, n <= 1000); a trailing ? (lazy) is accepted
 *   ^                    only as the first character: the match must start at the first
 *                        unread byte
 *
 * Not supported (regex_compile fails with WHARF_E_UNSUPPORTED and says where): $, \b,
 * back-references, look-around, named groups, Unicode classes.
 *
 * Match semantics: the stream is scanned once, as it arrives; the read completes at the
 * EARLIEST position where some match of the pattern ends, and the result is every byte up
 * to that position. So the result never depends on how the data was split into packets,
 * and scanning is linear in the data (no rescans). For delimiter-like patterns this is the
 * natural meaning; note that greedy repetition at the very end of a pattern therefore
 * stops at its shortest match ("a+" completes after the first "a").
 */
#define WHARF_REGEX_CASELESS 1u /* ASCII letters match either case */
#define WHARF_REGEX_DOTALL 2u   /* '.' matches \n too */

/* ---- Metrics [1.4] ---------------------------------------------------------------------
 * A plugin's own counters, gauges and histograms, beside the host's under the admin
 * endpoint's /metrics (Prometheus text format), labelled with the instance name:
 *
 *     myproxy_upstream_connects_total{instance="backend",upstream="10.0.0.1:80"} 1234
 *
 * A metric has a fixed set of series, declared when it is registered: its label names and,
 * for each series, the label values (e.g. one series per configured upstream). Updates go
 * by series index into memory the supervisor reads, so they cost one store and cannot fail.
 * Values are summed over every loop and worker process; counters and histograms never go
 * backwards (a worker that exits or crashes keeps its counts, as the host's own do). */
#define WHARF_METRIC_COUNTER 1u   /* only goes up; name it ..._total */
#define WHARF_METRIC_GAUGE 2u     /* a level that goes either way (summed over loops and workers) */
#define WHARF_METRIC_HISTOGRAM 3u /* observations counted into fixed buckets */

typedef struct wharf_metric_spec {
    uint32_t struct_size;
    uint32_t type;                     /* WHARF_METRIC_* */
    const char *name;                  /* [a-zA-Z_:][a-zA-Z0-9_:]*, at most 100 bytes, not
                                        * starting with "wharf_" (the host's own) */
    const char *help;                  /* one line, printable, at most 200 bytes */
    uint32_t label_count;              /* 0-4 */
    const char *const *label_names;    /* label_count names: [a-zA-Z_][a-zA-Z0-9_]*, not
                                        * "instance" or "le" */
    uint32_t series_count;             /* 1-256 (ignored without labels: one series) */
    const char *const *label_values;   /* series_count rows of label_count printable values
                                        * (row after row; NULL when label_count is 0) */
    uint32_t bucket_count;             /* histograms: 1-16 upper bounds, increasing (+Inf is
                                        * implied); 0 otherwise */
    const double *buckets;
} wharf_metric_spec;

/* ---- Host-declared config [1.5] -------------------------------------------------------
 * Like nginx's ngx_command_t: a plugin may declare its config keys in a static schema (the
 * descriptor's config_schema). The host then checks the instance's `config:` before init,
 * with the same strictness and messages as the rest of the config, e.g.
 *
 *     wharf.yaml:14:18: plugins.echo.config.max_bytes: expected an integer 1-1073741824, got -1
 *     wharf.yaml:13:15: plugins.echo.config: unknown key 'max_byte' (did you mean 'max_bytes'?)
 *
 * and init reads typed, normalized values through the config_* functions (defaults filled
 * in). `wharf plugin info` prints the schema as documentation. args->config_json still
 * carries the config, normalized the same way (durations in ms, sizes in bytes, byte
 * strings decoded), for plugins that read it themselves. Without a schema nothing changes.
 *
 * Types, and what min/max bound (both 0: no bound):                                       */
#define WHARF_CONFIG_INTEGER 1u   /* a YAML integer; its value */
#define WHARF_CONFIG_BOOLEAN 2u   /* true or false (config_integer gives 1 or 0) */
#define WHARF_CONFIG_STRING 3u    /* a string; its length in bytes */
#define WHARF_CONFIG_BYTES 4u     /* a string whose escapes \n \r \t \0 \\ \xHH are decoded; length */
#define WHARF_CONFIG_DURATION 5u  /* "250ms", "10s", "5m", "2h" or an integer of ms; in ms */
#define WHARF_CONFIG_SIZE 6u      /* "512", "64k" or "64KiB", "1m"/"1MiB", "1g"/"1GiB"; in bytes */
#define WHARF_CONFIG_HOST_PORT 7u /* "host:port" or "[ipv6]:port" */
#define WHARF_CONFIG_LIST 8u      /* a list of strings; the count */
#define WHARF_CONFIG_MAP 9u       /* a mapping of strings to strings; the count */
#define WHARF_CONFIG_JSON 10u     /* any value, checked by the plugin itself (nested settings):
                                   * config_string gives it as JSON text; not bounded */

#define WHARF_CONFIG_REQUIRED 1u  /* flags: the key must be given (no default then) */

typedef struct wharf_config_key {
    const char *name;          /* [a-z0-9_]+ */
    uint32_t type;             /* WHARF_CONFIG_* */
    uint32_t flags;            /* WHARF_CONFIG_REQUIRED */
    int64_t min;               /* see the types above; min == max == 0: no bound */
    int64_t max;
    const char *default_value; /* the default as YAML text ("65536", "10s", "\"\\r\\n\""), or NULL */
    const char *description;   /* one line, for `wharf plugin info` */
} wharf_config_key;

typedef struct wharf_config_schema {
    uint32_t struct_size; /* sizeof(wharf_config_schema) */
    uint32_t key_size;    /* sizeof(wharf_config_key): the array's stride, so keys can grow */
    uint32_t key_count;
    const wharf_config_key *keys;
} wharf_config_schema;

/* ---- The host function table ----------------------------------------------------------
 * Passed to init(); static storage owned by the host, valid until the process exits.
 * Functions are appended at the end in later minor versions; test with WHARF_HOST_HAS. */
typedef struct wharf_host_api {
    uint32_t struct_size; /* sizeof the host's table; fields beyond it do not exist */
    uint16_t abi_major;   /* the host's ABI version */
    uint16_t abi_minor;

    /* [any thread] Log `len` bytes of `msg` at `level` (WHARF_LOG_*). `instance` is the
     * handle from wharf_init_args (NULL is allowed: the line then carries no instance
     * name). The host copies the text; no trailing newline is needed. */
    void (*log)(const wharf_instance *instance, int32_t level, const char *msg, size_t len);

    /* [any thread] 1 if a line at `level` would be written, else 0. Use it to skip
     * formatting work. */
    int32_t (*log_enabled)(const wharf_instance *instance, int32_t level);

    /* [any thread] A static, NUL-terminated description of a status code
     * ("stream closed", ...). Never NULL; unknown codes give "unknown error". */
    const char *(*strerror)(int32_t status);

    /* [loop] Read exactly `n` bytes; with `partial` nonzero, complete as soon as at least
     * one byte is available, with min(n, available) bytes. n == 0 completes with len 0.
     * Errors: WHARF_E_BUSY (a read is pending), WHARF_E_RELAYED (the stream is relayed [1.3]),
     * WHARF_E_CLOSED, WHARF_E_INVALID (cb NULL),
     * WHARF_E_WRONG_THREAD. */
    int32_t (*read_bytes)(wharf_stream *stream, size_t n, int32_t partial, wharf_read_cb cb,
                          void *userdata);

    /* [loop] Read up to and including the first occurrence of `delimiter` (copied by the
     * host before returning; 1..256 bytes). `max_bytes` bounds the result INCLUDING the
     * delimiter; 0 means no bound but the listener's max_buffer_size. If the delimiter
     * cannot be found within max_bytes, the read completes with WHARF_E_LIMIT and the
     * stream is closed (earlier pipelined messages were already served). Errors as
     * read_bytes, plus WHARF_E_INVALID for an empty or too long delimiter. */
    int32_t (*read_until)(wharf_stream *stream, const uint8_t *delimiter, size_t delimiter_len,
                          size_t max_bytes, wharf_read_cb cb, void *userdata);

    /* [loop] Like read_until, but the end is the earliest end of a match of `regex` (see
     * the dialect above). The regex must stay alive until the read completes. */
    int32_t (*read_until_regex)(wharf_stream *stream, const wharf_regex *regex, size_t max_bytes,
                                wharf_read_cb cb, void *userdata);

    /* [loop] Read everything until the peer ends its input, then complete with all of it
     * (WHARF_OK, even for a peer reset: the data is not lost). More than `max_bytes`
     * (0: max_buffer_size) completes with WHARF_E_LIMIT and closes the stream. */
    int32_t (*read_until_close)(wharf_stream *stream, size_t max_bytes, wharf_read_cb cb,
                                void *userdata);

    /* [loop] Queue `len` bytes for sending; the host copies them before returning. `cb`
     * (may be NULL) is called when these bytes and all earlier ones were handed to the
     * kernel. len == 0 is allowed (completes after earlier writes). Errors: WHARF_E_CLOSED
     * (closed, closing, or the peer reset), WHARF_E_INVALID (data NULL with len > 0),
     * WHARF_E_NOMEM, WHARF_E_WRONG_THREAD, and [1.4] WHARF_E_WRITE_FULL: the listener sets
     * max_write_buffer_size and these bytes would leave more than that unsent (a peer that
     * does not read); nothing was queued and the stream is being aborted, as Tornado's
     * StreamBufferFullError. Without that limit writes are never refused for being too
     * many: the host stops reading from this stream's socket while its unsent output is
     * above the high-water mark, so a peer that does not read is throttled. */
    int32_t (*write)(wharf_stream *stream, const uint8_t *data, size_t len, wharf_write_cb cb,
                     void *userdata);

    /* [loop] Close gracefully: stop reading, flush pending writes (their callbacks get
     * WHARF_OK as they are sent), then close the socket. A flush not done within the
     * listener's close_linger_ms is cut off (the close notification then says
     * WHARF_E_TIMEOUT: bytes may be lost). A pending read completes with
     * WHARF_E_CLOSED (or with its data, if the buffer already satisfies it). Legal inside
     * any callback; idempotent (a second call returns WHARF_OK). */
    int32_t (*close)(wharf_stream *stream);

    /* [loop] Close at once: pending writes are discarded (their callbacks get
     * WHARF_E_CLOSED) and the peer sees a reset. */
    int32_t (*abort)(wharf_stream *stream);

    /* [loop] Half-close: after pending writes are flushed, send FIN; reading continues.
     * Further writes return WHARF_E_CLOSED. WHARF_E_RELAYED while the stream is relayed [1.3]. */
    int32_t (*shutdown_write)(wharf_stream *stream);

    /* [loop] Set the close notification (replacing an earlier one). cb may be NULL to
     * clear it. It is called once, last, as described in THE MODEL. */
    int32_t (*set_close_callback)(wharf_stream *stream, wharf_close_cb cb, void *userdata);

    /* [loop] Attach a plugin pointer to the stream. `free_fn` (may be NULL) is called with
     * it once, after the close notification returns, or when it is replaced by another
     * set_context call. Use it so per-connection state can never leak. */
    int32_t (*set_context)(wharf_stream *stream, void *context, wharf_context_free_fn free_fn);

    /* [loop] The pointer from set_context, or NULL (also for a dead handle). */
    void *(*get_context)(wharf_stream *stream);

    /* [loop] Fill `info` (its struct_size says how much the caller has room for).
     * Errors: WHARF_E_INVALID, WHARF_E_CLOSED, WHARF_E_WRONG_THREAD. */
    int32_t (*get_info)(wharf_stream *stream, wharf_stream_info *info);

    /* [loop] Enable (1) or disable (0) TCP_NODELAY. A no-op for non-TCP streams. */
    int32_t (*set_nodelay)(wharf_stream *stream, int32_t enabled);

    /* [any thread] Compile `pattern` (pattern_len bytes, NUL bytes allowed via \0 or
     * literally) with WHARF_REGEX_* flags. On success stores the regex in *out and returns
     * WHARF_OK; free it with regex_free. On failure returns WHARF_E_INVALID or
     * WHARF_E_UNSUPPORTED and writes a NUL-terminated message naming the offset into
     * `error` (error_len bytes, may be 0). A compiled regex is immutable and may be
     * shared by all loops. */
    int32_t (*regex_compile)(const char *pattern, size_t pattern_len, uint32_t flags,
                             wharf_regex **out, char *error, size_t error_len);

    /* [any thread] Free a regex from regex_compile. No read may still be using it. */
    void (*regex_free)(wharf_regex *regex);

    /* [loop] Create a waker for `stream`: the one way to get back onto a stream's loop
     * from another thread (e.g. a worker thread the plugin owns). Release it with
     * waker_release; it stays valid after the stream closes. */
    int32_t (*waker_create)(wharf_stream *stream, wharf_waker **out);

    /* [any thread] Run fn(userdata, status) on the stream's loop, soon. fn always runs
     * exactly once: with WHARF_OK while the stream is alive, WHARF_E_CLOSED once it has
     * closed, or WHARF_E_SHUTDOWN once the host has stopped its loops (plugins should have
     * joined their threads in shutdown; if not, fn then runs on the calling thread before
     * waker_post returns). Returns WHARF_E_INVALID for a NULL waker or fn. */
    int32_t (*waker_post)(wharf_waker *waker, wharf_post_fn fn, void *userdata);

    /* [any thread] Drop the waker. Posts already made still run. */
    void (*waker_release)(wharf_waker *waker);

    /* ---- 1.1 ---- */

    /* [loop] Open a TCP connection to `host` (host_len bytes, copied before this returns: a
     * name, an IPv4 or an IPv6 address, without brackets) and `port`, like Tornado's TCPClient. The new stream
     * lives on `origin`'s loop (so a plugin can pair them without locks) and has the
     * same API and close guarantee as an accepted one (wharf_stream_info.is_client is 1).
     * Names are resolved off the loop; IPv4 and IPv6 addresses are tried Happy-Eyeballs
     * style. `options` may be NULL (defaults). `origin` only chooses the loop: the connect
     * completes through `cb` exactly once, never inside this call, even if origin closes
     * meanwhile. With options->tls (1.2) the stream is handed over only once the TLS
     * handshake is done, within the same timeout. Errors (returned at once):
     * WHARF_E_INVALID (empty or over 255-byte host, port 0 or over 65535, cb NULL, bad
     * source_address, unusable TLS options such as an unreadable CA file), WHARF_E_CLOSED,
     * WHARF_E_WRONG_THREAD. */
    int32_t (*connect)(wharf_stream *origin, const char *host, size_t host_len, uint32_t port,
                       const wharf_connect_options *options, wharf_connect_cb cb, void *userdata);

    /* [loop] Hand streams `a` and `b` (same loop, e.g. a client and its upstream) to the
     * host, which then moves bytes both ways without the plugin. Each side is read only
     * while the other can take writes, so a slow reader throttles the fast peer through TCP
     * and memory per pair stays bounded (an idle pair holds no buffer). A FIN from one peer
     * becomes a shutdown of the other's output; a reset from one peer resets the other
     * (plain TCP pairs on hosts from 1.7; TLS pairs too, with no close_notify, on hosts
     * built from 2026-11-30),
     * so a cut-off stream never looks whole. Bytes
     * already buffered by the host go
     * first, then bytes the plugin wrote before calling relay (the hand-over waits until
     * they are sent); bytes the plugin read itself (a header it inspected) must be written
     * to the other side before calling relay. While relayed, reads, writes and
     * shutdown_write on a or b return WHARF_E_RELAYED [1.3]; get_info and set_nodelay still work;
     * close or abort ends the relay (abort resets that peer, the other gets a FIN after its
     * pending bytes). `cb` (may be NULL) is called once when it ends, on the loop, before
     * the host closes either socket. `options` may be NULL.
     * Plain TCP pairs are moved by a host thread per event loop with one read and one
     * write per chunk; pairs with TLS on either side go through the loop itself. Neither
     * changes what the plugin sees. Errors: WHARF_E_INVALID (a == b),
     * WHARF_E_BUSY (a read pending), WHARF_E_RELAYED (already relayed [1.3]), WHARF_E_CLOSED,
     * WHARF_E_WRONG_THREAD (called off a's loop, or b lives on another loop). */
    int32_t (*relay)(wharf_stream *a, wharf_stream *b, const wharf_relay_options *options, wharf_relay_cb cb,
                     void *userdata);

    /* ---- 1.2 ---- */

    /* [loop] Upgrade a plain stream to TLS in place (STARTTLS-style protocols), as Tornado's
     * IOStream.start_tls. The stream must be idle: no pending read, nothing buffered unread,
     * no unsent writes (write the "go ahead" reply and wait for its callback first), not
     * relayed. An accepted stream becomes the TLS server with its listener's `tls:`
     * settings (`client_options` must be NULL; the listener needs `tls: {starttls: true}`);
     * an outgoing stream becomes the TLS client with `client_options` (NULL: defaults).
     * The handshake is bounded by the listener's handshake_timeout_ms (outgoing: 10 s).
     * `cb` is called exactly once. Errors: WHARF_E_NOT_IDLE [1.3], WHARF_E_RELAYED [1.3], WHARF_E_UNSUPPORTED
     * (the listener has no tls or it is already TLS), WHARF_E_INVALID (cb NULL, or bad
     * client options: unreadable file, key without certificate; the host logs why),
     * WHARF_E_CLOSED, WHARF_E_WRONG_THREAD. */
    int32_t (*start_tls)(wharf_stream *stream, const wharf_tls_client_options *client_options, wharf_tls_cb cb,
                         void *userdata);

    /* ---- 1.3 ---- */

    /* [loop] Call cb(userdata, timer, WHARF_OK) once `delay_ms` milliseconds have passed
     * (Tornado's IOLoop.call_later), on `stream`'s loop; 0 means the next loop turn. The
     * timer belongs to the stream: if the stream closes first, cb gets WHARF_E_CLOSED before
     * the close notification. *out (may be NULL) receives a handle for timer_cancel, valid
     * until cb returns. cb runs exactly once, never inside this call, so it is the place to
     * free what `userdata` points to (the host never touches it). Errors: WHARF_E_INVALID
     * (cb NULL, delay over 2^31 ms), WHARF_E_CLOSED, WHARF_E_WRONG_THREAD. [1.3] */
    int32_t (*timer_start)(wharf_stream *stream, uint64_t delay_ms, wharf_timer_cb cb, void *userdata,
                           wharf_timer **out);

    /* [loop] Cancel a timer: its cb runs with WHARF_E_CANCELLED after the current callback
     * returns (never inside this call). Errors: WHARF_E_CLOSED (the timer already fired, was
     * cancelled, or its stream closed: cb has run or is queued), WHARF_E_INVALID (NULL),
     * WHARF_E_WRONG_THREAD. [1.3] */
    int32_t (*timer_cancel)(wharf_timer *timer);

    /* [loop] A deadline on every read started on this stream from now on (Tornado's
     * gen.with_timeout around a read): a read still unsatisfied `timeout_ms` after it
     * started completes with WHARF_E_TIMEOUT, and the stream stays open and usable (bytes
     * that arrived stay buffered for the next read; the plugin decides whether to close).
     * 0 turns it off (the default). Independent of the listener's read_timeout_ms, which
     * closes the connection. Errors: WHARF_E_CLOSED, WHARF_E_WRONG_THREAD. [1.3] */
    int32_t (*set_read_timeout)(wharf_stream *stream, uint32_t timeout_ms);

    /* ---- 1.4 ---- */

    /* [init] Register a metric (see METRICS below) from init(), once per instance: each
     * loop's instance registers it and gets its own handle, for use on that loop only. The
     * host copies the spec. *out receives the handle, valid until shutdown() returns. In
     * validate mode (WHARF_INIT_VALIDATE) it succeeds with a handle that records nothing.
     * Errors: WHARF_E_INVALID (bad spec: a name, label or value out of the rules, a
     * registration of the same name by this instance that differs; the host logs which),
     * WHARF_E_NOMEM (the worker's room for plugin metrics, 4096 values per loop, is full),
     * WHARF_E_WRONG_THREAD (called outside init). [1.4] */
    int32_t (*metric_register)(const wharf_instance *instance, const wharf_metric_spec *spec, wharf_metric **out);

    /* [loop] Counter: add `value` (negative values are ignored). Gauge: add `value` (either
     * way). `series` indexes the spec's label-value rows (0 when it has no labels); an
     * out-of-range series or a histogram is ignored. One store: cheap enough for every
     * request. [1.4] */
    void (*metric_add)(wharf_metric *metric, uint32_t series, int64_t value);

    /* [loop] Gauge: set `series` to `value`. Ignored for counters and histograms. [1.4] */
    void (*metric_set)(wharf_metric *metric, uint32_t series, int64_t value);

    /* [loop] Histogram: record `value` (in the unit of the bucket bounds; name it in the
     * metric, e.g. _seconds) into `series`. Ignored for counters and gauges. [1.4] */
    void (*metric_observe)(wharf_metric *metric, uint32_t series, double value);

    /* ---- 1.5: loop-level work (see "Loop-level work" in THE MODEL) ---- */

    /* [any thread, init] Run fn(userdata, WHARF_OK) on `loop`'s thread soon: the way onto
     * the loop from a thread the plugin owns, and from init(). A post made during init()
     * runs after init() returns. fn runs exactly once. When the instance's loop-level work
     * has ended (it is shutting down), fn gets WHARF_E_SHUTDOWN instead; this runs on the
     * loop, or, once the loops have stopped, on the calling thread before loop_post
     * returns. Errors: WHARF_E_INVALID (NULL loop or fn). [1.5] */
    int32_t (*loop_post)(wharf_loop *loop, wharf_post_fn fn, void *userdata);

    /* [loop] timer_start for the loop rather than for a stream: cb(userdata, timer, WHARF_OK)
     * after `delay_ms`. timer_cancel cancels it. When the instance shuts down first, cb gets
     * WHARF_E_SHUTDOWN. Otherwise as timer_start. Errors: WHARF_E_INVALID (cb NULL, delay over
     * 2^31 ms), WHARF_E_SHUTDOWN (the instance is shutting down), WHARF_E_WRONG_THREAD. [1.5] */
    int32_t (*loop_timer_start)(wharf_loop *loop, uint64_t delay_ms, wharf_timer_cb cb, void *userdata,
                                wharf_timer **out);

    /* [loop] connect for the loop rather than for a client connection (a health check, a
     * warm connection): the same arguments, options and callback as connect, with no origin.
     * The new stream has the host's defaults (max_buffer_size 100 MiB, no listener timeouts,
     * no keepalive unless options say so). It lives until it is closed, or until the
     * instance shuts down, which closes it with WHARF_E_SHUTDOWN. Errors: as connect, and
     * WHARF_E_SHUTDOWN. [1.5] */
    int32_t (*loop_connect)(wharf_loop *loop, const char *host, size_t host_len, uint32_t port,
                            const wharf_connect_options *options, wharf_connect_cb cb, void *userdata);

    /* [loop, init] Create a pool of connections to `host` (host_len bytes, copied) and
     * `port` on `loop` (see "Connection pools" above). No connection is opened until the
     * first acquire. `options` may be NULL. *out receives the handle, valid until
     * pool_destroy or the instance's shutdown. Errors: WHARF_E_INVALID (empty or over
     * 255-byte host, port 0 or over 65535, out NULL, max_idle over max_total, bad connect
     * options), WHARF_E_SHUTDOWN, WHARF_E_WRONG_THREAD. [1.5] */
    int32_t (*pool_create)(wharf_loop *loop, const char *host, size_t host_len, uint32_t port,
                           const wharf_pool_options *options, wharf_pool **out);

    /* [loop] Ask for a connection. cb(userdata, status, stream) runs exactly once, never
     * inside this call (see wharf_pool_cb). A connection handed out is a loop-level stream
     * with the whole stream API. It is the plugin's alone until pool_release; it may be
     * closed instead, and the pool then forgets it. Errors: WHARF_E_INVALID (cb NULL),
     * WHARF_E_LIMIT (max_waiting acquires are already waiting), WHARF_E_CLOSED (a destroyed
     * pool), WHARF_E_WRONG_THREAD. [1.5] */
    int32_t (*pool_acquire)(wharf_pool *pool, wharf_pool_cb cb, void *userdata);

    /* [loop] Give a connection from pool_acquire back. From this call on the handle is
     * dead: the plugin hears nothing more of it. Its close callback is dropped, its
     * context's destructor runs now, and its timers complete with WHARF_E_CLOSED. The pool
     * keeps the connection for the next acquire only if it is clean: open, no read
     * pending, no byte buffered unread, nothing unsent, not relayed, its peer not
     * half-closed, and no read on it ever timed out (set_read_timeout): the late reply
     * would reach the next user. Otherwise the connection is closed, for example after a
     * failed or abandoned request. Errors: WHARF_E_INVALID (the stream is not from a pool),
     * WHARF_E_CLOSED, WHARF_E_WRONG_THREAD. [1.5] */
    int32_t (*pool_release)(wharf_stream *stream);

    /* [loop] Destroy a pool. Acquires still waiting complete with WHARF_E_SHUTDOWN after the
     * current callback returns. Idle connections are closed. Connections in use stay the
     * plugin's until released, and release then closes them. The handle is dead after
     * this. The host destroys what is left at the instance's shutdown. Errors:
     * WHARF_E_CLOSED (already destroyed), WHARF_E_INVALID, WHARF_E_WRONG_THREAD. [1.5] */
    int32_t (*pool_destroy)(wharf_pool *pool);

    /* ---- 1.5: host-declared config (see "Host-declared config" above) ---- */

    /* [init] The value of `key` (NUL-terminated) of this instance's config, for a plugin with a
     * config_schema: an integer, a duration (ms), a size (bytes) or a boolean (1 or 0).
     * Errors: WHARF_E_ABSENT (optional, no default, not given), WHARF_E_INVALID (no such key
     * in the schema, or another type), WHARF_E_WRONG_THREAD (outside init). [1.5] */
    int32_t (*config_integer)(const wharf_instance *instance, const char *key, int64_t *out);

    /* [init] A string or bytes value: *data (NUL-terminated too; bytes may hold NULs) and
     * *len, valid until shutdown() returns. A host:port value reads as its text, a JSON value
     * as JSON text. Errors as config_integer. [1.5] */
    int32_t (*config_string)(const wharf_instance *instance, const char *key, const char **data, size_t *len);

    /* [init] A host:port value: *host (NUL-terminated, without brackets; valid until
     * shutdown() returns) and *port. Errors as config_integer. [1.5] */
    int32_t (*config_host_port)(const wharf_instance *instance, const char *key, const char **host, uint32_t *port);

    /* [init] A list's or a map's number of entries. Errors as config_integer. [1.5] */
    int32_t (*config_list_count)(const wharf_instance *instance, const char *key, size_t *count);
    int32_t (*config_map_count)(const wharf_instance *instance, const char *key, size_t *count);

    /* [init] A list's item, or a map's entry, by index (in config order); strings as
     * config_string's. Errors as config_integer, and WHARF_E_INVALID for an index out of
     * range. [1.5] */
    int32_t (*config_list_item)(const wharf_instance *instance, const char *key, size_t index, const char **data,
                                size_t *len);
    int32_t (*config_map_entry)(const wharf_instance *instance, const char *key, size_t index, const char **name,
                                const char **value, size_t *value_len);

    /* ---- 1.6 ---- */

    /* [loop] Connect to host:port for `client` and relay the two, as connect then relay
     * would, but without an upstream stream: the plugin never sees the upstream, and for
     * plain TCP to an IP address the host opens the upstream socket itself and hands both to
     * its relay thread, so a proxied connection costs about one accepted connection's work
     * (a TLS client too, when the relay thread ran its handshake: see
     * WHARF_PLUGIN_RELAYS_AT_ONCE). With TLS to the upstream, a host name, or a plugin test
     * kit's fake upstream, the host uses connect and relay itself; the plugin sees no
     * difference.
     * `on_connected` is called exactly once (see wharf_connect_relay_cb); on WHARF_OK the
     * relay runs as relay()'s does, bytes the plugin wrote to the client before the call go
     * out first, and `on_done` (may be NULL) is called once when it ends. Until
     * `on_connected`, the client belongs to the host: do not read from or write to it (the
     * host may refuse with WHARF_E_RELAYED); close or abort calls the connect off.
     * `options` may be NULL. Errors (returned at once; nothing is called): WHARF_E_INVALID
     * (as connect's, and on_connected NULL), WHARF_E_BUSY (a read pending on the client),
     * WHARF_E_RELAYED, WHARF_E_CLOSED, WHARF_E_WRONG_THREAD. [1.6] */
    int32_t (*connect_relay)(wharf_stream *client, const char *host, size_t host_len, uint32_t port,
                             const wharf_connect_relay_options *options, wharf_connect_relay_cb on_connected,
                             wharf_relay_cb on_done, void *userdata);
} wharf_host_api;

/* 1 if the host table has function `field` (the table is long enough and it is set). */
#define WHARF_HOST_HAS(host, field)                                                          \
    ((host) != NULL && (host)->struct_size >= offsetof(wharf_host_api, field) + sizeof((host)->field) && \
     (host)->field != NULL)

/* ---- init ------------------------------------------------------------------------------ */
#define WHARF_INIT_VALIDATE 1u /* validate the config only; no stream will be handled */

typedef struct wharf_init_args {
    uint32_t struct_size;
    uint32_t flags;                 /* WHARF_INIT_* bits */
    const wharf_instance *instance; /* for log(); valid until shutdown returns */
    const char *instance_name;      /* the config's instance name (NUL-terminated too) */
    size_t instance_name_len;
    const char *config_json;        /* this instance's `config:` as JSON text ("{}" if none) */
    size_t config_json_len;         /* NUL-terminated too; valid during init only */
    uint32_t loop_index;            /* which loop this instance will serve */
    uint32_t loop_count;
    /* ---- 1.5 ---- */
    wharf_loop *loop;               /* this instance's place on its loop, for loop-level work;
                                     * valid until shutdown() returns. NULL in validate mode */
} wharf_init_args;

/* ---- The descriptor -------------------------------------------------------------------- */
typedef struct wharf_plugin_descriptor {
    uint32_t struct_size;         /* sizeof(wharf_plugin_descriptor) */
    uint16_t abi_major;           /* WHARF_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;           /* WHARF_ABI_MINOR the plugin was built against */
    uint16_t min_host_abi_minor;  /* the oldest host minor it can run on (usually 0) */
    uint16_t reserved;            /* 0 */
    const char *name;             /* short name, NUL-terminated, e.g. "echo" */
    const char *version;          /* the plugin's own version, e.g. "1.0.0" */
    const char *description;      /* one line */

    /* Required. Called once per event loop on the control thread (see THE MODEL), or once
     * with WHARF_INIT_VALIDATE set by `wharf check`. Parse args->config_json, allocate the
     * instance state and store it in *instance_out. Return WHARF_OK, or a negative code
     * with a NUL-terminated message in `error` (error_len bytes); the host prints it and
     * refuses the config. `host` stays valid for the life of the process. */
    int32_t (*init)(const wharf_host_api *host, const wharf_init_args *args, void **instance_out,
                    char *error, size_t error_len);

    /* Required. A new accepted connection, on the instance's loop. Set a close callback,
     * start reading. Return WHARF_OK, or a negative code to make the host close the
     * stream. */
    int32_t (*handle_stream)(void *instance, wharf_stream *stream);

    /* Optional (NULL allowed). Free the instance state. Called on the control thread after
     * the last stream of this instance has been notified closed and its loop-level work
     * has ended [1.5]; also after a validate init. Must stop and join any thread the
     * plugin started. */
    void (*shutdown)(void *instance);

    /* ---- 1.5 ---- */
    /* Optional (NULL allowed): the keys of this plugin's config, checked by the host before
     * init (see "Host-declared config"). Static storage. */
    const wharf_config_schema *config_schema;

    /* ---- 1.7 ---- */
    /* WHARF_PLUGIN_* bits; 0 for none (a descriptor older than 1.7 has none). Hints: they
     * change what the host does to be fast, never what a plugin sees. */
    uint32_t flags;
} wharf_plugin_descriptor;

/* The plugin's handle_stream usually calls connect_relay before it returns, with nothing
 * read or written first (an L4 proxy) [1.7]. The host may then accept the connection on its
 * relay thread and hand the socket over without building an event-loop channel for it:
 * about half the cost of a proxied connection. On a listener with a PROXY header or TLS
 * (not starttls) the relay thread reads the header and runs the handshake too, before
 * handle_stream, and relays the TLS client itself (hosts built from 2026-11-30; before,
 * such listeners were accepted by the event loop). Every other host function
 * still works on such a stream, exactly as documented; the first call that needs the
 * channel builds it, which costs a little more than accepting it that way would have (on
 * TLS, the channel's bytes then pass through the relay thread, one hop more per message). */
#define WHARF_PLUGIN_RELAYS_AT_ONCE (1u << 0)

typedef const wharf_plugin_descriptor *(*wharf_plugin_entry_fn)(void);

/* C linkage for the entry when the plugin is C++ (the host looks it up by its C name). */
#ifdef __cplusplus
#define WHARF_EXTERN_C extern "C"
#else
#define WHARF_EXTERN_C
#endif

/* Declare the entry in a plugin: `WHARF_PLUGIN_DEFINE(&my_descriptor)` at file scope. */
#define WHARF_PLUGIN_DEFINE(descriptor_ptr)                                                  \
    WHARF_EXTERN_C WHARF_EXPORT const wharf_plugin_descriptor *WHARF_PLUGIN_ENTRY(void);    \
    WHARF_EXTERN_C WHARF_EXPORT const wharf_plugin_descriptor *WHARF_PLUGIN_ENTRY(void) { return (descriptor_ptr); }

/* ---- Convenience (plugin side, no ABI impact) ------------------------------------------ */
#if !defined(WHARF_NO_LOGF) && (defined(__GNUC__) || defined(__clang__))
#include <stdarg.h>
#include <stdio.h>
/* printf-style logging formatted on the plugin side (the table itself has no varargs).
 * Lines longer than 1023 bytes are truncated. */
__attribute__((format(printf, 4, 5), unused)) static inline void
wharf_logf(const wharf_host_api *host, const wharf_instance *instance, int32_t level,
           const char *fmt, ...) {
    if (host == NULL || !host->log_enabled(instance, level)) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    host->log(instance, level, line, len);
}
#endif

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(uint32_t) == 4, "wharf.h needs 32-bit uint32_t");
_Static_assert(offsetof(wharf_host_api, log) == 8, "wharf_host_api layout changed");
_Static_assert(offsetof(wharf_plugin_descriptor, name) == 16, "descriptor layout changed");
#endif

#ifdef __cplusplus
}
#endif
#endif /* WHARF_H */
