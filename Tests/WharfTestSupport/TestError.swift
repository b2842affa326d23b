/// Why a test helper gave up.
public enum TestError: Error, CustomStringConvertible {
    case timeout(String)
    case failed(String)
    public var description: String {
        switch self {
        case let .timeout(what): "timed out: \(what)"
        case let .failed(what): what
        }
    }
}
