@testable import WharfCore

/// The config loader on arbitrary text: it never crashes, and a refusal always names a
/// position inside the text.
enum ConfigCheck {
    static func run(_ data: [UInt8]) throws(FuzzFailure) {
        let text = String(decoding: data, as: UTF8.self)
        do {
            _ = try ConfigLoader.parse(text, file: "fuzz.yaml", baseDirectory: "/nonexistent")
        } catch {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
            guard error.location.line >= 0, error.location.line <= lines + 1, !error.message.isEmpty else {
                throw FuzzFailure("refusal without a usable position: \(error)")
            }
        }
    }
}
