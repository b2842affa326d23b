/* One source, several broken plugins: compiled with -DVARIANT_<NAME> at test time. */
#include <stddef.h>
#include <string.h>

#include "wharf.h"

static int32_t fixture_init(const wharf_host_api *host, const wharf_init_args *args, void **out, char *error,
                            size_t error_len) {
    (void)host;
    (void)args;
    *out = NULL;
#ifdef VARIANT_REFUSE
    strncpy(error, "listen_port must be set", error_len - 1);
    return WHARF_E_INVALID;
#else
    (void)error;
    (void)error_len;
    return WHARF_OK;
#endif
}

static int32_t fixture_handle_stream(void *instance, wharf_stream *stream) {
    (void)instance;
    (void)stream;
    return WHARF_E_INVALID;
}

static const wharf_plugin_descriptor descriptor = {
#ifdef VARIANT_OLDER_MINOR
    /* A 1.6-sized descriptor: `flags` lies past its end, so the host must not read it
     * (set here so that reading it would show). */
    .struct_size = offsetof(wharf_plugin_descriptor, flags),
    .flags = WHARF_PLUGIN_RELAYS_AT_ONCE,
#else
    .struct_size = sizeof(wharf_plugin_descriptor),
#endif
#ifdef VARIANT_MAJOR2
    .abi_major = 2,
#else
    .abi_major = WHARF_ABI_MAJOR,
#endif
#ifdef VARIANT_OLDER_MINOR
    .abi_minor = 0, /* built against ABI 1.0: loads in any 1.x host */
#else
    .abi_minor = WHARF_ABI_MINOR,
#endif
#ifdef VARIANT_NEWER_MINOR
    .min_host_abi_minor = WHARF_ABI_MINOR + 1,
#endif
    .name = "fixture",
    .version = "9.9.9",
    .description = "ABI test fixture",
    .init = fixture_init,
    .handle_stream = fixture_handle_stream,
};

#if defined(VARIANT_NO_ENTRY)
const wharf_plugin_descriptor *some_other_symbol(void);
WHARF_EXPORT const wharf_plugin_descriptor *some_other_symbol(void) { return &descriptor; }
#elif defined(VARIANT_ENTRY_V2)
const wharf_plugin_descriptor *wharf_plugin_v2(void);
WHARF_EXPORT const wharf_plugin_descriptor *wharf_plugin_v2(void) { return &descriptor; }
#else
WHARF_PLUGIN_DEFINE(&descriptor)
#endif
