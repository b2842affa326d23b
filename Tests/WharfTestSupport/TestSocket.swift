import Foundation

/// A blocking loopback TCP client with a receive timeout, so every test loop is bounded.
/// The fd is immutable; one thread may send while another receives, as with any socket.
public final class TestSocket: @unchecked Sendable {
    public let fd: Int32

    /// `source`: the local address to connect from (127.0.0.2, 127.0.0.3 … are distinct
    /// clients on one machine).
    public init(port: Int, timeout: TimeInterval = 10, source: String? = nil) throws {
        // A local until the socket is connected: once `self.fd` is set, a throwing init runs
        // `deinit`, which closes it, so closing it here too closed the number twice, and in
        // the parallel tests the second close hit another test's new socket (a reload test's
        // load, a proxy test's listener: "send: errno 9", a port of 0).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError.failed("socket: \(errno)") }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let error = errno
                close(fd)
                throw TestError.failed("bind \(source): errno \(error)")
            }
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            close(fd)
            throw TestError.failed("connect to \(port): errno \(error)")
        }
        self.fd = fd
    }

    /// Takes over an accepted socket (see `TestListener.accept`).
    public init(adopting fd: Int32, timeout: TimeInterval) {
        self.fd = fd
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Resets the connection (SO_LINGER 0, then close): the peer sees ECONNRESET. The
    /// descriptor is left pointing at /dev/null, so the socket is gone but `fd` stays valid.
    public func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        let null = open("/dev/null", O_RDWR)
        dup2(null, fd)
        close(null)
    }

    /// The client side's port (what a PROXY header must announce as the source).
    public var localPort: Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Reads up to and including the first "\n".
    public func receiveLine() throws -> String {
        var line: [UInt8] = []
        while line.last != 10 { line += try receive(count: 1) }
        return String(decoding: line, as: UTF8.self)
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw TestError.failed("send: errno \(errno)") }
            offset += sent
        }
    }

    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads exactly `count` bytes, or throws on timeout or early close.
    public func receive(count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while result.count < count {
            let got = recv(fd, &chunk, min(chunk.count, count - result.count), 0)
            if got == 0 { throw TestError.failed("closed after \(result.count) of \(count) bytes") }
            if got < 0 { throw TestError.timeout("receive \(count) bytes, got \(result.count) (errno \(errno))") }
            result += chunk[..<got]
        }
        return result
    }

    public func receiveString(count: Int) throws -> String {
        String(decoding: try receive(count: count), as: UTF8.self)
    }

    /// Reads until the peer closes; returns the bytes and whether it ended with a reset.
    public func receiveUntilClose() throws -> (bytes: [UInt8], reset: Bool) {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = recv(fd, &chunk, chunk.count, 0)
            if got == 0 { return (result, false) }
            if got < 0 {
                if errno == ECONNRESET { return (result, true) }
                throw TestError.timeout("waiting for close after \(result.count) bytes (errno \(errno))")
            }
            result += chunk[..<got]
        }
    }

    /// Sends as fast as the socket takes bytes for `seconds` (non-blocking from then on);
    /// returns how much got out. Used to show backpressure reaching the sender.
    public func flood(seconds: TimeInterval, limit: Int = 512 << 20) -> Int {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let chunk = [UInt8](repeating: 65, count: 65536)
        var sent = 0
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, sent < limit {
            let n = chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n } else { usleep(5_000) }
        }
        return sent
    }

    /// True if the peer closed the connection (EOF or reset) within the timeout.
    public func isClosedByPeer() -> Bool {
        (try? receiveUntilClose()) != nil
    }
}

/// A socket bound to 127.0.0.1 on a free port, listening if `backlog` is given (it never
/// accepts: the kernel completes handshakes into the queue until it is full). Closed on
/// release.
public final class LoopbackPort: @unchecked Sendable {
    public let fd: Int32
    public let port: Int

    public convenience init(listen backlog: Int32? = nil) {
        self.init(port: 0, listen: backlog)!
    }

    /// Nil if `port` cannot be bound (another socket has it).
    private init?(port wanted: Int, listen backlog: Int32?) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(wanted).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                guard bind(fd, pointer, length) == 0 else { return false }
                if let backlog { listen(fd, backlog) }
                return getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound || wanted == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }

    /// A port nothing listens on (bound, read back, released), below the kernel's ephemeral
    /// range: a port from that range could be handed to the next `port: 0` bind (a wharf
    /// listener, another test's socket) before the test uses it, and once was.
    public static func unused() -> Int {
        let ephemeralLow = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        if ephemeralLow > 10_001 {
            for _ in 0..<100 {
                if let free = LoopbackPort(port: Int.random(in: 10_000..<ephemeralLow), listen: nil) { return free.port }
            }
        }
        return LoopbackPort().port
    }
}

/// A listening socket on 127.0.0.1 that the test accepts from, to play a server (an
/// upstream that answers, stalls or dies on cue). `port: 0` picks a free port; a given port
/// is bound again (SO_REUSEADDR), so a test can bring "the same" upstream back.
public final class TestListener: @unchecked Sendable {
    public let fd: Int32
    public let port: Int

    /// `backlog` 0 holds one connection: a second, until one is accepted, has its SYNs
    /// dropped, so its connect hangs (a slow or overloaded upstream).
    public init(port: Int = 0, backlog: Int32 = 128) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError.failed("socket: \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, backlog) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestError.failed("listen on \(port): errno \(errno)")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }

    /// The next connection, waiting at most `timeout` for it.
    public func accept(timeout: TimeInterval = 10) throws -> TestSocket {
        var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&waiting, 1, Int32(timeout * 1000)) == 1 else {
            throw TestError.timeout("no connection to port \(port) within \(timeout) s")
        }
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { throw TestError.failed("accept: errno \(errno)") }
        return TestSocket(adopting: client, timeout: timeout)
    }

    /// Whether a connection is waiting to be accepted within `timeout`.
    public func hasPendingConnection(within timeout: TimeInterval) -> Bool {
        var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&waiting, 1, Int32(timeout * 1000)) == 1
    }
}
