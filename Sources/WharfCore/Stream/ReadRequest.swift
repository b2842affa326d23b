/// What a pending read waits for. A `maxBytes` of 0 means "bounded only by the
/// stream's max_buffer_size".
public enum ReadRequest: Sendable {
    case bytes(count: Int, partial: Bool)
    case until(delimiter: [UInt8], maxBytes: Int)
    case untilRegex(ByteRegex, maxBytes: Int)
    case untilClose(maxBytes: Int)
}
