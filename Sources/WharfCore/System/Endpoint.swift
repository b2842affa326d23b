/// How an address and a port are written together: `127.0.0.1:80`, `[::1]:80` (an IPv6
/// address in brackets, so its colons do not read as the port's).
enum Endpoint {
    static func text(_ host: String, _ port: some BinaryInteger) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
