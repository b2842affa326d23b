/// The streams alive on one loop, so a drain can reach each and learn when none is left.
struct StreamSet {
    private var members: [ObjectIdentifier: IOStreamHandler] = [:]
    /// Runs once when the set next becomes empty (a drain waiting for its last stream).
    private var whenEmpty: [() -> Void] = []

    var count: Int { members.count }
    var all: [IOStreamHandler] { Array(members.values) }

    mutating func insert(_ stream: IOStreamHandler) {
        members[ObjectIdentifier(stream)] = stream
    }

    mutating func remove(_ stream: IOStreamHandler) {
        guard members.removeValue(forKey: ObjectIdentifier(stream)) != nil, members.isEmpty else { return }
        let waiting = whenEmpty
        whenEmpty = []
        waiting.forEach { $0() }
    }

    /// Calls `body` as soon as no stream is left (at once if none is).
    mutating func whenEmpty(_ body: @escaping () -> Void) {
        if members.isEmpty { body() } else { whenEmpty.append(body) }
    }
}
