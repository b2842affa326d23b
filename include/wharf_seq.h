/*
 * wharf_seq.h — write a C handler as a sequence of reads and writes instead of a chain of
 * callbacks. Header-only, on top of wharf.h; no ABI impact.
 *
 * The seed's Tornado handler
 *
 *     while True:
 *         data = yield stream.read_bytes(20, partial=True)
 *         yield stream.write(data); yield stream.write(data[::-1])
 *         if data == b"over": stream.close()
 *
 * becomes (plugins/reverse/reverse.c)
 *
 *     static void serve(wharf_seq *seq) {
 *         reverse_task *task = (reverse_task *)seq;
 *         WHARF_SEQ_BEGIN(seq);
 *         for (;;) {
 *             WHARF_SEQ_READ_BYTES(seq, task->chunk_size, 1);
 *             if (seq->status != WHARF_OK) break;           // closed: the task ends
 *             ... write seq->data / seq->len back, reversed ...
 *         }
 *         WHARF_SEQ_END(seq);
 *     }
 *
 * HOW IT WORKS: stackless coroutines (Simon Tatham's, as in Contiki's protothreads). The body
 * is an ordinary function that the helper calls again from each completion callback; a
 * `switch` on the line of the last await jumps back to where it stopped. Chosen over stackful
 * coroutines (ucontext, a stack per connection) because it costs no stack per connection, no
 * context switch, and nothing the host or a debugger does not already understand.
 *
 * MEMORY: one allocation per connection, the plugin's task struct (wharf_seq is its first
 * member: 48 bytes on 64-bit, plus the plugin's own fields). It is the stream's context:
 * the host frees it after the close notification, whichever way the connection ends.
 *
 * THE RULES (the price of no stack):
 *   - Local variables do NOT survive an await: keep what must in the task struct. Locals
 *     used between two awaits (a buffer filled and written at once) are fine.
 *   - At most one await per source line (the line number is the resume point).
 *   - No await inside a nested `switch` of your own.
 *   - seq->data is borrowed: valid until the next await.
 *   - After an await, seq->status says how the operation ended (WHARF_OK, or the error the
 *     callback or the start of the operation reported). On an error the stream is closing:
 *     leave the loop. The task ends when the body returns with nothing pending. Closing
 *     the stream before that (host->close) is the plugin's choice, as in a callback plugin.
 *   - Every completion arrives on the stream's loop, never inside the call that started the
 *     operation (wharf.h's guarantee), so the body is never re-entered while it runs.
 */
#ifndef WHARF_SEQ_H
#define WHARF_SEQ_H

#include <stdlib.h>

#include "wharf.h"

typedef struct wharf_seq wharf_seq;

/* The handler: called at the start and again after every completion. */
typedef void (*wharf_seq_body)(wharf_seq *seq);

struct wharf_seq {
    const wharf_host_api *host;
    wharf_stream *stream;
    wharf_seq_body body;
    int line;            /* where the body resumes (0: from the top) */
    int32_t status;      /* how the last awaited operation ended */
    const uint8_t *data; /* what the last read delivered (borrowed until the next await) */
    size_t len;
};

/* Allocates a zeroed task of `size` bytes (a struct whose first member is a wharf_seq) as
 * `stream`'s context, freed by the host after the close notification. NULL if out of
 * memory (or the context cannot be set). Fill in your fields, then call wharf_seq_run. */
static inline void *wharf_seq_new(const wharf_host_api *host, wharf_stream *stream, size_t size, wharf_seq_body body) {
    wharf_seq *seq = (wharf_seq *)calloc(1, size);
    if (seq == NULL) return NULL;
    if (host->set_context(stream, seq, free) != WHARF_OK) {
        free(seq);
        return NULL;
    }
    seq->host = host;
    seq->stream = stream;
    seq->body = body;
    return seq;
}

/* Runs the body from the top (in handle_stream). */
static inline void wharf_seq_run(wharf_seq *seq) { seq->body(seq); }

/* The completion callbacks the await macros pass to the host: they record the outcome and
 * resume the body. */
static inline void wharf_seq_on_read(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *data,
                                     size_t len) {
    wharf_seq *seq = (wharf_seq *)userdata;
    (void)stream;
    seq->status = status;
    seq->data = data;
    seq->len = len;
    seq->body(seq);
}

static inline void wharf_seq_on_write(void *userdata, wharf_stream *stream, int32_t status) {
    wharf_seq_on_read(userdata, stream, status, NULL, 0);
}

static inline void wharf_seq_on_timer(void *userdata, wharf_timer *timer, int32_t status) {
    (void)timer;
    wharf_seq_on_read(userdata, NULL, status, NULL, 0);
}

#define WHARF_SEQ_BEGIN(seq) \
    switch ((seq)->line) {   \
    case 0:;

#define WHARF_SEQ_END(seq) \
    }                      \
    (seq)->line = -1

/* Starts an operation and returns from the body; the completion resumes it just after. If
 * the operation cannot start, the body goes on at once with its error in seq->status. */
#define WHARF_SEQ_AWAIT_(seq, start)                                  \
    do {                                                              \
        (seq)->line = __LINE__;                                       \
        (seq)->data = NULL;                                           \
        (seq)->len = 0;                                               \
        if (((seq)->status = (start)) == WHARF_OK) return;            \
        __attribute__((fallthrough));                                 \
    case __LINE__:;                                                   \
    } while (0)

/* read_bytes(n, partial): seq->data / seq->len hold the bytes. */
#define WHARF_SEQ_READ_BYTES(seq, n, partial) \
    WHARF_SEQ_AWAIT_(seq, (seq)->host->read_bytes((seq)->stream, (n), (partial), wharf_seq_on_read, (seq)))

/* read_until(delimiter): seq->data / seq->len hold the message, delimiter included. */
#define WHARF_SEQ_READ_UNTIL(seq, delimiter, delimiter_len, max_bytes)                                          \
    WHARF_SEQ_AWAIT_(seq, (seq)->host->read_until((seq)->stream, (const uint8_t *)(delimiter), (delimiter_len), \
                                                  (max_bytes), wharf_seq_on_read, (seq)))

/* read_until_close: everything up to the peer's end of input. */
#define WHARF_SEQ_READ_UNTIL_CLOSE(seq, max_bytes) \
    WHARF_SEQ_AWAIT_(seq, (seq)->host->read_until_close((seq)->stream, (max_bytes), wharf_seq_on_read, (seq)))

/* write, waiting until the bytes (and all earlier ones) are handed to the kernel. A write
 * that need not be waited for is just host->write(stream, data, len, NULL, NULL). */
#define WHARF_SEQ_WRITE(seq, bytes, length)                                                               \
    WHARF_SEQ_AWAIT_(seq, (seq)->host->write((seq)->stream, (const uint8_t *)(bytes), (length), wharf_seq_on_write, \
                                             (seq)))

/* Waits `ms` milliseconds (timer_start, ABI 1.3): WHARF_OK, or WHARF_E_CLOSED if the stream
 * closed meanwhile. */
#define WHARF_SEQ_SLEEP(seq, ms) \
    WHARF_SEQ_AWAIT_(seq, (seq)->host->timer_start((seq)->stream, (ms), wharf_seq_on_timer, (seq), NULL))

#endif /* WHARF_SEQ_H */
