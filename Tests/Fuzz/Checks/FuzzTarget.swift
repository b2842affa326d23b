/// The fuzzed parsers and machines, by name (`WHARF_FUZZ_TARGET`, and the corpus folders).
enum FuzzTarget: String, CaseIterable {
    case stream
    case regex
    case proxyHeader = "proxy_header"
    case config

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        switch self {
        case .stream: try StreamMachineCheck.run(data)
        case .regex: try RegexCheck.run(data)
        case .proxyHeader: try ProxyHeaderCheck.run(data)
        case .config: try ConfigCheck.run(data)
        }
    }
}
