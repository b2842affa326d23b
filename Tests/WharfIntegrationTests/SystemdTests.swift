import Foundation
import Testing
import WharfTestSupport

/// What systemd sees: sd_notify datagrams (a fake NOTIFY_SOCKET) and socket activation.
@Suite(.serialized) struct SystemdTests {
    @Test func notifiesReadyReloadingStoppingAndTheWatchdog() throws {
        let scratch = try TemporaryDirectory()
        let listener = try NotifyListener(path: scratch.path("notify.sock"))
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a",
                                          extra: "worker_stall_timeout_ms: 2500\n")
        let wharf = try RunningWharf(config: config, environment: [
            "NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "600000",
        ], scratch: scratch)
        let supervisor = wharf.process.processIdentifier
        #expect(listener.waitFor { $0.contains { $0.contains("READY=1") } })
        let ready = try #require(listener.messages.first { $0.contains("READY=1") })
        #expect(ready.contains("MAINPID=\(supervisor)"))
        #expect(ready.contains("STATUS=serving generation 1"))
        #expect(listener.messages.first { $0 != "WATCHDOG=1" } == ready, "READY=1 is the first word")

        // The watchdog pings while every worker's loops turn (every WATCHDOG_USEC / 2).
        #expect(listener.waitFor { $0.filter { $0 == "WATCHDOG=1" }.count >= 3 })

        kill(supervisor, SIGHUP)
        #expect(listener.waitFor { $0.contains { $0.contains("STATUS=serving generation 2") } })
        let reloading = try #require(listener.messages.firstIndex { $0.hasPrefix("RELOADING=1") })
        #expect(listener.messages[reloading].contains("MONOTONIC_USEC="))
        #expect(listener.messages[reloading...].contains { $0.contains("READY=1") }, "READY=1 follows RELOADING=1")

        // A worker whose event loop is stuck stops the pings, until it is replaced.
        let stuck = try TestSocket(port: try wharf.port(named: "main"))
        _ = try stuck.ask()
        try stuck.send("spin\n")
        usleep(700_000)
        let before = listener.messages.count
        usleep(900_000)
        #expect(listener.messages[before...].filter { $0 == "WATCHDOG=1" }.isEmpty, "no pings while a worker is stuck")
        #expect(listener.waitFor { $0[before...].contains("WATCHDOG=1") }, "pings resume once it is replaced")

        #expect(wharf.stop() == 0)
        #expect(listener.messages.contains { $0.hasPrefix("STOPPING=1") })
    }

    @Test func socketActivationServesThePassedSocket() throws {
        let passed = LoopbackPort(listen: 64)
        let config = WorkerFixture.config(library: try WorkerFixture.library(), tag: "a", processes: 1)
            .replacing("port: 0", with: "port: \(passed.port)")
        // As systemd does: the socket at fd 3, LISTEN_FDS=1, LISTEN_PID = the pid that execs wharf.
        let wharf = try RunningWharf(config: config, standardInput: FileHandle(fileDescriptor: passed.fd, closeOnDealloc: false),
                                     launcher: "exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec")
        #expect(try TestSocket(port: passed.port).ask().version == "v1")
        #expect(eventually { wharf.stderr.contains("using the socket passed for 127.0.0.1:\(passed.port)") })
        var info = stat()
        fstat(passed.fd, &info)
        let worker = try wharf.workerPID()
        let links = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(worker)/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(worker)/fd/\($0)")
        }
        #expect(links.contains("socket:[\(info.st_ino)]"), "the worker accepts from the very socket passed")
        #expect(wharf.stop() == 0)
    }
}

/// A fake NOTIFY_SOCKET: a Unix datagram socket collecting every message.
final class NotifyListener: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var open = true

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw TestError.failed("bind \(path): errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while lock.withLock({ open }) {
                let got = recv(fd, &buffer, buffer.count, 0)
                if got > 0 { lock.withLock { received.append(String(decoding: buffer[..<got], as: UTF8.self)) } }
            }
        }.start()
    }

    var messages: [String] { lock.withLock { received } }

    /// Waits (bounded) until the messages so far satisfy `condition`.
    func waitFor(seconds: TimeInterval = 10, _ condition: ([String]) -> Bool) -> Bool {
        eventually(seconds: seconds) { condition(messages) }
    }

    deinit {
        lock.withLock { open = false }
        usleep(150_000)
        close(fd)
    }
}
