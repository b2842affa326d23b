import NIOCore
import NIOEmbedded

/// Runs `wharf plugin test` cases: the plugin is loaded and initialized as the daemon does,
/// and its connections are real streams (IOStreamHandler, the real host table and
/// dispatcher) on in-memory channels of one EmbeddedEventLoop, whose clock is virtual: timers
/// and timeouts fire when a step advances it, without waiting.
public struct PluginTestRunner {
    public struct Outcome: Sendable {
        public let name: String
        public let passed: Bool
        /// Why it failed, with where (the step's line) and what differed.
        public let failure: String?
    }

    let library: PluginLibrary
    let file: PluginTestFile
    let fileName: String

    public init(library: PluginLibrary, file: PluginTestFile, fileName: String) {
        self.library = library
        self.file = file
        self.fileName = fileName
    }

    public func run() -> [Outcome] {
        file.cases.map { testCase in
            let session = PluginTestSession(library: library, testCase: testCase)
            let failure = session.run(config: testCase.config ?? file.config)
            session.finish()
            return Outcome(name: testCase.name, passed: failure == nil, failure: failure)
        }
    }
}

/// A step that did not hold.
struct StepFailure: Error {
    let message: String
}

/// One case's world: the loop, the plugin instance, the connections.
final class PluginTestSession: UpstreamDialer {
    let library: PluginLibrary
    let testCase: PluginTestCase
    let eventLoop = EmbeddedEventLoop()
    let loop: LoopContext
    let pluginLoop: PluginLoop
    private var instance: PluginInstance?
    private var clients: [VirtualPeer] = []
    private var upstreams: [String: [VirtualPeer]] = [:]

    init(library: PluginLibrary, testCase: PluginTestCase) {
        self.library = library
        self.testCase = testCase
        loop = LoopContext(eventLoop: eventLoop)
        pluginLoop = PluginLoop(loop: loop)
        loop.dialer = self
    }

    /// Runs the case; nil if every step held, else why not.
    func run(config: ConfigTree?) -> String? {
        do {
            let checked = try library.initConfig(config, at: testCase.location, path: "plugins.test.config")
            instance = try PluginInstance(name: "test", library: library, configJSON: checked.json, config: checked.values,
                                          pluginLoop: pluginLoop, loopCount: 1)
        } catch {
            return "\(testCase.location): the plugin refused the config: \(error)"
        }
        eventLoop.run()
        for _ in 0..<testCase.connections { openClient() }
        for step in testCase.steps {
            do {
                try perform(step.action)
            } catch let failure as StepFailure {
                return "\(step.location): \(failure.message)"
            } catch {
                return "\(step.location): \(error)"
            }
        }
        return nil
    }

    /// Closes what is left and ends the instance, as a shutdown does.
    func finish() {
        for peer in clients + upstreams.values.joined() { peer.abandon() }
        eventLoop.run()
        if let seat = instance?.seat {
            seat.end {}
            eventLoop.run()
        }
        instance?.shutdown()
        try? eventLoop.syncShutdownGracefully()
    }

    private func openClient() {
        guard let instance else { return }
        let owner = PluginStream(pluginLoop: pluginLoop, abiMinor: library.abiMinor, role: .served(instance))
        clients.append(VirtualPeer(loop: loop, owner: owner, isClient: false))
        eventLoop.run()
    }

    private func client(_ number: Int) throws -> VirtualPeer {
        guard number >= 1, number <= clients.count else {
            throw StepFailure(message: "there is no connection \(number) (the case opens \(clients.count))")
        }
        return clients[number - 1]
    }

    /// The latest connection the plugin opened to `target`.
    private func upstream(_ target: String) throws -> VirtualPeer {
        guard let peer = upstreams[target]?.last else {
            throw StepFailure(message: "the plugin has not connected to \(target)")
        }
        return peer
    }

