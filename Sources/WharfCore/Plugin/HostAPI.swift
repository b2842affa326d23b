import CWharf
import Logging
import NIOCore

/// The `wharf_host_api` table every plugin receives: C function pointers over the plugin
/// adapter (`PluginStream`). Each entry is a non-capturing closure (the compiler checks it
/// against the header's signature); state arrives through handles.
///
/// Loop-bound entries resolve the handle through `PluginLoop.withStream`, which rejects
/// dead handles and calls from other threads before anything is touched.
public enum HostAPI {
    nonisolated(unsafe) public static let table: UnsafePointer<wharf_host_api> = {
        let pointer = UnsafeMutablePointer<wharf_host_api>.allocate(capacity: 1)
        var api = wharf_host_api()
        api.struct_size = UInt32(MemoryLayout<wharf_host_api>.size)
        api.abi_major = UInt16(WHARF_ABI_MAJOR)
        api.abi_minor = UInt16(WHARF_ABI_MINOR)
        addLogging(to: &api)
        addReads(to: &api)
        addStreamControl(to: &api)
        addRegex(to: &api)
        addWakers(to: &api)
        addUpstreams(to: &api)
        addTimers(to: &api)
        addMetrics(to: &api)
        addLoopLevelWork(to: &api)
        addPools(to: &api)
        addConfigAccess(to: &api)
        addConnectRelay(to: &api)
        pointer.initialize(to: api)
        return UnsafePointer(pointer)
    }()

    static func withStream(_ handle: OpaquePointer?, _ body: (PluginStream) -> Int32) -> Int32 {
        PluginLoop.withStream(handle, body)
    }

    private static func addLogging(to api: inout wharf_host_api) {
        api.log = { instance, level, message, length in
            guard let message else { return }
            let text = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
            PluginLog.log(text, level: level, instance: instance)
        }
        api.log_enabled = { instance, level in
            PluginLog.logger(for: instance).logLevel <= PluginLog.level(level) ? 1 : 0
        }
        api.strerror = { status in
            UnsafeRawPointer(StatusCode.describe(status).utf8Start).assumingMemoryBound(to: CChar.self)
        }
    }

    private static func addReads(to api: inout wharf_host_api) {
        api.read_bytes = { handle, count, partial, callback, userdata in
            guard let callback, count <= Int.max else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) {
                $0.read(.bytes(count: Int(count), partial: partial != 0), callback, userdata)
            }
        }
        api.read_until = { handle, delimiter, delimiterLength, maxBytes, callback, userdata in
            guard let callback, let delimiter, delimiterLength > 0, delimiterLength <= 256,
                  maxBytes <= Int.max else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) {
                $0.readUntil(UnsafeRawBufferPointer(start: delimiter, count: delimiterLength),
                             maxBytes: Int(maxBytes), callback, userdata)
            }
        }
        api.read_until_regex = { handle, regex, maxBytes, callback, userdata in
            guard let callback, let regex, maxBytes <= Int.max else { return WHARF_E_INVALID }
            let compiled = Unmanaged<ByteRegex>.fromOpaque(UnsafeRawPointer(regex)).takeUnretainedValue()
            return HostAPI.withStream(handle) {
                $0.read(.untilRegex(compiled, maxBytes: Int(maxBytes)), callback, userdata)
            }
        }
        api.read_until_close = { handle, maxBytes, callback, userdata in
            guard let callback, maxBytes <= Int.max else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { $0.read(.untilClose(maxBytes: Int(maxBytes)), callback, userdata) }
        }
        api.set_read_timeout = { handle, milliseconds in
            HostAPI.withStream(handle) { adapter in
                adapter.code(adapter.stream.setReadTimeout(milliseconds == 0 ? nil : .milliseconds(Int64(milliseconds))))
            }
        }
    }

    private static func addStreamControl(to api: inout wharf_host_api) {
        api.write = { handle, data, length, callback, userdata in
            guard data != nil || length == 0 else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) {
                $0.write(UnsafeRawBufferPointer(start: data, count: length), callback, userdata)
            }
        }
        api.close = { handle in
            HostAPI.withStream(handle) { adapter in
                adapter.stream.close(reason: nil, graceful: true)
                return WHARF_OK
            }
        }
        api.abort = { handle in
            HostAPI.withStream(handle) { adapter in
                adapter.stream.close(reason: nil, graceful: false)
                return WHARF_OK
            }
        }
        api.shutdown_write = { handle in
            HostAPI.withStream(handle) { $0.code($0.stream.shutdownWrite()) }
        }
        api.set_close_callback = { handle, callback, userdata in
            HostAPI.withStream(handle) { adapter in
                adapter.setCloseCallback(callback, userdata: userdata)
                return WHARF_OK
            }
        }
        api.set_context = { handle, pointer, free in
            HostAPI.withStream(handle) { adapter in
                adapter.setUserContext(pointer, free: free)
                return WHARF_OK
            }
        }
        api.get_context = { handle in
            var context: UnsafeMutableRawPointer?
            _ = HostAPI.withStream(handle) { adapter in
                context = adapter.userContext
                return WHARF_OK
            }
            return context
        }
        api.get_info = { handle, info in
            guard let info, info.pointee.struct_size >= 4 else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { adapter in
                var full = StreamInfo.make(for: adapter.stream)
                let written = CStruct.copy(&full, into: info, declaredSize: Int(info.pointee.struct_size))
                info.pointee.struct_size = UInt32(written)
                return WHARF_OK
            }
        }
        api.set_nodelay = { handle, enabled in
            HostAPI.withStream(handle) { $0.code($0.stream.setNoDelay(enabled != 0)) }
        }
    }

    private static func addRegex(to api: inout wharf_host_api) {
        api.regex_compile = { pattern, length, flags, out, errorBuffer, errorLength in
            guard let out, pattern != nil || length == 0 else { return WHARF_E_INVALID }
            let bytes = Array(UnsafeRawBufferPointer(start: pattern, count: length))
            do throws(RegexSyntaxError) {
                let regex = try ByteRegex(pattern: bytes, flags: flags)
                out.pointee = OpaquePointer(Unmanaged.passRetained(regex).toOpaque())
                return WHARF_OK
            } catch {
                CString.copy(error.description, into: errorBuffer, capacity: errorLength)
                out.pointee = nil
                return error.kind == .unsupported ? WHARF_E_UNSUPPORTED : WHARF_E_INVALID
            }
        }
        api.regex_free = { regex in
            guard let regex else { return }
            Unmanaged<ByteRegex>.fromOpaque(UnsafeRawPointer(regex)).release()
        }
    }
}
