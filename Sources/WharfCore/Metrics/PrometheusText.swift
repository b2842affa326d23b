/// Writes the Prometheus text exposition format (version 0.0.4): a HELP and TYPE line per
/// family, then its samples. Small enough that a library would add more than it saves; the
/// values come from `MetricsSnapshot`, not from a registry.
struct PrometheusText {
    private(set) var text = ""

    enum Kind: String {
        case counter, gauge, histogram
    }

    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: UInt64) {
        line(name, labels, "\(value)")
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], signed value: Int64) {
        line(name, labels, "\(value)")
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], seconds value: Double) {
        line(name, labels, "\(value)")
    }

    private mutating func line(_ name: String, _ labels: [(String, String)], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + value + "\n"
    }

    /// One histogram's samples from its stored words (a count per bucket, +Inf, the sum in
    /// microseconds): cumulative buckets, `_sum` in seconds, `_count`.
    mutating func histogram(_ name: String, _ labels: [(String, String)], _ shape: HistogramShape,
                            _ words: ArraySlice<UInt64>) {
        let counts = Array(words)
        var cumulative: UInt64 = 0
        for (index, bound) in shape.bounds.enumerated() {
            cumulative &+= counts[index]
            sample(name + "_bucket", labels + [("le", Self.format(bound))], cumulative)
        }
        cumulative &+= counts[shape.bounds.count]
        sample(name + "_bucket", labels + [("le", "+Inf")], cumulative)
        sample(name + "_sum", labels, seconds: Double(counts[shape.sumWord]) / 1_000_000)
        sample(name + "_count", labels, cumulative)
    }

    static func format(_ bound: Double) -> String {
        bound == bound.rounded() ? String(Int(bound)) : "\(bound)"
    }

    static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
