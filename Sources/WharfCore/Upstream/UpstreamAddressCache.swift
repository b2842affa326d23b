import NIOCore

/// The IP literals `connect_relay` was given lately on one loop, parsed: a proxy names the
/// same few upstreams on every connection, and parsing one (`inet_pton`, the address built)
/// cost ~430 instructions a connection. A name that is not an IP literal is remembered too
/// (as nil: the general path resolves it). Loop-confined.
struct UpstreamAddressCache {
    private struct Entry {
        let host: String
        let port: Int
        let address: SocketAddress?
    }

    static let capacity = 8
    private var entries: [Entry] = []
    private var next = 0

    /// The address of `host` (an IPv4 or IPv6 literal) and `port`, or nil if `host` is not one.
    mutating func address(host: String, port: Int) -> SocketAddress? {
        for entry in entries where entry.port == port && entry.host == host { return entry.address }
        let entry = Entry(host: host, port: port, address: try? SocketAddress(ipAddress: host, port: port))
        if entries.count < Self.capacity {
            entries.append(entry)
        } else {
            entries[next] = entry
            next = (next + 1) % Self.capacity
        }
        return entry.address
    }
}
