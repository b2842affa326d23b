// cpp_echo — the line echo (plugins/echo) written in C++ against the same C header, as an
// example for C++ plugin authors. Build it with plain c++ (one line):
//
//     c++ -std=c++20 -shared -fPIC -fvisibility=hidden -fno-exceptions -Wall -Wextra -Werror
//         -Iinclude plugins/cpp_echo/cpp_echo.cpp -o libcpp_echo.so
//
// What it shows:
//   - RAII across the boundary: each connection is a C++ object owned by its stream through
//     set_context, whose destructor the host calls exactly once after the close notification.
//     Nothing is freed by hand, and nothing leaks whichever way the connection ends.
//   - No exception crosses into the host: the plugin is built with -fno-exceptions, and it
//     allocates with std::nothrow so a failed allocation is a WHARF_E_NOMEM return, not a
//     throw through C frames.
//   - Callbacks are static member functions with C linkage types; userdata carries `this`.
//
// Config: max_bytes (delimiter included, default 65536), as echo.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include "wharf.h"

namespace {

class Instance;

// One client connection. Owned by its stream (set_context): deleted by the host, once.
class Connection {
public:
    Connection(Instance &instance, wharf_stream *stream) : instance_(instance), stream_(stream) {}
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;
    ~Connection();

    void readLine();

private:
    static void onLine(void *userdata, wharf_stream *stream, int32_t status, const uint8_t *line, size_t len) {
        auto *self = static_cast<Connection *>(userdata);
        if (status != WHARF_OK) return; // closing: the host deletes us after the close notification
        self->lines_ += 1;
        if (self->host().write(stream, line, len, nullptr, nullptr) != WHARF_OK) return;
        self->readLine();
    }

    const wharf_host_api &host() const;

    Instance &instance_;
    wharf_stream *stream_;
    unsigned long lines_ = 0;
};

// The per-loop instance: configuration and a count of live connections (touched by its one
// loop thread only, so no atomics).
class Instance {
public:
    Instance(const wharf_host_api &host, const wharf_instance *identity, size_t maxBytes)
        : host_(host), identity_(identity), maxBytes_(maxBytes) {}

    const wharf_host_api &host() const { return host_; }
    size_t maxBytes() const { return maxBytes_; }

    int32_t accept(wharf_stream *stream) {
        auto *connection = new (std::nothrow) Connection(*this, stream);
        if (connection == nullptr) return WHARF_E_NOMEM;
        live_ += 1;
        host_.set_context(stream, connection, [](void *context) { delete static_cast<Connection *>(context); });
        connection->readLine();
        return WHARF_OK;
    }

    void connectionEnded(unsigned long lines) {
        live_ -= 1;
        if (host_.log_enabled(identity_, WHARF_LOG_DEBUG)) {
            wharf_logf(&host_, identity_, WHARF_LOG_DEBUG, "connection ended after %lu lines; %lu still open", lines,
                       live_);
        }
    }

    unsigned long live() const { return live_; }

private:
    const wharf_host_api &host_;
    const wharf_instance *identity_;
    size_t maxBytes_;
    unsigned long live_ = 0;
};

Connection::~Connection() { instance_.connectionEnded(lines_); }

const wharf_host_api &Connection::host() const { return instance_.host(); }

void Connection::readLine() {
    host().read_until(stream_, reinterpret_cast<const uint8_t *>("\n"), 1, instance_.maxBytes(), onLine, this);
}

// {"max_bytes": N} or {}: the one key this plugin takes (its value is a number, so any
// other quote in the object is another key).
bool parseMaxBytes(std::string_view json, size_t &out, char *error, size_t errorLen) {
    constexpr std::string_view name = "\"max_bytes\"";
    auto key = json.find(name);
    auto firstQuote = json.find('"');
    auto otherQuote = key == std::string_view::npos ? firstQuote : json.find('"', key + name.size());
    if (firstQuote != key || otherQuote != std::string_view::npos) {
        std::snprintf(error, errorLen, "unknown config key (cpp_echo takes only max_bytes)");
        return false;
    }
    if (key == std::string_view::npos) return true;
    auto colon = json.find(':', key);
    char *end = nullptr;
    long long value = colon == std::string_view::npos ? 0 : std::strtoll(json.data() + colon + 1, &end, 10);
    if (value < 1 || value > (1LL << 40)) {
        std::snprintf(error, errorLen, "config key 'max_bytes': expected an integer 1-1099511627776");
        return false;
    }
    out = static_cast<size_t>(value);
    return true;
}

int32_t init(const wharf_host_api *host, const wharf_init_args *args, void **instanceOut, char *error,
             size_t errorLen) {
    size_t maxBytes = 65536;
    if (!parseMaxBytes(std::string_view(args->config_json, args->config_json_len), maxBytes, error, errorLen)) {
        return WHARF_E_INVALID;
    }
    auto *instance = new (std::nothrow) Instance(*host, args->instance, maxBytes);
    if (instance == nullptr) return WHARF_E_NOMEM;
    *instanceOut = instance;
    return WHARF_OK;
}

int32_t handleStream(void *instance, wharf_stream *stream) { return static_cast<Instance *>(instance)->accept(stream); }

// Called after every connection of the instance has been notified closed (and deleted).
void shutdown(void *instance) { delete static_cast<Instance *>(instance); }

const wharf_plugin_descriptor descriptor = {
    .struct_size = sizeof(wharf_plugin_descriptor),
    .abi_major = WHARF_ABI_MAJOR,
    .abi_minor = WHARF_ABI_MINOR,
    .min_host_abi_minor = 0,
    .reserved = 0,
    .name = "cpp_echo",
    .version = "1.0.0",
    .description = "Line echo in C++: RAII connections, no exceptions across the boundary",
    .init = init,
    .handle_stream = handleStream,
    .shutdown = shutdown,
    .config_schema = nullptr,
    .flags = 0,
};

} // namespace

WHARF_PLUGIN_DEFINE(&descriptor)
