import Foundation
import Testing
import WharfTestSupport

/// The `ffi_call` plugin: C functions served through libffi, from config alone.
@Suite struct FFICallTests {
    /// etc/ffi.example.yaml with its ports replaced by free ones.
    func startExample() throws -> RunningWharf {
        let file = Products.repositoryRoot.appendingPathComponent("etc/ffi.example.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
            .replacingOccurrences(of: "port: 8070", with: "port: 0")
            .replacingOccurrences(of: "port: 8071", with: "port: 0")
        return try RunningWharf(config: text)
    }

    func start(_ config: String, event_loops: Int = 1) throws -> RunningWharf {
        try RunningWharf(config: gatewayConfig(plugins: "  f:\n    path: ffi_call\n    config: \(config)\n",
                                               listeners: ["f"], extra: "event_loops: \(event_loops)\n"))
    }

    @Test func theExampleServesZlibsCrc32AndAFunctionOfItsOwnLibrary() throws {
        let wharf = try startExample()
        let crc = try TestSocket(port: try wharf.port("crc32"))
        try crc.send("hello\n\nThe quick brown fox jumps over the lazy dog\n")
        #expect(try crc.receiveLine() == "907060870\n")
        #expect(try crc.receiveLine() == "0\n", "an empty line is a call with an empty buffer")
        #expect(try crc.receiveLine() == "1095738169\n")

        let reverse = try TestSocket(port: try wharf.port("reverse"))
        try reverse.send("hello\nwharf\n")
        #expect(try reverse.receiveLine() == "olleh\n")
        #expect(try reverse.receiveLine() == "frahw\n")
        try reverse.send(String(repeating: "x", count: 5000) + "\n")
        #expect(try reverse.receiveLine() == "-ERR function returned -1\n", "over output_capacity: the function said so")
    }

    @Test func signedResultsAndLengthPrefixedFrames() throws {
        let wharf = try start("{library: libffi_example.so, signature: \"int32 ffi_example_checksum(int32 -1000, "
            + "request, uint32 request_len)\", length_prefix: 2}")
        let client = try TestSocket(port: try wharf.port("f"))
        try client.send([0, 3] + Array("abc".utf8)) // 97 + 98 + 99 - 1000
        #expect(try client.receive(count: 2) == [0, 4])
        #expect(try client.receiveString(count: 4) == "-706")
    }

    @Test(arguments: [
        ("\"uint64 crc32(uint64 0, request, uint32 request_len\"", "signature, column 51: expected ',' or ')'"),
        ("\"float crc32(request)\"", "signature, column 1: expected an integer type"),
        ("\"uint8 f(uint8 300)\"", "signature, column 15: the constant does not fit its type"),
        ("\"uint64 no_such_function(request)\"", "no function 'no_such_function' in libz.so.1"),
    ])
    func badSignaturesAreConfigErrorsWithTheirPlace(signature: String, message: String) throws {
        let scratch = try TemporaryDirectory()
        let config = gatewayConfig(plugins: "  f:\n    path: ffi_call\n    config: {library: libz.so.1, signature: \(signature)}\n",
                                   listeners: ["f"])
        let result = try runWharf(["check", "--config", try scratch.write("w.yaml", config)])
        #expect(result.status == 2)
        #expect(result.stderr.contains("w.yaml:4:13: plugins.f.config: config key 'signature': \(message)"), "\(result.stderr)")
    }

    @Test func aMissingLibraryIsAConfigError() throws {
        let scratch = try TemporaryDirectory()
        let config = gatewayConfig(plugins: "  f: {path: ffi_call, config: {library: libnothere.so, signature: \"int32 f()\"}}\n",
                                   listeners: ["f"])
        let result = try runWharf(["check", "--config", try scratch.write("w.yaml", config)])
        #expect(result.status == 2)
        #expect(result.stderr.contains("plugins.f.config: config key 'library': cannot load libnothere.so"), "\(result.stderr)")
    }

    @Test func aCrashingFunctionCostsItsWorkerNotTheService() throws {
        let wharf = try start("{library: libffi_example.so, signature: \"int32 ffi_example_crash_on_request(request, "
            + "size request_len)\"}")
        let port = try wharf.port("f")
        let calm = try TestSocket(port: port)
        try calm.send("fine\n")
        #expect(try calm.receiveLine() == "4\n")
        let crasher = try TestSocket(port: port)
        try crasher.send("crash\n")
        #expect(crasher.isClosedByPeer(), "the worker died with the connection")
        #expect(eventually { wharf.stderr.contains("SIGSEGV") }, "the supervisor saw the crash: \(wharf.stderr)")
        var served = false
        #expect(eventually(seconds: 15) {
            guard let client = try? TestSocket(port: port, timeout: 2), (try? client.send("ok\n")) != nil else { return false }
            served = (try? client.receiveLine()) == "2\n"
            return served
        }, "a restarted worker serves again")
    }
}
