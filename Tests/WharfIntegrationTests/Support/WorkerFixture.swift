import Foundation
import WharfTestSupport

/// The `worker` fixture plugin (Fixtures/worker.c) and configs that serve it: each reply says
/// which build, which config and which worker process answered.
enum WorkerFixture {
    /// `relaysAtOnce`: the build declares WHARF_PLUGIN_RELAYS_AT_ONCE (falsely: it reads and
    /// writes), so its listeners accept on the relay pump and each stream builds its channel.
    static func library(version: Int = 1, relaysAtOnce: Bool = false) throws -> String {
        let defines = ["VERSION=\(version)"] + (relaysAtOnce ? ["VARIANT_RELAYS_AT_ONCE"] : [])
        return try FixturePlugins.build("worker_v\(version)\(relaysAtOnce ? "_pump" : "")", source: "worker",
                                        defines: defines)
    }

    /// `listeners` are names; each gets a port-0 listener on 127.0.0.1 serving the fixture,
    /// with `listenerKeys` (e.g. "max_connections: 3") added to each.
    static func config(library: String, tag: String, processes: Int = 2, listeners: [String] = ["main"],
                       extra: String = "", listenerKeys: String = "") -> String {
        var text = "processes: \(processes)\nevent_loops: 1\n" + extra
            + "plugins:\n  fixture: {path: \"\(library)\", config: {tag: \(tag)}}\nlisteners:\n"
        let keys = listenerKeys.isEmpty ? "" : ", " + listenerKeys
        for name in listeners {
            text += "  - {name: \(name), address: 127.0.0.1, port: 0, plugin: fixture\(keys)}\n"
        }
        return text
    }
}

/// One line answered by the worker fixture.
struct WorkerReply: Equatable {
    let version: String
    let config: String
    let pid: Int32

    init(_ line: String) throws {
        let fields = line.split(separator: " ")
        guard fields.count >= 3, fields[2].hasPrefix("pid="), let pid = Int32(fields[2].dropFirst(4)) else {
            throw TestError.failed("not a worker fixture reply: \(line)")
        }
        version = String(fields[0])
        config = String(fields[1])
        self.pid = pid
    }
}

extension TestSocket {
    func ask(_ line: String = "ping") throws -> WorkerReply {
        try send(line + "\n")
        return try WorkerReply(receiveLine())
    }
}

/// Ping-pong load through the fixture while a test reloads or signals: `persistent`
/// connections doing round trips back to back, plus one thread that keeps connecting, asking
/// once and closing. Counts every failure (refused, reset, early close, wrong reply); each
/// persistent connection must keep the config that accepted it.
final class PingPongLoad: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private(set) var failures: [String] = []
    private(set) var roundTrips = 0
    private(set) var connects = 0
    /// The configs new connections saw, in order.
    private(set) var freshConfigs: [String] = []
    private let finished = DispatchGroup()

    init(port: @escaping @Sendable () -> Int, persistent: Int) {
        for index in 0..<persistent {
            thread { [self] in
                let socket = try TestSocket(port: port())
                let first = try socket.ask("hello \(index)")
                while isRunning {
                    let reply = try socket.ask("round \(index)")
                    guard reply == first else {
                        throw TestError.failed("connection \(index) moved from \(first) to \(reply)")
                    }
                    count { roundTrips += 1 }
                }
            }
        }
        thread { [self] in
            while isRunning {
                let socket = try TestSocket(port: port())
                let reply = try socket.ask("fresh")
                count {
                    connects += 1
                    if freshConfigs.last != reply.config { freshConfigs.append(reply.config) }
                }
                usleep(2_000)
            }
        }
    }

    private var isRunning: Bool { lock.withLock { running } }
    private func count(_ update: () -> Void) { lock.withLock(update) }

    private func thread(_ body: @escaping @Sendable () throws -> Void) {
        finished.enter()
        Thread { [self] in
            defer { finished.leave() }
            do { try body() } catch { lock.withLock { failures.append("\(error)") } }
        }.start()
    }

    /// Stops the clients (bounded) and returns the failures.
    @discardableResult
    func stop() -> [String] {
        lock.withLock { running = false }
        _ = finished.wait(timeout: .now() + 20)
        return lock.withLock { failures }
    }
}
