import CWharfLinux
import Dispatch
import Logging

/// Off the event loops (a dispatch timer): reports an event loop that has not run for a
/// second, naming the plugin code it is stuck in (its thread's stack, sampled with a signal,
/// as HAProxy's and Envoy's watchdogs do), and how long the stall lasted once it runs again.
/// Its connections wait meanwhile; new ones go to the other loops (`StallAwareDispatch`);
/// past worker_stall_timeout_ms the supervisor replaces the worker.
final class StallWatchdog: @unchecked Sendable {
    static let reportAfter: UInt64 = 1000

    private let watch: LoopWatch
    /// Plugin library path → the instances it serves.
    private let plugins: [String: [String]]
    private let logger: Logger
    private var timer: (any DispatchSourceTimer)?
    /// Timer queue only: per stalled loop, when it last ran and what was found on its stack.
    private var stalled: [Int: (since: UInt64, culprit: String)] = [:]

    init(watch: LoopWatch, plugins: [PluginDescription], logger: Logger) {
        self.watch = watch
        self.plugins = Dictionary(grouping: plugins, by: \.path).mapValues { $0.map(\.instance) }
        self.logger = logger
    }

    func start() {
        _ = cwharf_stack_sampler_install()
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "wharf-stall-watchdog"))
        timer.setEventHandler { [weak self] in self?.check() }
        timer.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250))
        timer.resume()
        self.timer = timer
    }

    func stop() { timer?.cancel() }

    private func check() {
        let now = cwharf_monotonic_ms()
        for index in watch.loops.indices {
            let last = watch.lastRun(index)
            let silence = watch.silence(index, now: now)
            let late = silence > Self.reportAfter
            if late, stalled[index] == nil {
                let culprit = describeStack(of: index)
                stalled[index] = (last, culprit)
                logger.error("""
                    event loop \(index) has not run for \(silence) ms: \(culprit) is blocking it; \
                    its connections wait, new ones go to the other loops
                    """)
            } else if !late, let (since, culprit) = stalled.removeValue(forKey: index) {
                logger.warning("event loop \(index) runs again after a stall of about \(last - since) ms (\(culprit))")
            }
        }
    }

    /// The first plugin frame on the loop's stack: "plugin echo (libecho.so, in on_line)".
    private func describeStack(of index: Int) -> String {
        guard let thread = watch.thread(of: index) else { return "a callback" }
        var frames = [UnsafeMutableRawPointer?](repeating: nil, count: 64)
        let count = Int(cwharf_stack_sample(thread, &frames, Int32(frames.count), 200))
        guard count > 0 else { return "a callback" }
        var object = [CChar](repeating: 0, count: 4096)
        var symbol = [CChar](repeating: 0, count: 512)
        for frame in frames[..<count] {
            guard let frame, cwharf_describe_address(frame, &object, object.count, &symbol, symbol.count) != 0 else { continue }
            let path = String(decoding: object.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let instances = plugins[path] else { continue }
            let name = String(decoding: symbol.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let file = path.split(separator: "/").last.map(String.init) ?? path
            return "plugin \(instances.joined(separator: "/")) (\(file)\(name.isEmpty ? "" : ", in \(name)"))"
        }
        return "a callback outside any plugin"
    }
}
