import Foundation
import Testing

/// The proxy plugin's ClientHello reader over its committed fuzz corpus (seeds and any input a
/// fuzzing run found a fault with), built with plain cc as the plugin ships. scripts/fuzz.sh
/// runs the same harness under libFuzzer and AddressSanitizer.
@Suite struct ClientHelloCorpusTests {
    @Test func theCommittedCorpusReplaysCleanly() throws {
        let root = Products.repositoryRoot
        let corpus = root.appendingPathComponent("Tests/Fuzz/corpus/client_hello")
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
            .map { corpus.appendingPathComponent($0).path }
        #expect(inputs.count >= 3)
        let scratch = try TemporaryDirectory()
        let binary = scratch.path("client-hello-replay")
        let build = try FixturePlugins.run("/usr/bin/env", [
            "cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-DWHARF_FUZZ_REPLAY",
            "-I", root.appendingPathComponent("include").path,
            "-I", root.appendingPathComponent("plugins/proxy").path,
            "-I", root.appendingPathComponent("plugins/common").path,
            root.appendingPathComponent("Tests/Fuzz/ClientHello/client_hello_fuzz.c").path,
            root.appendingPathComponent("plugins/proxy/client_hello.c").path, "-o", binary,
        ])
        try #require(build.status == 0, "cc: \(build.output)")
        let replay = try FixturePlugins.run(binary, inputs)
        #expect(replay.status == 0, "\(replay.output)")
        #expect(replay.output.contains("replayed \(inputs.count) inputs"))
    }
}
