import CWharf
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
@testable import WharfCore

@Suite struct IOStreamHandlerTests {
    @Test func readCompletesLaterNeverInsideTheCall() throws {
        let stream = try StreamHarness()
        try stream.feed("hello\nworld")
        #expect(stream.readUntil("\n") == WHARF_OK)
        #expect(stream.events.isEmpty, "the data was buffered, but the callback must not run inside read_until")
        stream.run()
        #expect(stream.events == ["read:hello\n"])
    }

    @Test func pipelinedMessagesAreDeliveredIterativelyInOrder() throws {
        let stream = try StreamHarness()
        stream.recorder.onRead = { recorder, handle, status, _ in
            guard status == WHARF_OK else { return }
            #expect(api.read_until(handle, [10], 1, 0, recordRead, recorder.pointer) == WHARF_OK)
        }
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.run()
        try stream.feed((1...500).map { "m\($0)\n" }.joined())
        #expect(stream.events.count == 500)
        #expect(stream.events.first == "read:m1\n")
        #expect(stream.events.last == "read:m500\n")
        #expect(stream.recorder.maxDepth == 1, "callbacks must not nest")
    }

    @Test func messageSplitByteByByte() throws {
        let stream = try StreamHarness()
        #expect(stream.readUntil("\r\n") == WHARF_OK)
        stream.run()
        for character in "split\r\n" { try stream.feed(String(character)) }
        #expect(stream.events == ["read:split\r\n"])
    }

    @Test func partialReadBytesFollowsTheBuffer() throws {
        let stream = try StreamHarness()
        stream.recorder.onRead = { recorder, handle, status, _ in
            if status == WHARF_OK { _ = api.read_bytes(handle, 20, 1, recordRead, recorder.pointer) }
        }
        try stream.feed(String(repeating: "a", count: 50))
        #expect(api.read_bytes(stream.handle, 20, 1, recordRead, stream.recorder.pointer) == WHARF_OK)
        stream.run()
        #expect(stream.events.map(\.count) == [25, 25, 15])
    }

    @Test func secondReadWhilePendingIsBusy() throws {
        let stream = try StreamHarness()
        #expect(stream.readUntil("\n") == WHARF_OK)
        #expect(stream.readUntil("\n") == WHARF_E_BUSY)
        #expect(api.read_bytes(stream.handle, 1, 0, recordRead, stream.recorder.pointer) == WHARF_E_BUSY)
    }

    @Test func invalidArgumentsAreRefused() throws {
        let stream = try StreamHarness()
        #expect(api.read_until(stream.handle, [], 0, 0, recordRead, nil) == WHARF_E_INVALID)
        #expect(api.read_bytes(stream.handle, 1, 0, nil, nil) == WHARF_E_INVALID)
        #expect(api.write(stream.handle, nil, 3, nil, nil) == WHARF_E_INVALID)
        #expect(api.read_bytes(nil, 1, 0, recordRead, nil) == WHARF_E_INVALID)
    }

    @Test func limitClosesOnlyAfterEarlierRepliesAndReportsIt() throws {
        let stream = try StreamHarness()
        #expect(api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer) == WHARF_OK)
        stream.recorder.onRead = { recorder, handle, status, bytes in
            guard status == WHARF_OK else { return }
            _ = api.write(handle, bytes, bytes.count, nil, nil)
            _ = api.read_until(handle, [10], 1, 4, recordRead, recorder.pointer)
        }
        #expect(stream.readUntil("\n", maxBytes: 4) == WHARF_OK)
        stream.run()
        try stream.feed("ok\ntoo long\n")
        stream.run()
        #expect(stream.events == ["read:ok\n", "read-error:\(WHARF_E_LIMIT)", "close:\(WHARF_E_LIMIT)"])
        #expect(try stream.sent() == "ok\n", "nothing of the refused message is written")
        #expect(!stream.channel.isActive)
    }

    @Test func closeInsideACallbackIsDeferredAndNotifiedOnce() throws {
        let stream = try StreamHarness()
        _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
        stream.recorder.onRead = { _, handle, _, bytes in
            _ = api.write(handle, bytes, bytes.count, nil, nil)
            #expect(api.close(handle) == WHARF_OK)
            #expect(api.close(handle) == WHARF_OK, "close is idempotent")
            #expect(api.write(handle, [1], 1, nil, nil) == WHARF_E_CLOSED)
        }
        #expect(stream.readUntil("\n") == WHARF_OK)
        try stream.feed("bye\n")
        stream.run()
        #expect(stream.events == ["read:bye\n", "close:0"])
        #expect(try stream.sent() == "bye\n", "a graceful close flushes the reply")
        #expect(api.read_bytes(stream.handle, 1, 0, recordRead, nil) == WHARF_E_CLOSED, "the handle is dead")
        #expect(api.get_context(stream.handle) == nil)
    }

