import CYaml

/// The billion-laughs guard: counts the values a YAML text expands to, an alias counting as
/// the whole node it repeats, from libyaml's event stream, before anything is composed. A
/// few hundred bytes of nested aliases can stand for billions of values; Yams shares them
/// while composing, but hashing duplicate keys and every walk of the tree would not.
enum YAMLBudget {
    /// Far beyond any real config (the example has a few hundred).
    static let maximumValues = 100_000

    struct Exceeded: Error {
        let line: Int
        let column: Int
    }

    /// Throws where the expansion passes `limit`. A text libyaml cannot parse passes here;
    /// the composer reports that error with its position.
    static func check(_ text: String, limit: Int = maximumValues) throws(Exceeded) {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        try bytes.withUnsafeMutableBufferPointer { buffer throws(Exceeded) in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            try walk(&parser, limit: limit)
        }
    }

    private static func walk(_ parser: inout yaml_parser_t, limit: Int) throws(Exceeded) {
        var sizes: [String: Int] = [:]
        // Open collections: their anchor and the values counted inside so far.
        var open: [(anchor: String?, count: Int)] = [(nil, 0)]
        var event = yaml_event_t()
        while yaml_parser_parse(&parser, &event) == 1 {
            defer { yaml_event_delete(&event) }
            let size: Int
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return
            case YAML_SCALAR_EVENT:
                size = 1
                if let anchor = name(event.data.scalar.anchor) { sizes[anchor] = 1 }
            case YAML_ALIAS_EVENT:
                size = name(event.data.alias.anchor).flatMap { sizes[$0] } ?? 1
            case YAML_SEQUENCE_START_EVENT:
                open.append((name(event.data.sequence_start.anchor), 1))
                continue
            case YAML_MAPPING_START_EVENT:
                open.append((name(event.data.mapping_start.anchor), 1))
                continue
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard open.count > 1 else { continue }
                let closed = open.removeLast()
                if let anchor = closed.anchor { sizes[anchor] = closed.count }
                size = closed.count
            default:
                continue
            }
            open[open.count - 1].count += size
            if open[open.count - 1].count > limit {
                throw Exceeded(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
            }
        }
    }

    private static func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}
