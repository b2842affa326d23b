import Foundation
import WharfTestSupport
import Testing

/// The `wharf` CLI: config errors, exit codes, the embedded default.
@Suite struct CommandLineTests {
    func runWithConfig(_ text: String, command: String = "run") throws -> (ProcessResult, String) {
        let scratch = try TemporaryDirectory()
        let file = try scratch.write("bad.yaml", text)
        return (try runWharf([command, "--config", file]), file)
    }

    @Test(arguments: [
        ("plugins: {e: {path: echo}}\nlisteners:\n  - {port: eighty, plugin: e}\n",
         #":3:12: listeners[0].port: expected an integer 0-65535 (0: any free port), got "eighty""#),
        ("plugins: {e: {path: echo}}\nlisteners:\n  - {port: 1, plugin: e, backlogg: 3}\n",
         ":3:26: listeners[0]: unknown key 'backlogg' (did you mean 'backlog'?)"),
        ("plugins: {e: {path: echo}}\nlisteners:\n  - {port: 1}\n",
         ":3:5: listeners[0]: missing required key 'plugin'"),
        ("plugins: {e: {path: echo}}\nlisteners:\n  - {port: 1, plugin: nope}\n",
         ":3:23: listeners[0].plugin: no plugin instance named 'nope' (defined: e)"),
        ("plugins: {e: {path: echo}}\nlisteners:\n  - {port: 1, plugin: e}\n  - {port: 1, plugin: e}\n",
         ":4:5: listeners[1]: 0.0.0.0:1 is already used by listeners[0] (line 3)"),
        ("event_loops: many\nplugins: {e: {path: echo}}\nlisteners: [{port: 1, plugin: e}]\n",
         #":1:14: event_loops: expected an integer 1-256, got "many""#),
        ("workers: 2\nplugins: {e: {path: echo}}\nlisteners: [{port: 1, plugin: e}]\n",
         ":1:1: 'workers' was renamed: use 'event_loops'"),
    ])
    func badConfigNamesFileLineAndKeyAndStartsNothing(config: String, message: String) throws {
        for command in ["run", "check"] {
            let (result, file) = try runWithConfig(config, command: command)
            #expect(result.status == 2, "\(command): \(result.stderr)")
            #expect(result.stderr.contains(file + message), "\(command): \(result.stderr)")
            #expect(!result.stderr.contains("listening"))
        }
    }

    @Test func aDeviceOrAFIFOIsRefusedNotRead() throws {
        let scratch = try TemporaryDirectory()
        let fifo = scratch.path("fifo.yaml")
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in ["/dev/zero", fifo] {
            let started = Date()
            let result = try runWharf(["check", "--config", path], timeout: 5)
            #expect(result.status == 2)
            #expect(result.stderr.contains("\(path):0:0: cannot read: not a regular file"), "\(result.stderr)")
            #expect(Date().timeIntervalSince(started) < 1)
        }
    }

    @Test func unreadableConfigFile() throws {
        let result = try runWharf(["run", "--config", "/nonexistent/wharf.yaml"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("/nonexistent/wharf.yaml"))
        #expect(result.stderr.contains("No such file or directory"))
    }

    @Test func portInUseIsAClearRuntimeError() throws {
        let blocker = LoopbackPort(listen: 1)
        let port = blocker.port
        let config = "plugins: {e: {path: echo}}\nlisteners:\n  - {address: 127.0.0.1, port: \(port), plugin: e}\n"
        let (result, _) = try runWithConfig(config)
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot listen on 127.0.0.1:\(port): address already in use"))
        withExtendedLifetime(blocker) {}
    }

    @Test func checkValidatesTheEmbeddedDefault() throws {
        let result = try runWharf(["check"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("<embedded default config>: ok (3 plugin instances, 3 listeners)"))
    }

    @Test func sampleConfigsInEtcAreValid() throws {
        let etc = Products.repositoryRoot.appendingPathComponent("etc")
        let files = try FileManager.default.contentsOfDirectory(atPath: etc.path).filter { $0.hasSuffix(".yaml") }
        #expect(!files.isEmpty)
        for name in files {
            let result = try runWharf(["check", "--config", etc.appendingPathComponent(name).path])
            #expect(result.status == 0, "\(name): \(result.stderr)")
        }
    }

    @Test func usageErrorsExitTwo() throws {
        let result = try runWharf(["run", "--no-such-flag"])
        #expect(result.status == 2)
        let help = try runWharf(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("plugin"))
    }
}
