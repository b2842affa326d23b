import Foundation
import WharfTestSupport

/// Where `swift build` put the products: the folder of this test bundle, which holds the
/// `wharf` executable and the plugin libraries.
enum Products {
    static let directory: URL = {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var folder = executable.deletingLastPathComponent()
        if folder.lastPathComponent == "MacOS" || folder.path.hasSuffix(".xctest/Contents") {
            folder = folder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        }
        return folder
    }()

    static var wharf: String { directory.appendingPathComponent("wharf").path }
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// A scratch folder removed when the test ends.
/// The ABI the host speaks, as include/wharf.h declares it, e.g. "1.5".
enum HostABI {
    static let minor: Int = {
        let header = (try? String(contentsOf: Products.repositoryRoot.appendingPathComponent("include/wharf.h"),
                                  encoding: .utf8)) ?? ""
        let line = header.split(separator: "\n").first { $0.hasPrefix("#define WHARF_ABI_MINOR ") }
        return line.flatMap { Int($0.split(separator: " ")[2]) } ?? -1
    }()

    static var version: String { "1.\(minor)" }
}

final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("wharf-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) throws -> String {
        let file = path(name)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// The children of `pid` (any of its threads may have started them).
func childProcesses(of pid: Int32) -> [Int32] {
    let tasks = "/proc/\(pid)/task"
    let threads = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
    return threads.flatMap { thread -> [Int32] in
        let text = (try? String(contentsOfFile: "\(tasks)/\(thread)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }.sorted()
}

/// Waits (bounded) until `condition` holds.
func eventually(seconds: TimeInterval = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// Runs `wharf ARGS` to completion (bounded in time) and captures its output.
func runWharf(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 20) throws -> ProcessResult {
    let scratch = try TemporaryDirectory()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Products.wharf)
    process.arguments = arguments
    let out = scratch.path("stdout"), err = scratch.path("stderr")
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
    if let stdin {
        let input = try scratch.write("stdin", stdin)
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: input))
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning {
        if Date() > deadline {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            throw TestError.timeout("wharf \(arguments.joined(separator: " "))")
        }
        usleep(10_000)
    }
    return ProcessResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}

/// A running `wharf run` with its own config; listeners bind port 0 and report their
/// real ports through `--ready-file`. Stopped (SIGTERM, then SIGKILL) when released.
final class RunningWharf {
    let scratch: TemporaryDirectory
    let process = Process()
    private(set) var ports: [String: Int] = [:]
    private(set) var portList: [Int] = []

    /// `config` is the YAML text; `{plugins}` in it expands to the products folder.
    /// `environment` entries are added to the test's own; `launcher` (a shell line) starts
    /// wharf instead of running it directly, with `WHARF` and `ARGS` set.
    init(config: String, extraArguments: [String] = [], environment: [String: String] = [:],
         standardInput: FileHandle = .nullDevice, launcher: String? = nil, scratch: TemporaryDirectory? = nil) throws {
        self.scratch = try scratch ?? TemporaryDirectory()
        let configFile = try self.scratch.write("wharf.yaml", config)
        let ready = self.scratch.path("ready.json")
        let arguments = ["run", "--config", configFile, "--ready-file", ready] + extraArguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let launcher {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", launcher + " \"$0\" \"$@\"", Products.wharf] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Products.wharf)
            process.arguments = arguments
        }
        let err = self.scratch.path("stderr")
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = standardInput
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: ready) {
            guard process.isRunning else {
                throw TestError.failed("wharf exited with \(process.terminationStatus): \(stderr)")
            }
            if Date() > deadline {
                stop()
                throw TestError.timeout("wharf did not become ready: \(stderr)")
            }
            usleep(10_000)
        }
        for listener in try readyListeners() {
            guard let port = listener["port"] as? Int else { continue }
            portList.append(port)
            if let plugin = listener["plugin"] as? String, ports[plugin] == nil { ports[plugin] = port }
        }
    }

    /// The ready file's entries (rewritten by every reload that succeeds).
    func readyListeners() throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: scratch.path("ready.json")))
        return try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
    }

    /// The port of the listener named `name`, as the ready file says now.
    func port(named name: String) throws -> Int {
        guard let port = try readyListeners().first(where: { $0["name"] as? String == name })?["port"] as? Int else {
            throw TestError.failed("no listener named \(name)")
        }
        return port
    }

    var stderr: String { (try? String(contentsOfFile: scratch.path("stderr"), encoding: .utf8)) ?? "" }

    /// The supervisor's worker processes, from /proc.
    var workerPIDs: [Int32] { childProcesses(of: process.processIdentifier) }

    /// The one worker process (with the default `processes: 1`): where plugins run.
    func workerPID() throws -> Int32 {
        guard let pid = workerPIDs.first else { throw TestError.failed("wharf has no worker process") }
        return pid
    }

    func port(_ plugin: String) throws -> Int {
        guard let port = ports[plugin] else { throw TestError.failed("no listener for \(plugin)") }
        return port
    }

    var configPath: String { scratch.path("wharf.yaml") }

    /// Rewrites the config file (for a reload).
    func rewriteConfig(_ text: String) throws { _ = try scratch.write("wharf.yaml", text) }

    /// Waits (bounded) until the supervisor has exited; true if it did.
    func waitForExit(seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        return !process.isRunning
    }

    /// SIGTERM and wait (bounded); returns the exit status.
    @discardableResult
    func stop(timeout: TimeInterval = 15) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        return process.terminationStatus
    }

    deinit { stop() }
}

/// Config text with one listener per entry on 127.0.0.1 port 0.
func gatewayConfig(plugins: String, listeners: [String], extra: String = "") -> String {
    var text = extra + "plugins:\n" + plugins + "listeners:\n"
    for plugin in listeners {
        text += "  - {address: 127.0.0.1, port: 0, plugin: \(plugin)}\n"
    }
    return text
}

let seedPlugins = """
      echo: {path: echo, config: {max_bytes: 64}}
      reverse: {path: reverse}
      separator_echo: {path: separator_echo}

    """
