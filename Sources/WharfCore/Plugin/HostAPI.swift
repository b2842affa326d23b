import CWharf
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `wharf_host_api` table every plugin receives: C function pointers over the Swift
/// stream layer. Each entry is a non-capturing closure (the compiler checks it against the
/// header's signature); state arrives through handles.
///
/// Loop-bound entries resolve the handle through `LoopContext.withStream`, which rejects
/// dead handles and calls from other threads before anything is touched.
public enum HostAPI {
    nonisolated(unsafe) public static let table: UnsafePointer<wharf_host_api> = {
        let pointer = UnsafeMutablePointer<wharf_host_api>.allocate(capacity: 1)
        pointer.initialize(to: makeTable())
        return UnsafePointer(pointer)
    }()

    private static func withStream(_ handle: OpaquePointer?, _ body: (IOStreamHandler) -> Int32) -> Int32 {
        LoopContext.withStream(handle, body)
    }

    // swiftlint:disable:next function_body_length
    private static func makeTable() -> wharf_host_api {
        var api = wharf_host_api()
        api.struct_size = UInt32(MemoryLayout<wharf_host_api>.size)
        api.abi_major = UInt16(WHARF_ABI_MAJOR)
        api.abi_minor = UInt16(WHARF_ABI_MINOR)

        api.log = { instance, level, message, length in
            guard let message else { return }
            let text = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
            PluginLog.logger(for: instance).log(level: PluginLog.level(level), "\(text)")
        }
        api.log_enabled = { instance, level in
            PluginLog.logger(for: instance).logLevel <= PluginLog.level(level) ? 1 : 0
        }
        api.strerror = { status in
            UnsafeRawPointer(StreamError.describe(status).utf8Start).assumingMemoryBound(to: CChar.self)
        }

        api.read_bytes = { handle, count, partial, callback, userdata in
            guard let callback, count <= Int.max else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) {
                $0.startRead(.bytes(count: Int(count), partial: partial != 0), callback: callback, userdata: userdata)
            }
        }
        api.read_until = { handle, delimiter, delimiterLength, maxBytes, callback, userdata in
            guard let callback, let delimiter, delimiterLength > 0, delimiterLength <= 256,
                  maxBytes <= Int.max else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) {
                $0.startReadUntil(delimiter: UnsafeRawBufferPointer(start: delimiter, count: delimiterLength),
                                  maxBytes: Int(maxBytes), callback: callback, userdata: userdata)
            }
        }
        api.read_until_regex = { handle, regex, maxBytes, callback, userdata in
            guard let callback, let regex, maxBytes <= Int.max else { return WHARF_E_INVALID }
            let compiled = Unmanaged<ByteRegex>.fromOpaque(UnsafeRawPointer(regex)).takeUnretainedValue()
            return HostAPI.withStream(handle) {
                $0.startRead(.untilRegex(compiled, maxBytes: Int(maxBytes)), callback: callback, userdata: userdata)
            }
        }
        api.read_until_close = { handle, maxBytes, callback, userdata in
            guard let callback, maxBytes <= Int.max else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) {
                $0.startRead(.untilClose(maxBytes: Int(maxBytes)), callback: callback, userdata: userdata)
            }
        }
        api.write = { handle, data, length, callback, userdata in
            guard data != nil || length == 0 else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) {
                $0.write(UnsafeRawBufferPointer(start: data, count: length), callback: callback, userdata: userdata)
            }
        }
        api.close = { handle in
            HostAPI.withStream(handle) { stream in
                stream.close(reason: nil, graceful: true)
                return WHARF_OK
            }
        }
        api.abort = { handle in
            HostAPI.withStream(handle) { stream in
                stream.close(reason: nil, graceful: false)
                return WHARF_OK
            }
        }
        api.shutdown_write = { handle in
            HostAPI.withStream(handle) { $0.isRelayed ? WHARF_E_BUSY : $0.shutdownWrite() }
        }
        api.set_close_callback = { handle, callback, userdata in
            HostAPI.withStream(handle) { stream in
                stream.setCloseCallback(callback, userdata: userdata)
                return WHARF_OK
            }
        }
        api.set_context = { handle, pointer, free in
            HostAPI.withStream(handle) { stream in
                stream.setUserContext(pointer, free: free)
                return WHARF_OK
            }
        }
        api.get_context = { handle in
            var context: UnsafeMutableRawPointer?
            _ = LoopContext.withStream(handle) { stream in
                context = stream.userContext
                return WHARF_OK
            }
            return context
        }
        api.get_info = { handle, info in
            guard let info, info.pointee.struct_size >= 4 else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { stream in
                var full = StreamInfo.make(for: stream)
                let size = min(Int(info.pointee.struct_size), MemoryLayout<wharf_stream_info>.size)
                withUnsafeBytes(of: &full) { source in
                    UnsafeMutableRawPointer(info).copyMemory(from: source.baseAddress!, byteCount: size)
                }
                info.pointee.struct_size = UInt32(size)
                return WHARF_OK
            }
        }
        api.set_nodelay = { handle, enabled in
            HostAPI.withStream(handle) { $0.setNoDelay(enabled != 0) }
        }
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
        api.waker_create = { handle, out in
            guard let out else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { stream in
                let waker = Waker(loop: stream.loop, handle: stream.handle)
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
        api.connect = { origin, host, hostLength, port, options, callback, userdata in
            guard let callback, let host, hostLength > 0, hostLength <= 255, port > 0, port <= 65535,
                  let parsed = ConnectOptions(options) else { return WHARF_E_INVALID }
            let name = String(decoding: UnsafeRawBufferPointer(start: host, count: hostLength), as: UTF8.self)
            let plugin = UnsafeTransfer(userdata)
            return HostAPI.withStream(origin) { stream in
                var streamOptions = stream.options
                if let cap = parsed.maxBufferSize { streamOptions.maxBufferSize = cap }
                UpstreamConnector.connect(on: stream.loop, host: name, port: Int(port), options: parsed,
                                          streamOptions: streamOptions) { result in
                    switch result {
                    case let .success(upstream): callback(plugin.value, WHARF_OK, upstream.handle)
                    case let .failure(error): callback(plugin.value, error.code, nil)
                    }
                }
                return WHARF_OK
            }
        }
        api.relay = { first, second, options, callback, userdata in
            var idleTimeout: TimeAmount?
            if let options, options.pointee.struct_size >= 8, options.pointee.idle_timeout_ms > 0 {
                idleTimeout = .milliseconds(Int64(options.pointee.idle_timeout_ms))
            }
            let plugin = UnsafeTransfer(userdata)
            return HostAPI.withStream(first) { a in
                var partner: IOStreamHandler?
                let found = LoopContext.withStream(second) { b in
                    partner = b
                    return WHARF_OK
                }
                guard let b = partner else { return found }
                return a.startRelay(with: b, idleTimeout: idleTimeout) { outcome in
                    var result = wharf_relay_result()
                    result.struct_size = UInt32(MemoryLayout<wharf_relay_result>.size)
                    result.reason = outcome.reason?.code ?? WHARF_OK
                    result.bytes_a_to_b = outcome.bytesAToB
                    result.bytes_b_to_a = outcome.bytesBToA
                    callback?(plugin.value, &result)
                }
            }
        }
        api.start_tls = { handle, clientOptions, callback, userdata in
            guard let callback else { return WHARF_E_INVALID }
            return HostAPI.withStream(handle) { stream in
                var client: ClientTLS?
                if stream.isClient {
                    guard let made = ClientTLS(clientOptions) else { return WHARF_E_INVALID }
                    client = made
                } else if clientOptions != nil {
                    return WHARF_E_INVALID
                }
                return stream.startTLS(client: client, serverName: stream.connectHost, callback: callback,
                                       userdata: userdata)
            }
        }
        return api
    }
}

