import CWharf
import NIOCore

/// The C option structs a plugin passes, read into Swift values. Each is read only as far
/// as the caller's `struct_size` says (older plugins pass shorter ones).
extension ConnectOptions {
    /// Nil if a field is invalid.
    init?(_ pointer: UnsafePointer<wharf_connect_options>?) {
        self.init()
        guard let pointer else { return }
        let size = Int(pointer.pointee.struct_size)
        guard let raw = CStruct.read(pointer, declaredSize: size, zero: wharf_connect_options()) else { return nil }
        if raw.timeout_ms > 0 { timeout = .milliseconds(Int64(raw.timeout_ms)) }
        noDelay = raw.nodelay != 0 || size < MemoryLayout.offset(of: \wharf_connect_options.nodelay)! + 4
        if raw.max_buffer_size > 0 { maxBufferSize = Int(clamping: raw.max_buffer_size) }
        if let address = raw.source_address {
            guard raw.source_port <= 65535,
                  let bound = try? SocketAddress(ipAddress: String(cString: address), port: Int(raw.source_port)) else {
                return nil
            }
            sourceAddress = bound
        } else if raw.source_port > 0 {
            // A port alone binds the wildcard address (not Tornado's loopback surprise).
            guard raw.source_port <= 65535 else { return nil }
            sourceAddress = try? SocketAddress(ipAddress: "0.0.0.0", port: Int(raw.source_port))
        }
        if size >= MemoryLayout.offset(of: \wharf_connect_options.tls)! + MemoryLayout<UnsafeRawPointer>.size,
           let tlsOptions = raw.tls {
            guard let tls = ClientTLS(tlsOptions) else { return nil }
            self.tls = tls
        }
    }
}

extension ClientTLS {
    init?(_ pointer: UnsafePointer<wharf_tls_client_options>?) {
        var raw = wharf_tls_client_options()
        if let pointer {
            guard let read = CStruct.read(pointer, declaredSize: Int(pointer.pointee.struct_size), zero: raw) else {
                return nil
            }
            raw = read
        }
        func text(_ field: UnsafePointer<CChar>?) -> String? {
            field.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        self.init(Key(noVerify: raw.insecure_no_verify != 0, caFile: text(raw.ca_file), alpn: text(raw.alpn),
                      certificateFile: text(raw.certificate_file), keyFile: text(raw.key_file)),
                  serverName: text(raw.server_name))
    }
}

/// A plugin's `wharf_pool_options`, with the documented defaults filled in.
struct PoolSettings {
    var limits = ConnectionPoolMachine.Limits()
    var connect = ConnectOptions()

    /// Nil if a field is invalid (max_idle over max_total, bad connect options).
    init?(_ pointer: UnsafePointer<wharf_pool_options>?) {
        guard let pointer else { return }
        guard let raw = CStruct.read(pointer, declaredSize: Int(pointer.pointee.struct_size), zero: wharf_pool_options())
        else { return nil }
        if raw.max_total > 0 { limits.maxTotal = Int(raw.max_total) }
        limits.maxIdle = raw.max_idle > 0 ? Int(raw.max_idle) : limits.maxTotal
        guard limits.maxIdle <= limits.maxTotal else { return nil }
        if raw.idle_timeout_ms > 0 { limits.idleTimeout = .milliseconds(Int64(raw.idle_timeout_ms)) }
        if raw.acquire_timeout_ms > 0 { limits.acquireTimeout = .milliseconds(Int64(raw.acquire_timeout_ms)) }
        if raw.max_waiting > 0 { limits.maxWaiting = Int(raw.max_waiting) }
        if let options = raw.connect {
            guard let connect = ConnectOptions(options) else { return nil }
            self.connect = connect
        }
    }
}

/// A plugin's `wharf_relay_options`: the relay's idle limit (nil: none, or no options).
enum RelayOptions {
    static func idleTimeout(_ pointer: UnsafePointer<wharf_relay_options>?) -> TimeAmount? {
        guard let options = pointer?.pointee, options.struct_size >= 8, options.idle_timeout_ms > 0 else { return nil }
        return .milliseconds(Int64(options.idle_timeout_ms))
    }
}
