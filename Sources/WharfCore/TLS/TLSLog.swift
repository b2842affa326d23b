import Logging

enum TLSLog {
    static let logger = Logger(label: "wharf.tls")
}
