import CWharf
import Testing
@testable import WharfCore

#if canImport(Glibc)
import Glibc
#endif

/// Host-declared plugin config (ABI 1.5): a C schema read, a config checked against it with
/// the config's own messages, values normalized, defaults filled in.
@Suite struct PluginConfigSchemaTests {
    /// A C schema built from Swift values (the strings live as long as the test process).
    static func schema(_ keys: [(String, UInt32, UInt32, Int64, Int64, String?)]) throws -> PluginConfigSchema {
        let raw = UnsafeMutablePointer<wharf_config_key>.allocate(capacity: keys.count)
        for (index, key) in keys.enumerated() {
            var entry = wharf_config_key()
            entry.name = UnsafePointer(strdup(key.0))
            entry.type = key.1
            entry.flags = key.2
            entry.min = key.3
            entry.max = key.4
            entry.default_value = key.5.map { UnsafePointer(strdup($0)) }
            entry.description = UnsafePointer(strdup("what \(key.0) is"))
            raw[index] = entry
        }
        var header = wharf_config_schema()
        header.struct_size = UInt32(MemoryLayout<wharf_config_schema>.size)
        header.key_size = UInt32(MemoryLayout<wharf_config_key>.size)
        header.key_count = UInt32(keys.count)
        header.keys = UnsafePointer(raw)
        return try withUnsafePointer(to: &header) { try PluginConfigSchema($0, library: "libtest.so") }
    }

    static let example: [(String, UInt32, UInt32, Int64, Int64, String?)] = [
        ("max_bytes", WHARF_CONFIG_INTEGER, 0, 1, 1_073_741_824, "65536"),
        ("upstream", WHARF_CONFIG_HOST_PORT, WHARF_CONFIG_REQUIRED, 0, 0, nil),
        ("separator", WHARF_CONFIG_BYTES, 0, 1, 64, "'\\r\\n'"),
        ("timeout", WHARF_CONFIG_DURATION, 0, 1, 3_600_000, "10s"),
        ("buffer", WHARF_CONFIG_SIZE, 0, 0, 0, "64KiB"),
        ("verbose", WHARF_CONFIG_BOOLEAN, 0, 0, 0, "false"),
        ("routes", WHARF_CONFIG_LIST, 0, 0, 4, nil),
        ("labels", WHARF_CONFIG_MAP, 0, 0, 0, nil),
        ("nested", WHARF_CONFIG_JSON, 0, 0, 0, nil),
    ]

    /// `config:` text checked against the example schema.
    static func check(_ yaml: String) throws -> PluginConfigSchema.Checked {
        let reader = YAMLReader(file: "wharf.yaml")
        let tree = try reader.compose(yaml).map { try ConfigTree.make($0, reader: reader, path: "plugins.p.config") }
        return try schema(example).check(tree, at: SourceLocation(file: "wharf.yaml", line: 1, column: 1),
                                         path: "plugins.p.config")
    }

    static func failure(_ yaml: String) -> String {
        do {
            _ = try check(yaml)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func valuesAreNormalizedAndDefaultsFilledIn() throws {
        let checked = try Self.check("""
            upstream: "[::1]:6379"
            timeout: 250ms
            buffer: 1m
            verbose: true
            routes: [a, b]
            labels: {tier: gold}
            nested: {hosts: [a, 1], tls: {verify: false}}
            """)
        #expect(checked.json == #"{"max_bytes":65536,"upstream":"[::1]:6379","separator":"\r\n","timeout":250,"#
            + #""buffer":1048576,"verbose":true,"routes":["a","b"],"labels":{"tier":"gold"},"#
            + #""nested":{"hosts":["a",1],"tls":{"verify":false}}}"#, "a JSON value passes through for the plugin")
        guard case let .hostPort(host, port)? = checked.values["upstream"] else { Issue.record("no upstream"); return }
        #expect(host == "::1" && port == 6379)
        guard case let .text(separator)? = checked.values["separator"] else { Issue.record("no separator"); return }
        #expect(separator == [13, 10], "the default's escapes are decoded")
    }

    @Test(arguments: [
        ("upstream: a:1\nmax_bytes: -1", "wharf.yaml:2:12: plugins.p.config.max_bytes: expected an integer 1-1073741824, got -1"),
        ("upstream: a:1\nmax_byte: 3", "wharf.yaml:2:1: plugins.p.config: unknown key 'max_byte' (did you mean 'max_bytes'?)"),
        ("max_bytes: 3", "wharf.yaml:1:1: plugins.p.config: missing required key 'upstream' (what upstream is)"),
        ("upstream: nowhere", "wharf.yaml:1:11: plugins.p.config.upstream: expected \"host:port\" or \"[ipv6]:port\", got \"nowhere\""),
        ("upstream: a:1\ntimeout: 2d", "wharf.yaml:2:10: plugins.p.config.timeout: expected a duration (250ms, 10s, 5m, 2h) of 1-3600000 ms, got \"2d\""),
        ("upstream: a:1\ntimeout: 2h", "plugins.p.config.timeout: expected a duration (250ms, 10s, 5m, 2h) of 1-3600000 ms, got \"2h\" (7200000)"),
        ("upstream: a:1\nseparator: '\\q'", "plugins.p.config.separator: unknown escape"),
        ("upstream: a:1\nverbose: yes", "plugins.p.config.verbose: expected true or false, got \"yes\""),
        ("upstream: a:1\nroutes: [a, b, c, d, e]", "plugins.p.config.routes: expected a list of strings (0-4 items), got a list (5)"),
        ("upstream: a:1\nlabels: {a: [1]}", "plugins.p.config.labels.a: expected a string, got a list"),
        ("[1, 2]", "wharf.yaml:1:1: plugins.p.config: expected a mapping, got a list"),
    ])
    func badValuesAreConfigErrorsAtTheirPlace(yaml: String, message: String) {
        #expect(Self.failure(yaml).contains(message), "\(Self.failure(yaml))")
    }

    @Test func aBadSchemaIsThePluginsFault() {
        #expect(throws: PluginLoadError.self) { try Self.schema([("Bad-Name", WHARF_CONFIG_INTEGER, 0, 0, 0, nil)]) }
        #expect(throws: PluginLoadError.self) { try Self.schema([("x", 42, 0, 0, 0, nil)]) }
        #expect(throws: PluginLoadError.self) { try Self.schema([("x", WHARF_CONFIG_INTEGER, 0, 1, 10, "11")]) }
        #expect(throws: PluginLoadError.self) {
            try Self.schema([("x", WHARF_CONFIG_INTEGER, WHARF_CONFIG_REQUIRED, 0, 0, "1")])
        }
    }

    @Test func documentationListsEveryKey() throws {
        let lines = try Self.schema(Self.example).documentation
        #expect(lines.count == 9)
        #expect(lines[0] == "max_bytes  integer 1-1073741824, default 65536: what max_bytes is")
        #expect(lines[1] == "upstream   host:port, required: what upstream is")
    }
}
