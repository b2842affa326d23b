import NIOCore
import NIOEmbedded
@testable import WharfCore

/// The PROXY protocol decoder on arbitrary bytes: it never crashes, a header it accepts
/// lies inside the input, every shorter prefix of an accepted header asks for more (so the
/// verdict never depends on how the bytes were split), and through a channel, fed in
/// chunks, the bytes after the header come out intact.
enum ProxyHeaderCheck {
    enum Verdict: Equatable {
        case header(ProxyProtocolHeader, length: Int)
        case needMore
        case refused
    }

    static func verdict(_ bytes: [UInt8]) -> Verdict {
        let buffer = ByteBuffer(bytes: bytes)
        do {
            guard let (header, length) = try ProxyProtocolDecoder.parse(buffer.readableBytesView) else { return .needMore }
            return .header(header, length: length)
        } catch {
            return .refused
        }
    }

    static func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        let split = input.below(8)
        let bytes = Array(data.dropFirst(1))
        let whole = verdict(bytes)
        if case let .header(_, length) = whole {
            guard length > 0, length <= bytes.count else { throw FuzzFailure("header length \(length) of \(bytes.count)") }
            for cut in 0..<length where verdict(Array(bytes[..<cut])) != .needMore {
                throw FuzzFailure("a \(cut)-byte prefix of a \(length)-byte header was decided early")
            }
        } else if whole == .needMore {
            for cut in 0..<bytes.count where verdict(Array(bytes[..<cut])) != .needMore {
                throw FuzzFailure("a prefix was decided while the whole still needs more")
            }
        }
        try throughChannel(bytes, chunk: split + 1, expecting: whole)
    }

    private static func throughChannel(_ bytes: [UInt8], chunk: Int, expecting whole: Verdict) throws(FuzzFailure) {
        let channel = EmbeddedChannel()
        // An embedded channel never closed keeps its pipeline (a cycle) alive: always finish.
        defer { _ = try? channel.finish() }
        let recorder = EventRecorder()
        do {
            try channel.pipeline.syncOperations.addHandlers([ProxyProtocolDecoder(), recorder])
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + chunk)
                try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
                offset = end
            }
        } catch {
            // A refused header surfaces as an error: expected only when the whole is refused.
            guard whole == .refused else { throw FuzzFailure("the channel refused what parse did not: \(error)") }
            return
        }
        switch whole {
        case let .header(header, length):
            guard recorder.header == header else { throw FuzzFailure("channel header \(String(describing: recorder.header))") }
            guard recorder.bytes == Array(bytes[length...]) else { throw FuzzFailure("bytes after the header changed") }
        case .needMore:
            guard recorder.header == nil, recorder.bytes.isEmpty else { throw FuzzFailure("incomplete header passed on") }
        case .refused:
            guard recorder.header == nil else { throw FuzzFailure("a refused header reached the stream") }
        }
    }
}

/// Records what a decoder passes on.
final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var header: ProxyProtocolHeader?
    var bytes: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytes += Array(buffer: Self.unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ProxyProtocolHeader { header = event }
    }
}
