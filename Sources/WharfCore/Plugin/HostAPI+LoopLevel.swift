import CWharf
import NIOCore

/// The host functions of ABI 1.5: work an instance does on its loop outside any client
/// connection (posts, timers, connects) and upstream connection pools.
extension HostAPI {
    static func addLoopLevelWork(to api: inout wharf_host_api) {
        api.loop_post = { handle, function, userdata in
            guard let handle, let function else { return WHARF_E_INVALID }
            guard let entry = PluginLoopRegistry.entry(UInt64(UInt(bitPattern: handle)) >> 48) else {
                return WHARF_E_INVALID
            }
            LoopPost.post(handle, on: entry.takeUnretainedValue(), function, userdata)
            return WHARF_OK
        }
        api.loop_timer_start = { handle, delay, callback, userdata, out in
            guard let callback, delay <= UInt64(Int32.max) else { return WHARF_E_INVALID }
            return PluginLoop.withSeat(handle) { seat in
                guard !seat.hasEnded else { return WHARF_E_SHUTDOWN }
                out.store(PluginTimer.start(on: seat, delay: delay, callback, userdata))
                return WHARF_OK
            }
        }
        api.loop_connect = { handle, host, hostLength, port, options, callback, userdata in
            guard let callback, let name = HostAPI.hostName(host, hostLength), port > 0, port <= 65535,
                  let parsed = ConnectOptions(options) else { return WHARF_E_INVALID }
            return PluginLoop.withSeat(handle) { seat in
                guard !seat.hasEnded else { return WHARF_E_SHUTDOWN }
                seat.connect(host: name, port: Int(port), options: parsed) { result in
                    switch result {
                    case let .success(stream): callback(userdata, WHARF_OK, stream.handle)
                    case let .failure(error): callback(userdata, seat.code(error), nil)
                    }
                }
                return WHARF_OK
            }
        }
    }

    static func addPools(to api: inout wharf_host_api) {
        api.pool_create = { handle, host, hostLength, port, options, out in
            guard let out, let name = HostAPI.hostName(host, hostLength), port > 0, port <= 65535,
                  let settings = PoolSettings(options) else { return WHARF_E_INVALID }
            return PluginLoop.withSeat(handle, duringInit: true) { seat in
                guard !seat.hasEnded else { return WHARF_E_SHUTDOWN }
                let pool = PluginPool(seat: seat, host: name, port: Int(port), limits: settings.limits,
                                      connectOptions: settings.connect)
                out.pointee = pool.handle
                return WHARF_OK
            }
        }
        api.pool_acquire = { handle, callback, userdata in
            guard let callback else { return WHARF_E_INVALID }
            return PluginLoop.withPool(handle) { $0.acquire(callback, userdata) }
        }
        api.pool_release = { handle in
            HostAPI.withStream(handle) { stream in
                guard let pool = stream.pooled?.pool else { return WHARF_E_INVALID }
                return pool.release(stream)
            }
        }
        api.pool_destroy = { handle in
            PluginLoop.withPool(handle) { pool in
                pool.destroy()
                return WHARF_OK
            }
        }
    }

    /// A host name as connect takes it: 1-255 bytes.
    static func hostName(_ host: UnsafePointer<CChar>?, _ length: Int) -> String? {
        guard let host, length > 0, length <= 255 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: host, count: length), as: UTF8.self)
    }
}

/// `loop_post` from any thread. The seat is looked up on the loop (its table is the
/// loop's); a post made while the instance's init() still runs waits in the seat until
/// init returns.
enum LoopPost {
    static func post(_ handle: OpaquePointer, on pluginLoop: PluginLoop, _ function: wharf_post_fn,
                     _ userdata: UnsafeMutableRawPointer?) {
        if pluginLoop.isStopped { return function(userdata, WHARF_E_SHUTDOWN) }
        let work = UnsafeTransfer((function, userdata, handle))
        pluginLoop.loop.eventLoop.execute {
            let (function, userdata, handle) = work.value
            guard let seat = pluginLoop.seat(for: handle) else {
                return pluginLoop.loop.enqueue(.completion { function(userdata, WHARF_E_SHUTDOWN) })
            }
            seat.post(function, userdata: userdata)
        }
    }
}
