/// The sockets of an ended pair still open (none, one or two), for the loop to close: a
/// value with room for two, since an array cost an allocation for every proxied connection.
struct OpenDescriptors: Sequence, Equatable, ExpressibleByArrayLiteral {
    private var first: CInt = -1
    private var second: CInt = -1

    init() {}

    init(arrayLiteral descriptors: CInt...) {
        descriptors.forEach { append($0) }
    }

    mutating func append(_ fd: CInt) {
        precondition(fd >= 0 && second < 0, "a pair has two sockets")
        if first < 0 { first = fd } else { second = fd }
    }

    struct Iterator: IteratorProtocol {
        fileprivate var rest: (CInt, CInt)

        mutating func next() -> CInt? {
            guard rest.0 >= 0 else { return nil }
            defer { rest = (rest.1, -1) }
            return rest.0
        }
    }

    func makeIterator() -> Iterator { Iterator(rest: (first, second)) }
}
