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

/// One access-log line, JSON or logfmt. Field order is fixed; absent facts are left out.
enum AccessLogLine {
    static func format(_ record: ConnectionRecord, origin: AccessLogOrigin, format: AccessLogConfig.Format) -> String {
        var fields: [(String, Value)] = [
            ("time", .text(timestamp(record.acceptedAt + seconds(record.endedAt.map { $0 - record.acceptedAtUptime })))),
            ("listener", .text(origin.listener)),
            ("plugin", .text(origin.plugin)),
            ("generation", .number(UInt64(origin.generation))),
            ("worker", .number(UInt64(origin.worker))),
            ("client", .text(address(record.announcedClient ?? record.client))),
        ]
        if record.announcedClient != nil { fields.append(("via", .text(address(record.client)))) }
        fields.append(("local", .text(address(record.local))))
        fields.append(("bytes_in", .number(record.bytesIn)))
        fields.append(("bytes_out", .number(record.bytesOut)))
        if let upstream = record.upstream { fields.append(("upstream", .text(upstream))) }
        if let micros = record.connectMicros { fields.append(("connect_ms", .milliseconds(micros))) }
        if let failure = record.upstreamFailure { fields.append(("upstream_error", .text(failure.label))) }
        if record.upstream != nil || record.upstreamBytesIn + record.upstreamBytesOut > 0 {
            fields.append(("upstream_bytes_in", .number(record.upstreamBytesIn)))
            fields.append(("upstream_bytes_out", .number(record.upstreamBytesOut)))
        }
        let duration = record.endedAt.map { UInt64(max(0, ($0 - record.acceptedAtUptime).nanoseconds) / 1000) } ?? 0
        fields.append(("duration_ms", .milliseconds(duration)))
        if record.tlsVersion != 0 { fields.append(("tls", .text(tlsName(record.tlsVersion)))) }
        if let name = record.serverName { fields.append(("sni", .text(name))) }
        fields.append(("termination", .text(record.termination)))
        fields.append(("reason", .text(record.reason?.label ?? "error")))
        switch format {
        case .json: return json(fields)
        case .logfmt: return logfmt(fields)
        }
    }

    enum Value {
        case text(String)
        case number(UInt64)
        /// Microseconds, written as milliseconds with three decimals.
        case milliseconds(UInt64)

        var rendered: String {
            switch self {
            case let .text(text): text
            case let .number(number): "\(number)"
            case let .milliseconds(micros):
                "\(micros / 1000)." + String("00\(micros % 1000)".suffix(3))
            }
        }
    }

    private static func json(_ fields: [(String, Value)]) -> String {
        var line = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { line += "," }
            line += "\"\(key)\":"
            if case let .text(text) = value {
                JSONValue.string(text).write(to: &line)
            } else {
                line += value.rendered
            }
        }
        return line + "}\n"
    }

    /// `key=value`, with values quoted (and `"` and `\` escaped) when they hold a space,
    /// `=`, a quote or nothing.
    private static func logfmt(_ fields: [(String, Value)]) -> String {
        var line = ""
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { line += " " }
            let text = value.rendered
            let plain = !text.isEmpty && !text.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.isNewline }
            if plain {
                line += "\(key)=\(text)"
            } else {
                var escaped = ""
                for character in text {
                    switch character {
                    case "\"": escaped += "\\\""
                    case "\\": escaped += "\\\\"
                    case "\n": escaped += "\\n"
                    default: escaped.append(character)
                    }
                }
                line += "\(key)=\"\(escaped)\""
            }
        }
        return line + "\n"
    }

    static func address(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "-" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
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

    private static func seconds(_ amount: TimeAmount?) -> Double {
        amount.map { Double($0.nanoseconds) / 1e9 } ?? 0
    }

    /// RFC 3339 in UTC with milliseconds: 2026-11-30T04:20:39.123Z.
    static func timestamp(_ seconds: Double) -> String {
        let totalMillis = Int64((seconds * 1000).rounded(.down))
        var whole = time_t(totalMillis / 1000)
        let millis = Int(totalMillis % 1000)
        var parts = tm()
        gmtime_r(&whole, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milliText = String("00\(millis)".suffix(3))
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):"
            + "\(two(parts.tm_min)):\(two(parts.tm_sec)).\(milliText)Z"
    }
}
