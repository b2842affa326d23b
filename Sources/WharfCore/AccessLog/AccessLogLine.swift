import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where a connection was served: the same on every line of one worker's listener.
struct AccessLogOrigin: Sendable {
    let listener: String
    let plugin: String
    let generation: Int
    let worker: Int32
}

/// One access-log line, JSON or logfmt, written straight into bytes: a line per connection
/// is on the path of every short connection, and building it from Swift strings cost more
/// than the connection itself (~90,000 instructions; this: a few thousand). Field order is
/// fixed; absent facts are left out. The origin's fields are encoded once per listener.
struct AccessLogLine {
    let format: AccessLogConfig.Format
    /// `"listener":…,"worker":N` (or its logfmt form), ready to copy.
    private let originBytes: [UInt8]

    init(origin: AccessLogOrigin, format: AccessLogConfig.Format) {
        self.format = format
        var line = LineBytes(format: format)
        line.text("listener", origin.listener)
        line.text("plugin", origin.plugin)
        line.number("generation", UInt64(origin.generation))
        line.number("worker", UInt64(max(0, origin.worker)))
        originBytes = line.bytes
    }

    func render(_ record: ConnectionRecord) -> [UInt8] {
        var line = LineBytes(format: format)
        line.bytes.reserveCapacity(400)
        if format == .json { line.bytes.append(UInt8(ascii: "{")) }
        let endedAt = record.endedAt ?? record.acceptedAtUptime
        let lasted = UInt64(max(0, (endedAt - record.acceptedAtUptime).nanoseconds) / 1000)
        line.timestamp("time", record.acceptedAt, plusMicros: lasted)
        line.separator()
        line.bytes += originBytes
        line.address("client", record.announcedClient ?? record.client)
        if record.announcedClient != nil { line.address("via", record.client) }
        line.address("local", record.local)
        line.number("bytes_in", record.bytesIn)
        line.number("bytes_out", record.bytesOut)
        if let upstream = record.upstream { line.text("upstream", upstream) }
        if let micros = record.connectMicros { line.milliseconds("connect_ms", micros) }
        if let failure = record.upstreamFailure { line.text("upstream_error", failure.label) }
        if record.upstream != nil || record.upstreamBytesIn + record.upstreamBytesOut > 0 {
            line.number("upstream_bytes_in", record.upstreamBytesIn)
            line.number("upstream_bytes_out", record.upstreamBytesOut)
        }
        line.milliseconds("duration_ms", lasted)
        if record.tlsVersion != 0 { line.text("tls", Self.tlsName(record.tlsVersion)) }
        if let name = record.serverName { line.text("sni", name) }
        line.text("termination", record.termination)
        line.text("reason", record.reason?.label ?? "error")
        if format == .json { line.bytes.append(UInt8(ascii: "}")) }
        line.bytes.append(UInt8(ascii: "\n"))
        return line.bytes
    }

    static func tlsName(_ version: UInt32) -> String {
        switch version {
        case 0x0301: "TLSv1.0"
        case 0x0302: "TLSv1.1"
        case 0x0303: "TLSv1.2"
        case 0x0304: "TLSv1.3"
        default: "0x" + String(version, radix: 16)
        }
    }

    /// `ip:port` (`[ip]:port` for IPv6), or `-`.
    static func address(_ address: SocketAddress?) -> String {
        var line = LineBytes(format: .logfmt)
        line.addressValue(address)
        return String(decoding: line.bytes, as: UTF8.self)
    }

    /// RFC 3339 in UTC with milliseconds: 2026-11-30T04:20:39.123Z.
    static func timestamp(_ seconds: Double) -> String {
        var line = LineBytes(format: .logfmt)
        line.timestampValue(seconds, plusMicros: 0)
        return String(decoding: line.bytes, as: UTF8.self)
    }
}

/// The bytes of one line as it is built; each field call writes its separator, key and value.
private struct LineBytes {
    let format: AccessLogConfig.Format
    var bytes: [UInt8] = []
    private var fields = 0

    init(format: AccessLogConfig.Format) { self.format = format }

    /// Before the origin's fields, which come as one block.
    mutating func separator() {
        bytes.append(format == .json ? UInt8(ascii: ",") : UInt8(ascii: " "))
    }

