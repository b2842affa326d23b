import NIOCore

/// What a stream counts of the bytes it moves, and the write-side cap those counts guard.
extension IOStreamHandler {
    /// Bytes read from the socket: in the listener's counters and the stream's total.
    @inline(__always)
    func countReceived(_ count: Int) {
        meter?.received(count)
        bytesReceived &+= UInt64(count)
    }

    /// Bytes handed to the socket (or to the pump on our behalf), counted alike.
    @inline(__always)
    func countSent(_ count: Int) {
        meter?.sent(count)
        bytesSent &+= UInt64(count)
    }

    /// Whether `count` more bytes would leave more than max_write_buffer_size unsent. Below
    /// NIO's high-water mark (64 KiB) the channel is writable, so the count is asked of the
    /// channel only when the cap is lower than that or the output is already backed up.
    func wouldOverflow(adding count: Int, _ context: ChannelHandlerContext) -> Bool {
        if machine.writable, maxWriteBufferSize >= 65536 + count { return false }
        let unsent = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        return unsent + count > maxWriteBufferSize
    }
}
