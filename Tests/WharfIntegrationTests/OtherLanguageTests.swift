import Foundation
import Testing
import WharfTestSupport

/// Plugins in C++ and Rust from the same header, built at test time with the language's own
/// compiler (plain `c++`, plain `rustc`), then served by the real binary. Each test runs when
/// its compiler is installed; `.ci/run` installs both and sets WHARF_REQUIRE_COMPILERS so
/// that there they cannot be skipped.
@Suite struct OtherLanguageTests {
    static let required = ProcessInfo.processInfo.environment["WHARF_REQUIRE_COMPILERS"] != nil

    /// The compiler's path on PATH (or in ~/.cargo/bin, where rustup puts rustc).
    static func compiler(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let cargo = NSHomeDirectory() + "/.cargo/bin"
        return (path.split(separator: ":").map(String.init) + [cargo])
            .map { $0 + "/" + name }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func build(_ compiler: String, _ arguments: [String], output: String) throws -> String {
        let result = try FixturePlugins.run(compiler, arguments + ["-o", output])
        guard result.status == 0 else { throw TestError.failed("\(compiler) failed: \(result.output)") }
        return output
    }

    /// Serves `library` as a line echo and checks it behaves like plugins/echo.
    static func expectLineEcho(_ library: String, name: String) throws {
        let plugins = "  \(name): {path: \(library), config: {max_bytes: 32}}\n"
        let wharf = try RunningWharf(config: gatewayConfig(plugins: plugins, listeners: [name]))
        let client = try TestSocket(port: try wharf.port(name))
        try client.send("hello from \(name)\nsecond line\n")
        #expect(try client.receiveLine() == "hello from \(name)\n")
        #expect(try client.receiveLine() == "second line\n")
        try client.send(String(repeating: "x", count: 40) + "\n")
        #expect(client.isClosedByPeer(), "a line over max_bytes closes the connection")
        #expect(wharf.stop() == 0, "the instances' shutdown ran cleanly: \(wharf.stderr)")

        // The same cases as the C echo, in memory: byte for byte alike.
        let cases = Products.repositoryRoot.appendingPathComponent("plugins/\(name)/cases.yaml").path
        let kit = try runWharf(["plugin", "test", library, cases])
        #expect(kit.status == 0 && kit.stdout.contains("6 cases: 6 passed, 0 failed"), "\(kit.stdout)\(kit.stderr)")

        let scratch = try TemporaryDirectory()
        let bad = gatewayConfig(plugins: "  \(name): {path: \(library), config: {max_byte: 32}}\n", listeners: [name])
        let check = try runWharf(["check", "--config", try scratch.write("bad.yaml", bad)])
        #expect(check.status == 2)
        #expect(check.stderr.contains("unknown config key"), "\(check.stderr)")
    }

    @Test(.enabled(if: required || compiler("c++") != nil, "c++ is not installed: the C++ example is not built"))
    func cppEchoBuiltWithPlainCxxServes() throws {
        let cxx = try #require(Self.compiler("c++"), "c++ is required here (WHARF_REQUIRE_COMPILERS)")
        let scratch = try TemporaryDirectory()
        let root = Products.repositoryRoot
        let library = try Self.build(cxx, ["-std=c++20", "-shared", "-fPIC", "-fvisibility=hidden", "-fno-exceptions",
                                           "-Wall", "-Wextra", "-Werror", "-I", root.appendingPathComponent("include").path,
                                           root.appendingPathComponent("plugins/cpp_echo/cpp_echo.cpp").path],
                                     output: scratch.path("libcpp_echo.so"))
        try Self.expectLineEcho(library, name: "cpp_echo")
    }

    @Test(.enabled(if: required || compiler("rustc") != nil, "rustc is not installed: the Rust example is not built"))
    func rustEchoBuiltWithPlainRustcServes() throws {
        let rustc = try #require(Self.compiler("rustc"), "rustc is required here (WHARF_REQUIRE_COMPILERS)")
        let scratch = try TemporaryDirectory()
        let source = Products.repositoryRoot.appendingPathComponent("plugins/rust_echo/src/lib.rs").path
        let library = try Self.build(rustc, ["--edition", "2021", "--crate-type", "cdylib", "-O", "-C", "panic=abort",
                                             source], output: scratch.path("librust_echo.so"))
        try Self.expectLineEcho(library, name: "rust_echo")
    }
}
