import Foundation
import Testing
import WharfTestSupport

/// `wharf plugin test`: every bundled plugin's cases pass, a failing case says where and what
/// differed, and a bad cases file is refused like a bad config.
@Suite struct PluginTestKitTests {
    static let bundled = ["echo", "reverse", "separator_echo", "message_proxy", "proxy", "ffi_call", "cpp_echo",
                          "swift_echo", "swift_reverse", "swift_separator_echo"]

    @Test(arguments: bundled)
    func bundledPluginsPassTheirCases(plugin: String) throws {
        let cases = Products.repositoryRoot.appendingPathComponent("plugins/\(plugin)/cases.yaml").path
        let result = try runWharf(["plugin", "test", plugin, cases])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(" passed, 0 failed"), "\(result.stdout)")
        #expect(!result.stdout.contains("FAIL"))
    }

    @Test func aFailingCaseSaysWhereAndWhatDiffered() throws {
        let scratch = try TemporaryDirectory()
        let cases = try scratch.write("cases.yaml", """
            config: {max_bytes: 16}
            cases:
              - name: passes
                steps:
                  - send: "ok\\n"
                  - expect: "ok\\n"
              - name: wrong bytes
                steps:
                  - send: "hello\\n"
                  - expect: "hellp\\n"
              - name: never closes
                steps:
                  - expect_close: {within: 3s}

            """)
        let text = try runWharf(["plugin", "test", "echo", cases])
        #expect(text.status == 1)
        #expect(text.stdout.contains("PASS  passes"))
        #expect(text.stdout.contains("FAIL  wrong bytes\n      \(cases):10:9: expected \"hellp\\n\", received \"hello\\n\"; "
            + "first difference at byte 4"), "\(text.stdout)")
        #expect(text.stdout.contains("\(cases):13:9: still open after 3 s"), "the 3 s passed on the virtual clock: \(text.stdout)")
        #expect(text.stdout.contains("3 cases: 1 passed, 2 failed"))

        let started = Date()
        let json = try runWharf(["plugin", "test", "echo", cases, "--json"])
        #expect(Date().timeIntervalSince(started) < 3, "virtual time: nobody waited 3 s")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(report["passed"] as? Int == 1 && report["failed"] as? Int == 2)
        let names = (report["cases"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["passes", "wrong bytes", "never closes"])
    }

    @Test func aBadCasesFileIsRefusedWithItsPlace() throws {
        let scratch = try TemporaryDirectory()
        let cases = try scratch.write("cases.yaml", "cases:\n  - name: typo\n    steps:\n      - sned: \"x\"\n")
        let result = try runWharf(["plugin", "test", "echo", cases])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(cases):4:9: cases[0].steps[0]: unknown key 'sned' (did you mean 'send'?)"),
                "\(result.stderr)")
    }
}
