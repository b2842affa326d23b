import Foundation
import WharfTestSupport

/// A blocking loopback TCP server for upstream tests: each accepted connection runs
/// `handler(fd)` on its own thread (the fd is closed when it returns). Stopped on release:
/// the accepting thread owns the listening socket and closes it once it has seen the stop,
/// so its last `poll` never runs on a number another test has been given since.
final class TestServer: @unchecked Sendable {
    let port: Int
    private let state = State()

    private final class State: @unchecked Sendable {
        private let lock = NSLock()
        private var stopped = false
        private var acceptedCount = 0
        var isStopped: Bool { lock.withLock { stopped } }
        var accepted: Int { lock.withLock { acceptedCount } }
        func stop() { lock.withLock { stopped = true } }
        func countAccepted() { lock.withLock { acceptedCount += 1 } }
    }

    init(handler: @escaping @Sendable (Int32) -> Void) {
        let listener = LoopbackPort(listen: 1024)
        port = listener.port
        let state = self.state
        Thread {
            while !state.isStopped {
                var poller = pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) > 0 else { continue }
                let client = accept(listener.fd, nil, nil)
                guard client >= 0 else { continue }
                state.countAccepted()
                var timeout = timeval(tv_sec: 20, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                Thread {
                    handler(client)
                    close(client)
                }.start()
            }
            withExtendedLifetime(listener) {} // closed here, after the last poll
        }.start()
    }

    var accepted: Int { state.accepted }

    deinit { state.stop() }

    /// Echoes bytes until the peer half-closes, then half-closes too.
    static func echo() -> TestServer { TestServer(handler: echoLoop) }

    static func echoLoop(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = recv(fd, &buffer, buffer.count, 0)
            if got <= 0 { break }
            var offset = 0
            while offset < got {
                let sent = buffer[offset..<got].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return }
                offset += sent
            }
        }
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads exactly `count` bytes from `fd` (fewer if it ends first).
    static func read(_ fd: Int32, count: Int) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while result.count < count {
            let got = recv(fd, &buffer, count - result.count, 0)
            if got <= 0 { break }
            result += buffer[..<got]
        }
        return result
    }

    /// Reads until the peer's end and says how it ended: "FIN", "reset", or "errno N".
    static func ending(of fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var result: Int
        repeat { result = recv(fd, &buffer, buffer.count, 0) } while result > 0
        return result == 0 ? "FIN" : (errno == ECONNRESET ? "reset" : "errno \(errno)")
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }
}
