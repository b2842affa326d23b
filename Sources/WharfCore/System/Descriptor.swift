#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum Descriptor {
    /// Writes all of `bytes` with blocking write(2) calls, retrying after EINTR; stops at the
    /// first other failure. Only for threads that may block (the log writer, the CLI, a worker
    /// before its event loops exist).
    public static func writeAll(_ descriptor: CInt, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }

    /// An integer socket option (TCP_NODELAY, the keepalive timings) set with one call on a
    /// socket no NIO channel holds. A failure is ignored, as for a NIO channel's options.
    static func setSocketOption(_ descriptor: CInt, _ level: CInt, _ name: CInt, _ value: CInt) {
        var value = value
        setsockopt(descriptor, level, name, &value, socklen_t(MemoryLayout<CInt>.size))
    }

    /// SO_LINGER 0: the socket's close sends RST and drops unsent data.
    static func resetOnClose(_ descriptor: CInt) {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }
}
