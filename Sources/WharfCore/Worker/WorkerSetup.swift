import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `user`/`group`: a worker gives up root before it loads a plugin.
enum Privileges {
    /// nil on success, else what failed.
    static func drop(user: String?, group: String?) -> String? {
        guard user != nil || group != nil else { return nil }
        let account = user.flatMap { getpwnam($0)?.pointee }
        guard user == nil || account != nil else { return "no user named '\(user!)'" }
        var groupID = account?.pw_gid
        if let group {
            guard let entry = getgrnam(group)?.pointee else { return "no group named '\(group)'" }
            groupID = entry.gr_gid
        }
        if let groupID {
            let supplementary = account.map { initgroups($0.pw_name, groupID) } ?? setgroups(0, nil)
            guard supplementary == 0, setgid(groupID) == 0 else {
                return "cannot switch to group \(group ?? "\(groupID)"): \(String(cString: strerror(errno)))"
            }
        }
        if let account, setuid(account.pw_uid) != 0 {
            return "cannot switch to user \(user!): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}

/// Reads the `config <length>` header and the text from the control descriptor, blocking
/// (the worker has nothing else to do yet), at most 10 s, never past the text.
enum ControlInput {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The config text, and the TLS ticket secret when the supervisor sent one.
    static func readConfig(from descriptor: CInt) throws -> (text: String, ticketSecret: [UInt8]?) {
        let deadline = NIODeadline.now() + .seconds(10)
        var header: [UInt8] = []
        while header.last != UInt8(ascii: "\n") {
            guard header.count < 128 else { throw Failure(description: "bad config header from the supervisor") }
            header += try read(descriptor, count: 1, until: deadline)
        }
        let fields = String(decoding: header.dropLast(), as: UTF8.self).split(separator: " ")
        guard (2...3).contains(fields.count), fields[0] == "config", let length = Int(fields[1]) else {
            throw Failure(description: "bad config header from the supervisor")
        }
        var secret: [UInt8]?
        if fields.count == 3 {
            secret = Hex.decode(fields[2])
            guard secret?.count == 32 else { throw Failure(description: "bad ticket secret from the supervisor") }
        }
        var text: [UInt8] = []
        while text.count < length { text += try read(descriptor, count: length - text.count, until: deadline) }
        return (String(decoding: text, as: UTF8.self), secret)
    }

    private static func read(_ descriptor: CInt, count: Int, until deadline: NIODeadline) throws -> [UInt8] {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let left = max(0, (deadline - .now()).nanoseconds / 1_000_000)
        guard poll(&poller, 1, CInt(left)) > 0 else { throw Failure(description: "no config from the supervisor") }
        var buffer = [UInt8](repeating: 0, count: min(count, 65536))
        let got = Glibc.read(descriptor, &buffer, buffer.count)
        guard got > 0 else { throw Failure(description: "the supervisor closed the control channel") }
        return Array(buffer[..<got])
    }
}
