import Foundation
import WharfTestSupport

/// Plain HTTP/1.1 to the admin endpoint over a loopback socket: one request per connection.
struct AdminClient {
    let port: Int
    var source: String?

    struct Response {
        let status: Int
        let headers: [String: String]
        let body: String
    }

    func request(_ method: String, _ path: String, timeout: TimeInterval = 20) throws -> Response {
        let socket = try TestSocket(port: port, timeout: timeout, source: source)
        try socket.send("\(method) \(path) HTTP/1.1\r\nHost: wharf\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        let text = String(decoding: try socket.receiveUntilClose().bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw TestError.failed("not an HTTP response: \(text)") }
        let lines = text[..<split.lowerBound].split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ")[1]) else {
            throw TestError.failed("no status line: \(text)")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: status, headers: headers, body: String(text[split.upperBound...]))
    }

    func get(_ path: String) throws -> Response { try request("GET", path) }

    /// `/metrics` as sample → value ("name{labels}" keys, exactly as exposed).
    func metrics() throws -> [String: Double] {
        let response = try get("/metrics")
        guard response.status == 200 else { throw TestError.failed("/metrics answered \(response.status)") }
        var samples: [String: Double] = [:]
        for line in response.body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw TestError.failed("bad sample line: \(line)")
            }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// `/status` as JSON.
    func status() throws -> [String: Any] {
        let response = try get("/status")
        guard response.status == 200, let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8))
            as? [String: Any] else { throw TestError.failed("/status answered \(response.status): \(response.body)") }
        return object
    }
}

/// One listener's sample name with its labels, as `/metrics` writes it.
func sample(_ name: String, listener: String, plugin: String, _ extra: String = "") -> String {
    "\(name){listener=\"\(listener)\",plugin=\"\(plugin)\"\(extra.isEmpty ? "" : "," + extra)}"
}