    @Test func pendingReadFailsBeforeTheCloseNotification() throws {
        let stream = try StreamHarness()
        _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.run()
        try stream.channel.close().wait()
        stream.run()
        #expect(stream.events == ["read-error:\(WHARF_E_CLOSED)", "close:0"])
    }

    @Test func writesCompleteInOrderAfterTheCallReturns() throws {
        let stream = try StreamHarness()
        let tags = ["a", "b", "c"].map { WriteTag(stream.recorder, $0) }
        for (index, tag) in tags.enumerated() {
            #expect(stream.write("part\(index);", tag: tag) == WHARF_OK)
        }
        #expect(stream.events.isEmpty, "write callbacks must not run inside write")
        stream.run()
        #expect(stream.events == ["write:a:0", "write:b:0", "write:c:0"])
        #expect(try stream.sent() == "part0;part1;part2;")
        let empty = WriteTag(stream.recorder, "empty")
        #expect(stream.write("", tag: empty) == WHARF_OK)
        stream.run()
        #expect(stream.events.last == "write:empty:0")
        withExtendedLifetime((tags, empty)) {}
    }

    @Test func echoingTheBorrowedBytesSendsThemIntact() throws {
        // A write of bytes inside the delivered read shares the receive buffer; data that
        // arrives afterwards must not change what is queued for sending.
        let stream = try StreamHarness()
        let recorder = stream.recorder
        recorder.onRawRead = { handle, data, length in
            #expect(api.write(handle, data, length, nil, nil) == WHARF_OK)
            #expect(api.write(handle, data, min(length, 2), nil, nil) == WHARF_OK)
            _ = api.read_until(handle, [10], 1, 0, recordRead, recorder.pointer)
        }
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.run()
        try stream.feed("first\nsec")
        try stream.feed("ond\n")
        #expect(try stream.sent() == "first\nfisecond\nse")
    }

    @Test func halfClosedPeerStillGetsEveryReply() throws {
        let stream = try StreamHarness()
        _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
        stream.recorder.onRead = { recorder, handle, status, bytes in
            guard status == WHARF_OK else { return }
            _ = api.write(handle, bytes, bytes.count, nil, nil)
            _ = api.read_until(handle, [10], 1, 0, recordRead, recorder.pointer)
        }
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.run()
        try stream.feed("one\ntwo\n")
        stream.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        stream.run()
        #expect(stream.events == ["read:one\n", "read:two\n", "read-error:\(WHARF_E_CLOSED)", "close:0"])
        #expect(try stream.sent() == "one\ntwo\n")
    }

    @Test func readsTheSocketOnlyWhenTheStateMachineWantsTo() throws {
        let stream = try StreamHarness()
        let initial = stream.readCounter.reads
        #expect(initial >= 1, "an idle, empty stream reads so it notices a peer close")
        try stream.feed("unrequested data")
        stream.channel.pipeline.fireChannelReadComplete()
        let afterUnrequested = stream.readCounter.reads
        #expect(afterUnrequested == initial, "buffered data and no read pending: leave the rest in the kernel")
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.run()
        #expect(stream.readCounter.reads > afterUnrequested, "an unsatisfied read asks for more")
    }

    @Test func bufferFullClosesTheStream() throws {
        let stream = try StreamHarness(maxBufferSize: 8)
        _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
        #expect(stream.readUntil("\n") == WHARF_OK)
        stream.run()
        try stream.feed("0123456789")
        stream.run()
        #expect(stream.events == ["read-error:\(WHARF_E_BUFFER_FULL)", "close:\(WHARF_E_BUFFER_FULL)"])
    }

    @Test func contextDestructorRunsOnceAfterTheCloseCallback() throws {
        let stream = try StreamHarness()
        _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
        #expect(api.set_context(stream.handle, stream.recorder.pointer, recordContextFree) == WHARF_OK)
        #expect(api.get_context(stream.handle) == stream.recorder.pointer)
        try stream.channel.close().wait()
        stream.run()
        #expect(stream.events == ["close:0", "context-freed"])
    }

