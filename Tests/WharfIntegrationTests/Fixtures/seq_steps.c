/*
 * seq_steps — every await of include/wharf_seq.h in one handler: an awaited write, a
 * delimited read whose result must outlive later awaits, a sleep, and a read to the end.
 */
#include <stdio.h>
#include <string.h>

#include "wharf.h"
#include "wharf_seq.h"

typedef struct steps_task {
    wharf_seq seq;
    char name[64];
    size_t name_len;
} steps_task;

static void steps(wharf_seq *seq) {
    steps_task *task = (steps_task *)seq;
    WHARF_SEQ_BEGIN(seq);
    WHARF_SEQ_WRITE(seq, "name?\n", 6);
    if (seq->status != WHARF_OK) return;
    WHARF_SEQ_READ_UNTIL(seq, "\n", 1, sizeof task->name);
    if (seq->status != WHARF_OK) return; /* a name over 64 bytes: the host closes */
    task->name_len = seq->len - 1;       /* kept in the task: seq->data dies at the next await */
    memcpy(task->name, seq->data, task->name_len);
    WHARF_SEQ_SLEEP(seq, 50);
    if (seq->status != WHARF_OK) return;
    {
        char line[96];
        int n = snprintf(line, sizeof line, "hello, %.*s\n", (int)task->name_len, task->name);
        WHARF_SEQ_WRITE(seq, line, (size_t)n); /* the host copies `line` before returning */
    }
    if (seq->status != WHARF_OK) return;
    WHARF_SEQ_READ_UNTIL_CLOSE(seq, 1024);
    if (seq->status == WHARF_OK) {
        char line[64];
        int n = snprintf(line, sizeof line, "bye after %zu bytes\n", seq->len);
        seq->host->write(seq->stream, (const uint8_t *)line, (size_t)n, NULL, NULL);
        seq->host->close(seq->stream);
    }
    WHARF_SEQ_END(seq);
}

static int32_t steps_init(const wharf_host_api *host, const wharf_init_args *args, void **instance_out, char *error,
                          size_t error_len) {
    (void)args;
    (void)error;
    (void)error_len;
    *instance_out = (void *)host;
    return WHARF_OK;
}

static int32_t steps_handle_stream(void *instance, wharf_stream *stream) {
    steps_task *task = wharf_seq_new((const wharf_host_api *)instance, stream, sizeof *task, steps);
    if (task == NULL) return WHARF_E_NOMEM;
    wharf_seq_run(&task->seq);
    return WHARF_OK;
}

static const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 3,
    .name = "seq_steps",
    .version = "1.0.0",
    .description = "wharf_seq.h's awaits (test fixture)",
    .init = steps_init,
    .handle_stream = steps_handle_stream,
};

WHARF_PLUGIN_DEFINE(&descriptor)