/// A thread-safe way back onto a stream's loop (`waker_post`).
final class Waker: Sendable {
    private let loop: LoopContext
    private let handleBits: UInt64

    init(loop: LoopContext, handle: OpaquePointer?) {
        self.loop = loop
        self.handleBits = UInt64(UInt(bitPattern: handle))
    }

    func post(_ function: wharf_post_fn, userdata: UnsafeMutableRawPointer?) {
        if loop.isStopped {
            function(userdata, WHARF_E_SHUTDOWN)
            return
        }
        let work = PostedWork(function: function, userdata: userdata, loop: loop, handleBits: handleBits)
        loop.eventLoop.execute { work.loop.enqueue(.posted(work.function, work.userdata, work.handleBits)) }
    }

    /// Crosses threads by value; the plugin owns what `userdata` points to.
    private struct PostedWork: @unchecked Sendable {
        let function: wharf_post_fn
        let userdata: UnsafeMutableRawPointer?
        let loop: LoopContext
        let handleBits: UInt64
    }
}

enum CString {
    /// Copies `text` into a caller's C buffer, truncating, always NUL-terminating.
    static func copy(_ text: String, into buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
        guard let buffer, capacity > 0 else { return }
        let bytes = Array(text.utf8.prefix(capacity - 1))
        bytes.withUnsafeBufferPointer { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
        buffer[bytes.count] = 0
    }

    /// Fills a fixed-size C char array (imported as a tuple) with NUL-terminated text.
    static func fill<T>(_ tuple: inout T, with text: String) {
        withUnsafeMutableBytes(of: &tuple) { raw in
            let bytes = Array(text.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }
}

enum StreamInfo {
    static func make(for stream: IOStreamHandler) -> wharf_stream_info {
        var info = wharf_stream_info()
        info.struct_size = UInt32(MemoryLayout<wharf_stream_info>.size)
        info.loop_index = UInt32(stream.loop.loopIndex)
        info.loop_count = UInt32(stream.loop.loopCount)
        info.is_client = stream.isClient ? 1 : 0
        info.stream_id = stream.streamID
        let proxied = stream.facts.proxied
        if let peer = proxied?.source ?? stream.remoteAddress {
            info.peer_family = Int32(peer.protocol.rawValue)
            info.peer_port = UInt32(peer.port ?? 0)
            CString.fill(&info.peer_address, with: peer.ipAddress ?? peer.pathname ?? "")
        }
        if let local = proxied?.destination ?? stream.localAddress {
            info.local_family = Int32(local.protocol.rawValue)
            info.local_port = UInt32(local.port ?? 0)
            CString.fill(&info.local_address, with: local.ipAddress ?? local.pathname ?? "")
        }
        info.proxied = proxied?.source != nil ? 1 : 0
        if let tls = stream.facts.tls {
            info.tls_version = tls.version
            CString.fill(&info.tls_server_name, with: stream.facts.serverName ?? "")
            CString.fill(&info.tls_alpn, with: tls.alpn)
            CString.fill(&info.tls_peer_subject, with: tls.peerSubject)
        }
        return info
    }
}