    @Test func readUntilRegexThroughTheHostTable() throws {
        let stream = try StreamHarness()
        var regex: OpaquePointer?
        var error = [CChar](repeating: 0, count: 128)
        let pattern = "\\r?\\n\\r?\\n"
        #expect(api.regex_compile(pattern, pattern.utf8.count, 0, &regex, &error, error.count) == WHARF_OK)
        defer { api.regex_free(regex) }
        #expect(api.read_until_regex(stream.handle, regex, 100, recordRead, stream.recorder.pointer) == WHARF_OK)
        try stream.feed("a: 1\n\nbody")
        stream.run()
        #expect(stream.events == ["read:a: 1\n\n"])

        var bad: OpaquePointer?
        #expect(api.regex_compile("a$", 2, 0, &bad, &error, error.count) == WHARF_E_UNSUPPORTED)
        #expect(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).contains("offset 1"))
        #expect(bad == nil)
    }

    @Test func infoDescribesTheConnection() throws {
        let stream = try StreamHarness()
        var info = wharf_stream_info()
        info.struct_size = UInt32(MemoryLayout<wharf_stream_info>.size)
        #expect(api.get_info(stream.handle, &info) == WHARF_OK)
        #expect(info.stream_id == 1)
        #expect(info.peer_port == 9)
        let address = withUnsafeBytes(of: info.peer_address) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(address == "127.0.0.1")

        // An older, shorter struct gets only what it has room for.
        var short = wharf_stream_info()
        short.struct_size = 8
        short.stream_id = 77
        #expect(api.get_info(stream.handle, &short) == WHARF_OK)
        #expect(short.stream_id == 77, "fields beyond struct_size are not written")
    }

    @Test func wakerPostsOntoTheLoopAndReportsDeadStreams() throws {
        let stream = try StreamHarness()
        var waker: OpaquePointer?
        #expect(api.waker_create(stream.handle, &waker) == WHARF_OK)
        let posted: wharf_post_fn = { userdata, status in
            PluginRecorder.from(userdata).events.append("posted:\(status)")
        }
        #expect(api.waker_post(waker, posted, stream.recorder.pointer) == WHARF_OK)
        stream.run()
        try stream.channel.close().wait()
        stream.run()
        #expect(api.waker_post(waker, posted, stream.recorder.pointer) == WHARF_OK)
        stream.run()
        stream.pluginLoop.markStopped()
        #expect(api.waker_post(waker, posted, stream.recorder.pointer) == WHARF_OK)
        api.waker_release(waker)
        #expect(stream.events == ["posted:0", "posted:\(WHARF_E_CLOSED)", "posted:\(WHARF_E_SHUTDOWN)"],
                "after the loop stops, fn still runs exactly once, with WHARF_E_SHUTDOWN")
    }

    @Test func callsFromAnotherThreadAreRefused() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let eventLoop = group.next()
        let pluginLoop = PluginLoop(loop: LoopContext(eventLoop: eventLoop))
        let handle = try eventLoop.submit { () -> UInt in
            let adapter = PluginStream(pluginLoop: pluginLoop, abiMinor: 3, role: .connected { _ in })
            return UInt(bitPattern: pluginLoop.register(adapter))
        }.wait()
        let pointer = OpaquePointer(bitPattern: handle)
        #expect(api.read_bytes(pointer, 1, 0, recordRead, nil) == WHARF_E_WRONG_THREAD)
        #expect(api.write(pointer, [1], 1, nil, nil) == WHARF_E_WRONG_THREAD)
        #expect(api.close(pointer) == WHARF_E_WRONG_THREAD)
        #expect(api.get_context(pointer) == nil)
    }

    @Test func aClosedStreamIsFreed() throws {
        weak var handler: IOStreamHandler?
        do {
            let stream = try StreamHarness()
            handler = stream.handler
            _ = api.set_close_callback(stream.handle, recordClose, stream.recorder.pointer)
            try stream.channel.close().wait()
            stream.run()
            #expect(stream.events == ["close:0"])
        }
        #expect(handler == nil, "nothing may keep a closed stream's handler (and so its channel) alive")
    }

    @Test func strerrorNamesEveryCode() {
        #expect(String(cString: api.strerror(WHARF_E_LIMIT)!) == "message exceeds max_bytes")
        #expect(String(cString: api.strerror(-999)!) == "unknown error")
    }
}
