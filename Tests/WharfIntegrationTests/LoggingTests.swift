import Foundation
import Testing
import WharfTestSupport

/// Logging never blocks traffic: standard error is a pipe nobody reads.
@Suite struct LoggingTests {
    @Test func aStalledLogOutputDoesNotStopTraffic() throws {
        let scratch = try TemporaryDirectory()
        let config = try scratch.write("wharf.yaml", WorkerFixture.config(library: try WorkerFixture.library(), tag: "a",
                                                                          processes: 1))
        let ready = scratch.path("ready.json")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Products.wharf)
        process.arguments = ["run", "--config", config, "--ready-file", ready]
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        #expect(eventually { FileManager.default.fileExists(atPath: ready) })
        let listeners = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ready))) as? [[String: Any]]
        let port = try #require(listeners?.first?["port"] as? Int)

        // 20,000 lines of ~150 bytes: far more than the pipe (64 KiB) and the queue (1 MiB) hold.
        let client = try TestSocket(port: port, timeout: 5)
        #expect(try client.ask("log 20000").version == "v1", "the reply comes although the log cannot be written")
        let started = Date()
        for round in 0..<200 { #expect(try client.ask("round \(round)").version == "v1") }
        #expect(Date().timeIntervalSince(started) < 5, "round trips at full speed")
        #expect(try TestSocket(port: port, timeout: 5).ask().version == "v1", "and new connections are served")

        // Once the output drains, the loss is reported.
        var output: [UInt8] = []
        let reader = stderr.fileHandleForReading.fileDescriptor
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) | O_NONBLOCK)
        var chunk = [UInt8](repeating: 0, count: 65536)
        #expect(eventually(seconds: 10) {
            while case let got = read(reader, &chunk, chunk.count), got > 0 { output += chunk[..<got] }
            return String(decoding: output, as: UTF8.self).contains("log line(s): the log output was too slow")
        })
    }
}
