import Foundation
import WharfTestSupport

/// Compiles the C fixtures with plain `cc` against `include/wharf.h` alone, with the same
/// warning flags as the shipped plugins. Each variant is built once per test run.
enum FixturePlugins {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: [String: String] = [:]
    private static let outputDirectory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("wharf-fixtures-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// Builds `Fixtures/<source>.c` (with `-D<define>` if given) into `lib<name>.so`.
    static func build(_ name: String, source: String, define: String? = nil) throws -> String {
        try build(name, source: source, defines: define.map { [$0] } ?? [])
    }

    /// Builds `Fixtures/<source>.c` with `-D` each of `defines` into `lib<name>.so`.
    static func build(_ name: String, source: String, defines: [String]) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let path = built[name] { return path }
        let root = Products.repositoryRoot
        let output = outputDirectory.appendingPathComponent("lib\(name).so").path
        var arguments = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden",
                         "-I", root.appendingPathComponent("include").path]
        arguments += defines.map { "-D\($0)" }
        arguments.append("-pthread")
        arguments += [root.appendingPathComponent("Tests/WharfIntegrationTests/Fixtures/\(source).c").path,
                      "-o", output]
        let result = try run("/usr/bin/env", ["cc"] + arguments)
        guard result.status == 0 else { throw TestError.failed("cc failed: \(result.output)") }
        built[name] = output
        return output
    }

    /// Builds C source text (e.g. the README's example) into `lib<name>.so`.
    static func build(_ name: String, code: String) throws -> String {
        let source = outputDirectory.appendingPathComponent("\(name).c")
        try code.write(to: source, atomically: true, encoding: .utf8)
        let output = outputDirectory.appendingPathComponent("lib\(name).so").path
        let result = try run("/usr/bin/env", ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                                              "-fvisibility=hidden", "-I",
                                              Products.repositoryRoot.appendingPathComponent("include").path,
                                              source.path, "-o", output])
        guard result.status == 0 else { throw TestError.failed("cc failed: \(result.output)") }
        return output
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
