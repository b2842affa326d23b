import NIOCore

/// The bytes being handed to a read completion: a write of bytes inside them can send a
/// slice of the receive buffer instead of a copy (copy-on-write keeps the slice intact if
/// the receive buffer changes later).
struct DeliveredBytes {
    let buffer: ByteBuffer
    let base: UnsafeRawPointer

    func slice(covering bytes: UnsafeRawBufferPointer) -> ByteBuffer? {
        guard let start = bytes.baseAddress else { return nil }
        let offset = base.distance(to: start)
        guard offset >= 0, offset + bytes.count <= buffer.readableBytes else { return nil }
        return buffer.getSlice(at: buffer.readerIndex + offset, length: bytes.count)
    }
}

extension ChannelHandlerContext {
    /// Calls `body` once everything written so far has reached the socket (true), or the
    /// channel closed first (false): the barrier behind a graceful close, a half-close and a
    /// relay's hand-over.
    func whenWritesSent(_ body: @escaping (Bool) -> Void) {
        let sent = eventLoop.makePromise(of: Void.self)
        sent.futureResult.assumeIsolated().whenComplete { result in
            if case .success = result { body(true) } else { body(false) }
        }
        writeAndFlush(NIOAny(ByteBuffer()), promise: sent)
    }

    var hasUnsentWrites: Bool {
        ((try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0) > 0
    }
}
