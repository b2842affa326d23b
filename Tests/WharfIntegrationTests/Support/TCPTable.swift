import Foundation

/// The kernel's IPv4 TCP socket table (/proc/net/tcp), one row per socket, split into its
/// fields: 1 local address, 2 remote address (hex `addr:PORT`), 3 state ("0A" listening,
/// "01" established), 4 `tx_queue:rx_queue` (hex), 9 inode.
///
/// Read to its end: `String(contentsOfFile:)` returns a proc file's first page only (its
/// size shows as 0), and with the other tests' sockets listed first that page may not
/// reach the socket a test is after.
enum TCPTable {
    static func rows() -> [[Substring]] {
        guard let file = FileHandle(forReadingAtPath: "/proc/net/tcp") else { return [] }
        defer { try? file.close() }
        let text = String(decoding: (try? file.readToEnd()) ?? Data(), as: UTF8.self)
        return text.split(separator: "\n").dropFirst().map { $0.split(separator: " ") }.filter { $0.count > 9 }
    }

    /// `:PORT` as the table writes it.
    static func portSuffix(_ port: Int) -> String { String(format: ":%04X", port) }
}

/// The bytes waiting unread in the receive queue of the client end of a loopback connection
/// to `port`.
func unreadBytes(onConnectionTo port: Int) -> Int {
    TCPTable.rows().reduce(0) { total, fields in
        guard fields[2].hasSuffix(TCPTable.portSuffix(port)), fields[3] == "01" else { return total }
        return total + (Int(fields[4].split(separator: ":").last ?? "", radix: 16) ?? 0)
    }
}
