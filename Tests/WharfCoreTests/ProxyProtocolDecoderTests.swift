import NIOCore
import NIOEmbedded
import Testing
@testable import WharfCore

/// The PROXY protocol decoder on an EmbeddedChannel: headers split at every byte, the
/// bytes after them passed on untouched, bad input reported as an error.
@Suite struct ProxyProtocolDecoderTests {
    /// Records what reaches the handler after the decoder.
    final class Sink: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var headers: [ProxyProtocolHeader] = []
        var bytes: [UInt8] = []
        var errors: [String] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            bytes += Array(buffer: unwrapInboundIn(data))
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let header = event as? ProxyProtocolHeader { headers.append(header) }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append("\(error)") }
    }

    func feed(_ chunks: [[UInt8]]) throws -> (Sink, EmbeddedChannel) {
        let sink = Sink()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([ProxyProtocolDecoder(), sink])
        for chunk in chunks { try channel.writeInbound(ByteBuffer(bytes: chunk)) }
        return (sink, channel)
    }

    static let v1 = Array("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".utf8)
    static let v2 = ProxyProtocolDecoder.v2Signature
        + [0x21, 0x11, 0x00, 0x0C, 192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB]

    @Test(arguments: [v1, v2])
    func everySplitGivesTheSameHeaderAndPayload(header: [UInt8]) throws {
        let message = header + Array("payload".utf8)
        for split in 1..<message.count {
            let (sink, channel) = try feed([Array(message[..<split]), Array(message[split...])])
            #expect(sink.headers.count == 1, "split at \(split)")
            #expect(sink.headers.first?.source == (try SocketAddress(ipAddress: "192.168.0.1", port: 56324)))
            #expect(sink.headers.first?.destination == (try SocketAddress(ipAddress: "192.168.0.11", port: 443)))
            #expect(sink.bytes == Array("payload".utf8), "split at \(split)")
            #expect(sink.errors.isEmpty)
            #expect(throws: Never.self) { try channel.pipeline.syncOperations.handler(type: Sink.self) }
            _ = try? channel.finish()
        }
    }

    @Test func theDecoderLeavesThePipelineOnceDone() throws {
        let (_, channel) = try feed([Self.v1])
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: ProxyProtocolDecoder.self) }
        _ = try? channel.finish()
    }

    @Test(arguments: ["GET / HTTP/1.1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                      "PROXY " + String(repeating: "x", count: 120)])
    func badHeadersAreErrors(text: String) throws {
        let (sink, channel) = try feed([Array(text.utf8)])
        #expect(sink.errors.count == 1)
        #expect(sink.headers.isEmpty && sink.bytes.isEmpty)
        _ = try? channel.finish()
    }

    @Test func anIncompleteHeaderWaits() throws {
        let (sink, channel) = try feed([Array(Self.v1.prefix(20))])
        #expect(sink.headers.isEmpty && sink.errors.isEmpty && sink.bytes.isEmpty)
        _ = try? channel.finish()
    }
}
