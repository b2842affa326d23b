import Foundation
import Testing
import WharfTestSupport

/// The status page in a real browser: headless Chromium loads `/`, lets the page refresh
/// itself from `/status`, and the listener table must show the real number of open
/// connections. `.ci/run` installs Chromium and sets WHARF_REQUIRE_CHROMIUM, so there the
/// test cannot be skipped.
@Suite struct StatusPageTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let required = ProcessInfo.processInfo.environment["WHARF_REQUIRE_CHROMIUM"] != nil

    @Test(.enabled(if: chromium != nil || required, "needs chromium (apt-get install chromium)"))
    func theListenerTableShowsTheLiveConnectionCount() throws {
        let browser = try #require(Self.chromium, "WHARF_REQUIRE_CHROMIUM is set but chromium is not installed")
        let adminPort = LoopbackPort.unused()
        let wharf = try RunningWharf(config: AdminTests.config(adminPort: adminPort))
        let port = try wharf.port(named: "lines")
        var open: [TestSocket] = []
        for index in 0..<7 {
            let socket = try TestSocket(port: port)
            try socket.send("connection \(index)\n")
            _ = try socket.receiveLine()
            open.append(socket)
        }
        let screenshot = ProcessInfo.processInfo.environment["WHARF_STATUS_SCREENSHOT"]
        let dom = try Self.render("http://127.0.0.1:\(adminPort)/", browser: browser, scratch: wharf.scratch,
                                  screenshot: screenshot)
        // The page polls /status every second; 3.5 s of page time is several refreshes.
        let refreshes = try #require(Self.firstMatch(#"data-refreshes="(\d+)""#, in: dom).flatMap { Int($0) })
        #expect(refreshes >= 2, "the page refreshed itself")
        let row = try #require(Self.firstMatch(#"(<tr data-listener="lines">.*?</tr>)"#, in: dom))
        #expect(Self.firstMatch(#"class="num active">(\d+)<"#, in: row) == "7", "open connections: \(row)")
        #expect(Self.firstMatch(#"class="num accepted">(\d+)<"#, in: row) == "7")
        #expect(dom.contains(">ready<"))
        open.removeAll()
        #expect(wharf.stop() == 0)
    }

    /// The DOM after the page's scripts ran for a while of (virtual) time.
    static func render(_ url: String, browser: String, scratch: TemporaryDirectory, screenshot: String?) throws -> String {
        let common = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                      "--user-data-dir=\(scratch.path("chromium"))", "--virtual-time-budget=3500"]
        if let screenshot {
            _ = try run(browser, common + ["--window-size=1280,760", "--screenshot=\(screenshot)", url])
        }
        return try run(browser, common + ["--dump-dom", url])
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestError.timeout("chromium did not finish within 60 s")
        }
        return try String(contentsOf: output, encoding: .utf8)
    }

    static func firstMatch(_ pattern: String, in text: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators]),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let range = Range(match.range(at: 1), in: text) else { return nil }
        return String(text[range])
    }
}
