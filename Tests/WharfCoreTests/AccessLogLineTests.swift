import NIOCore
import Testing
@testable import WharfCore

/// Access-log lines as values: the termination letters, both formats, the timestamp.
@Suite struct AccessLogLineTests {
    static let origin = AccessLogOrigin(listener: "web front", plugin: "proxy", generation: 3, worker: 42)

    static func record(_ reason: CloseReason, phase: ConnectionRecord.Phase? = nil) throws -> ConnectionRecord {
        let log = try AccessLog(AccessLogConfig(path: "/dev/null"), logger: .init(label: "test"))
        let record = ConnectionRecord(sink: ListenerAccessLog(log: log, origin: origin), now: .uptimeNanoseconds(0))
        record.client = try SocketAddress(ipAddress: "192.0.2.7", port: 5555)
        record.local = try SocketAddress(ipAddress: "::1", port: 80)
        record.connectionEnded(reason, before: phase, received: 10, sent: 20, now: .uptimeNanoseconds(1_234_567))
        return record
    }

    @Test func terminationSaysWhoAndWhen() throws {
        #expect(try Self.record(.peer).termination == "CD")
        #expect(try Self.record(.plugin).termination == "PD")
        #expect(try Self.record(.idleTimeout).termination == "cD")
        #expect(try Self.record(.handshakeTimeout, phase: .handshake).termination == "cH")
        #expect(try Self.record(.denied, phase: .accept).termination == "DA")
        #expect(try Self.record(.drain).termination == "KD")
        let gaveUp = try Self.record(.plugin)
        gaveUp.upstreamStarted()
        gaveUp.upstreamFailed(.refused)
        #expect(gaveUp.termination == "SC", "no upstream could be reached")
    }

    @Test func jsonLinesCarryTheFacts() throws {
        let line = String(decoding: AccessLogLine(origin: Self.origin, format: .json).render(try Self.record(.peer)), as: UTF8.self)
        #expect(line.hasSuffix("}\n"))
        #expect(line.contains(#""listener":"web front","plugin":"proxy","generation":3,"worker":42"#))
        #expect(line.contains(#""client":"192.0.2.7:5555","local":"[::1]:80","bytes_in":10,"bytes_out":20"#))
        #expect(line.contains(#""duration_ms":1.234,"termination":"CD","reason":"peer"}"#))
    }

    @Test func jsonEscapesWhatItMust() throws {
        let origin = AccessLogOrigin(listener: "a\"b\\c\n\u{1}", plugin: "p", generation: 1, worker: 1)
        let line = String(decoding: AccessLogLine(origin: origin, format: .json).render(try Self.record(.peer)), as: UTF8.self)
        #expect(line.contains(#""listener":"a\"b\\c\n\u0001""#))
    }

    @Test func logfmtQuotesWhatNeedsIt() throws {
        let line = String(decoding: AccessLogLine(origin: Self.origin, format: .logfmt).render(try Self.record(.peer)), as: UTF8.self)
        #expect(line.contains(#" listener="web front" plugin=proxy "#))
        #expect(line.contains(" local=[::1]:80 "))
        #expect(line.hasSuffix(" termination=CD reason=peer\n"))
    }

    @Test func timestampsAreRFC3339InUTC() {
        #expect(AccessLogLine.timestamp(0) == "1970-01-01T00:00:00.000Z")
        #expect(AccessLogLine.timestamp(1_796_011_994.273) == "2026-11-30T04:13:14.273Z")
        #expect(AccessLogLine.address(try? SocketAddress(ipAddress: "::1", port: 443)) == "[::1]:443")
        #expect(AccessLogLine.address(nil) == "-")
    }
}
