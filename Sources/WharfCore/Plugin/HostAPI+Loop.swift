import CWharf
import NIOCore

/// The host functions that reach beyond one stream's reads and writes: wakers, outgoing
/// connections, relays, TLS upgrades and timers.
extension HostAPI {
    static func addWakers(to api: inout wharf_host_api) {
        api.waker_create = { handle, out in
            guard let out else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { adapter in
                let waker = Waker(pluginLoop: adapter.pluginLoop, handle: adapter.handle)
                out.pointee = OpaquePointer(Unmanaged.passRetained(waker).toOpaque())
                return WHARF_OK
            }
        }
        api.waker_post = { waker, function, userdata in
            guard let waker, let function else { return WHARF_E_INVALID }
            Unmanaged<Waker>.fromOpaque(UnsafeRawPointer(waker)).takeUnretainedValue()
                .post(function, userdata: userdata)
            return WHARF_OK
        }
        api.waker_release = { waker in
            guard let waker else { return }
            Unmanaged<Waker>.fromOpaque(UnsafeRawPointer(waker)).release()
        }
    }

    static func addUpstreams(to api: inout wharf_host_api) {
        api.connect = { origin, host, hostLength, port, options, callback, userdata in
            guard let callback, let host, hostLength > 0, hostLength <= 255, port > 0, port <= 65535,
                  let parsed = ConnectOptions(options) else { return WHARF_E_INVALID }
            let name = String(decoding: UnsafeRawBufferPointer(start: host, count: hostLength), as: UTF8.self)
            let plugin = UnsafeTransfer(userdata)
            return HostAPI.withStream(origin) { adapter in
                let minor = adapter.abiMinor
                adapter.connectUpstream(host: name, port: Int(port), options: parsed) { result in
                    switch result {
                    case let .success(upstream): callback(plugin.value, WHARF_OK, upstream.handle)
                    case let .failure(error): callback(plugin.value, StatusCode.of(error, abiMinor: minor), nil)
                    }
                }
                return WHARF_OK
            }
        }
        api.relay = { first, second, options, callback, userdata in
            let idleTimeout = RelayOptions.idleTimeout(options)
            let plugin = UnsafeTransfer(userdata)
            return HostAPI.withStream(first) { a in
                var partner: PluginStream?
                let found = PluginLoop.withStream(second) { b in
                    partner = b
                    return WHARF_OK
                }
                guard let b = partner else { return found }
                let minor = a.abiMinor
                return a.code(Relay.start(a.stream, b.stream, idleTimeout: idleTimeout) { outcome in
                    var result = wharf_relay_result(outcome, abiMinor: minor)
                    callback?(plugin.value, &result)
                })
            }
        }
        api.start_tls = { handle, clientOptions, callback, userdata in
            guard let callback else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { adapter in
                var client: ClientTLS?
                if adapter.stream.isClient {
                    guard let made = ClientTLS(clientOptions) else { return WHARF_E_INVALID }
                    client = made
                } else if clientOptions != nil {
                    return WHARF_E_INVALID
                }
                return adapter.startTLS(client: client, callback, userdata)
            }
        }
    }

    static func addTimers(to api: inout wharf_host_api) {
        api.timer_start = { handle, delay, callback, userdata, out in
            guard let callback, delay <= UInt64(Int32.max) else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { adapter in
                guard !adapter.finishing else { return WHARF_E_CLOSED }
                out.store(PluginTimer.start(on: adapter, delay: delay, callback, userdata))
                return WHARF_OK
            }
        }
        api.timer_cancel = { timer in
            PluginLoop.withTimer(timer) { $0.cancel() }
        }
    }
}

extension wharf_relay_result {
    /// What a relay callback receives, in the codes the plugin's ABI minor knows.
    init(_ outcome: RelayResult, abiMinor: UInt16) {
        self.init()
        struct_size = UInt32(MemoryLayout<wharf_relay_result>.size)
        reason = StatusCode.of(outcome.reason, abiMinor: abiMinor)
        bytes_a_to_b = outcome.bytesAToB
        bytes_b_to_a = outcome.bytesBToA
    }
}
