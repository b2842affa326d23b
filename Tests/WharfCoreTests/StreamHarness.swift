import CWharf
import NIOCore
import NIOEmbedded
@testable import WharfCore

/// The host table, as a plugin sees it.
let api = HostAPI.table.pointee

/// What a fake plugin saw, recorded through the real host table and C callbacks.
final class PluginRecorder {
    var events: [String] = []
    var handle: OpaquePointer?
    var onRead: ((PluginRecorder, OpaquePointer?, Int32, [UInt8]) -> Void)?
    /// Sees the borrowed pointer itself, as a C plugin would.
    var onRawRead: ((OpaquePointer?, UnsafePointer<UInt8>?, Int) -> Void)?
    private var depth = 0
    private(set) var maxDepth = 0

    var pointer: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> PluginRecorder {
        Unmanaged<PluginRecorder>.fromOpaque(pointer!).takeUnretainedValue()
    }

    /// Tracks how deeply plugin callbacks nest: the dispatcher must keep this at 1.
    func inCallback(_ body: () -> Void) {
        depth += 1
        maxDepth = max(maxDepth, depth)
        body()
        depth -= 1
    }
}

/// Tags one write so its completion can be told apart.
final class WriteTag {
    let recorder: PluginRecorder
    let label: String
    init(_ recorder: PluginRecorder, _ label: String) {
        self.recorder = recorder
        self.label = label
    }
    var pointer: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
}

let recordRead: wharf_read_cb = { userdata, stream, status, data, length in
    let recorder = PluginRecorder.from(userdata)
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
    recorder.events.append(status == WHARF_OK ? "read:\(String(decoding: bytes, as: UTF8.self))" : "read-error:\(status)")
    recorder.inCallback {
        recorder.onRawRead?(stream, data, length)
        recorder.onRead?(recorder, stream, status, bytes)
    }
}

let recordWrite: wharf_write_cb = { userdata, _, status in
    let tag = Unmanaged<WriteTag>.fromOpaque(userdata!).takeUnretainedValue()
    tag.recorder.events.append("write:\(tag.label):\(status)")
}

let recordClose: wharf_close_cb = { userdata, _, reason in
    PluginRecorder.from(userdata).events.append("close:\(reason)")
}

let recordContextFree: wharf_context_free_fn = { context in
    PluginRecorder.from(context).events.append("context-freed")
}

/// Counts `read()` calls reaching the socket: the handler's demand decisions.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// One IOStreamHandler on an EmbeddedChannel (whose loop's clock is virtual), driven
/// through the host API as a plugin would: the stream's owner is the real plugin adapter.
struct StreamHarness {
    let channel = EmbeddedChannel()
    let loop: LoopContext
    let pluginLoop: PluginLoop
    let recorder = PluginRecorder()
    let readCounter = ReadCounter()
    let handler: IOStreamHandler

    init(maxBufferSize: Int = 1 << 20, timeouts: StreamTimeouts = StreamTimeouts(), abiMinor: UInt16 = 3) throws {
        loop = LoopContext(eventLoop: channel.embeddedEventLoop)
        pluginLoop = PluginLoop(loop: loop)
        let recorder = self.recorder
        let adapter = PluginStream(pluginLoop: pluginLoop, abiMinor: abiMinor, role: .connected { result in
            if case let .success(stream) = result { recorder.handle = stream.handle }
        })
        handler = IOStreamHandler(loop: loop, options: StreamOptions(maxBufferSize: maxBufferSize, timeouts: timeouts),
                                  streamID: 1, owner: adapter)
        try channel.pipeline.syncOperations.addHandler(readCounter)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
    }

    var handle: OpaquePointer? { recorder.handle }
    var events: [String] { recorder.events }

    func feed(_ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    func run() { channel.embeddedEventLoop.run() }

    /// Moves the loop's virtual clock (running what falls due).
    func advance(by amount: TimeAmount) { channel.embeddedEventLoop.advanceTime(by: amount) }

    func readUntil(_ delimiter: String, maxBytes: Int = 0) -> Int32 {
        let bytes = Array(delimiter.utf8)
        return api.read_until(handle, bytes, bytes.count, maxBytes, recordRead, recorder.pointer)
    }

    func write(_ text: String, tag: WriteTag? = nil) -> Int32 {
        let bytes = Array(text.utf8)
        return api.write(handle, bytes, bytes.count, tag == nil ? nil : recordWrite, tag?.pointer)
    }

    /// Everything written to the peer so far.
    func sent() throws -> String {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return text
    }
}