    private mutating func key(_ key: StaticString) {
        if fields > 0 || bytes.count > (format == .json ? 1 : 0) { separator() }
        fields += 1
        if format == .json { bytes.append(UInt8(ascii: "\"")) }
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes += format == .json ? [UInt8(ascii: "\""), UInt8(ascii: ":")] : [UInt8(ascii: "=")]
    }

    mutating func number(_ name: StaticString, _ value: UInt64) {
        key(name)
        decimal(value)
    }

    mutating func milliseconds(_ name: StaticString, _ micros: UInt64) {
        key(name)
        decimal(micros / 1000)
        bytes.append(UInt8(ascii: "."))
        let fraction = micros % 1000
        bytes.append(UInt8(ascii: "0") + UInt8(fraction / 100))
        bytes.append(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        bytes.append(UInt8(ascii: "0") + UInt8(fraction % 10))
    }

    mutating func text(_ name: StaticString, _ value: String) {
        key(name)
        quoted(value)
    }

    mutating func address(_ name: StaticString, _ address: SocketAddress?) {
        key(name)
        if format == .json { bytes.append(UInt8(ascii: "\"")) }
        addressValue(address)
        if format == .json { bytes.append(UInt8(ascii: "\"")) }
    }

    mutating func timestamp(_ name: StaticString, _ seconds: Double, plusMicros micros: UInt64) {
        key(name)
        if format == .json { bytes.append(UInt8(ascii: "\"")) }
        timestampValue(seconds, plusMicros: micros)
        if format == .json { bytes.append(UInt8(ascii: "\"")) }
    }

    mutating func timestampValue(_ seconds: Double, plusMicros micros: UInt64) {
        let totalMillis = Int64((seconds * 1000).rounded(.down)) + Int64(micros / 1000)
        var whole = time_t(totalMillis / 1000)
        var parts = tm()
        gmtime_r(&whole, &parts)
        padded(UInt64(parts.tm_year + 1900), 4)
        bytes.append(UInt8(ascii: "-"))
        padded(UInt64(parts.tm_mon + 1), 2)
        bytes.append(UInt8(ascii: "-"))
        padded(UInt64(parts.tm_mday), 2)
        bytes.append(UInt8(ascii: "T"))
        padded(UInt64(parts.tm_hour), 2)
        bytes.append(UInt8(ascii: ":"))
        padded(UInt64(parts.tm_min), 2)
        bytes.append(UInt8(ascii: ":"))
        padded(UInt64(parts.tm_sec), 2)
        bytes.append(UInt8(ascii: "."))
        padded(UInt64(totalMillis % 1000), 3)
        bytes.append(UInt8(ascii: "Z"))
    }

    mutating func addressValue(_ address: SocketAddress?) {
        switch address {
        case let .v4(v4)?:
            let raw = UInt32(bigEndian: v4.address.sin_addr.s_addr)
            for shift in stride(from: 24, through: 0, by: -8) {
                decimal(UInt64(raw >> UInt32(shift) & 0xff))
                if shift > 0 { bytes.append(UInt8(ascii: ".")) }
            }
            bytes.append(UInt8(ascii: ":"))
            decimal(UInt64(UInt16(bigEndian: v4.address.sin_port)))
        case let .v6(v6)?:
            var raw = v6.address.sin6_addr
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
            bytes.append(UInt8(ascii: "["))
            for character in text where character != 0 { bytes.append(UInt8(bitPattern: character)) }
            bytes.append(UInt8(ascii: "]"))
            bytes.append(UInt8(ascii: ":"))
            decimal(UInt64(UInt16(bigEndian: v6.address.sin6_port)))
        default:
            bytes.append(UInt8(ascii: "-"))
        }
    }

    /// JSON: always quoted and escaped. logfmt: quoted (with `"` and `\` escaped) only when
    /// the value is empty or holds a space, `=`, a quote, a backslash or a control character.
    private mutating func quoted(_ value: String) {
        let utf8 = value.utf8
        let plain = format == .logfmt && !utf8.isEmpty
            && !utf8.contains { $0 <= 0x20 || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 == 0x7f }
        if plain {
            bytes.append(contentsOf: utf8)
            return
        }
        bytes.append(UInt8(ascii: "\""))
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                          hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func decimal(_ value: UInt64) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            bytes.append(contentsOf: buffer[(20 - count)...])
        }
    }

    private mutating func padded(_ value: UInt64, _ width: Int) {
        var divisor: UInt64 = 1
        for _ in 1..<width { divisor *= 10 }
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }
}
