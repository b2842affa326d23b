/// The streams alive on one loop, so a drain can reach each and learn when none is left.
/// Each stream remembers its own index, so joining and leaving cost an append and a
/// swap-remove: no hashing, 8 bytes a stream.
struct StreamSet {
    private var members: [IOStreamHandler] = []
    /// Runs once when the set next becomes empty (a drain waiting for its last stream).
    private var whenEmpty: [() -> Void] = []

    var count: Int { members.count }
    var all: [IOStreamHandler] { members }

    mutating func insert(_ stream: IOStreamHandler) {
        guard stream.streamSetIndex == nil else { return }
        stream.streamSetIndex = members.count
        members.append(stream)
    }

    mutating func remove(_ stream: IOStreamHandler) {
        guard let index = stream.streamSetIndex else { return }
        stream.streamSetIndex = nil
        let last = members.removeLast()
        if index < members.count {
            members[index] = last
            last.streamSetIndex = index
        }
        guard members.isEmpty else { return }
        let waiting = whenEmpty
        whenEmpty = []
        waiting.forEach { $0() }
    }

    /// Calls `body` as soon as no stream is left (at once if none is).
    mutating func whenEmpty(_ body: @escaping () -> Void) {
        if members.isEmpty { body() } else { whenEmpty.append(body) }
    }
}