    private func perform(_ action: PluginTestCase.Action) throws {
        switch action {
        case let .send(connection, bytes, split):
            try client(connection).send(bytes, split: split)
        case let .expect(connection, expectation, within):
            let peer = try client(connection)
            try awaitCondition(within) { peer.matches(expectation) } else: { peer.mismatch(expectation) }
        case let .expectNothing(connection):
            let peer = try client(connection)
            eventLoop.run()
            if !peer.received.isEmpty { throw StepFailure(message: "expected nothing more, received \(Bytes.show(peer.received))") }
        case let .expectClose(connection, reason, within):
            let peer = try client(connection)
            try awaitCondition(within) { peer.isClosed && (reason == nil || peer.closeReason == reason) } else: {
                peer.isClosed ? "closed with reason \(peer.closeReason), expected \(reason ?? "any")"
                    : "still open\(within > .zero ? " after \(Bytes.show(within))" : "")"
                    + (peer.received.isEmpty ? "" : "; unread: \(Bytes.show(peer.received))")
            }
        case let .halfClose(connection):
            try client(connection).halfClose()
        case let .reset(connection):
            try client(connection).reset()
        case let .advance(amount):
            eventLoop.advanceTime(by: amount)
            eventLoop.run()
        case let .upstreamExpect(target, expectation, within):
            try awaitCondition(within) { (try? self.upstream(target).matches(expectation)) ?? false } else: {
                (try? self.upstream(target).mismatch(expectation)) ?? "the plugin has not connected to \(target)"
            }
        case let .upstreamSend(target, bytes):
            try upstream(target).send(bytes, split: .whole)
        case let .upstreamClose(target):
            try upstream(target).halfClose()
        case let .expectUpstreamConnections(target, count):
            eventLoop.run()
            let made = upstreams[target]?.count ?? 0
            if made != count { throw StepFailure(message: "expected \(count) connections to \(target), the plugin made \(made)") }
        }
    }

    /// Runs the loop; while `condition` fails, moves the virtual clock in 10 ms steps, up to
    /// `within`.
    private func awaitCondition(_ within: TimeAmount, _ condition: () -> Bool, else describe: () -> String) throws {
        eventLoop.run()
        var waited = TimeAmount.zero
        while !condition() {
            guard waited < within else { throw StepFailure(message: describe()) }
            let step = min(.milliseconds(10), within - waited)
            eventLoop.advanceTime(by: step)
            eventLoop.run()
            waited = waited + step
        }
    }

    // MARK: UpstreamDialer

    func dial(host: String, port: Int, options: ConnectOptions, streamOptions: StreamOptions, holdsDrain: Bool,
              owner: any StreamOwner, connectFailed: @escaping (StreamError) -> Void) {
        let target = Endpoint.text(host, port)
        switch testCase.upstreams[target] ?? .refuse {
        case .accept:
            let peer = VirtualPeer(loop: loop, owner: owner, isClient: true, options: streamOptions, holdsDrain: holdsDrain)
            upstreams[target, default: []].append(peer)
        case .refuse: loop.enqueue(.completion { connectFailed(.refused) })
        case .unreachable: loop.enqueue(.completion { connectFailed(.unreachable) })
        case .timeout:
            let loop = self.loop
            _ = eventLoop.scheduleTask(in: options.timeout) { loop.dispatch { connectFailed(.timedOut) } }
        }
    }
}

/// The machine-readable report of `wharf plugin test --json`.
public enum PluginTestReport {
    public static func json(_ outcomes: [PluginTestRunner.Outcome]) -> String {
        let cases = outcomes.map { outcome in
            var entry = "{\"name\":"
            JSONValue.quote(outcome.name, into: &entry)
            entry += ",\"passed\":\(outcome.passed)"
            if let failure = outcome.failure {
                entry += ",\"failure\":"
                JSONValue.quote(failure, into: &entry)
            }
            return entry + "}"
        }
        let failed = outcomes.filter { !$0.passed }.count
        return "{\"passed\":\(outcomes.count - failed),\"failed\":\(failed),\"cases\":[" + cases.joined(separator: ",") + "]}"
    }
}
