import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The output side of a stream past plain writes: half-closing once what was written has
/// gone, and Nagle.
extension IOStreamHandler {
    func shutdownWrite() -> StreamError? {
        if let refusal = machine.shutdownOutput() { return refusal }
        shutdownOutputWhenFlushed()
        return nil
    }

    func shutdownOutputWhenFlushed() {
        let context = liveContext
        whenWritesSent { sent in
            if sent { context?.close(mode: .output, promise: nil) }
        }
    }

    /// See `ChannelHandlerContext.whenWritesSent`; false at once without a channel.
    func whenWritesSent(_ body: @escaping (Bool) -> Void) {
        guard let context else { return body(false) }
        context.whenWritesSent(body)
    }

    var hasUnsentWrites: Bool { context?.hasUnsentWrites ?? false }

    func setNoDelay(_ enabled: Bool) -> StreamError? {
        if machine.state == .relayed(.pumped) {
            relay?.stream(self, reported: .setNoDelay(enabled))
            return nil
        }
        if let bareSocket { // no channel yet, and none needed for this
            Descriptor.setSocketOption(bareSocket.fd, CInt(IPPROTO_TCP), TCP_NODELAY, enabled ? 1 : 0)
            return nil
        }
        guard let channel = liveContext?.channel else { return .closed }
        // Not a TCP socket (or already closing): a no-op, as documented.
        try? channel.syncOptions?.setOption(.tcpOption(.tcp_nodelay), value: enabled ? 1 : 0)
        return nil
    }
}
