@testable import WharfCore

/// The config loader on arbitrary text: it never crashes, and a refusal always names a
/// position inside the text.
enum ConfigCheck {
    static func run(_ data: [UInt8]) throws(FuzzFailure) {
        let text = String(decoding: data, as: UTF8.self)
        do {
            _ = try ConfigLoader.parse(text, file: "fuzz.yaml", baseDirectory: "/nonexistent")
        } catch {
            // YAML's line breaks: LF, CR, CRLF, and NEL, LS, PS.
            let breaks: Set<Unicode.Scalar> = ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"]
            let scalars = Array(text.unicodeScalars)
            var lines = 1
            for (index, scalar) in scalars.enumerated() where breaks.contains(scalar) {
                if scalar == "\n", index > 0, scalars[index - 1] == "\r" { continue }
                lines += 1
            }
            guard error.location.line >= 0, error.location.line <= lines + 1, !error.message.isEmpty else {
                throw FuzzFailure("refusal without a usable position: \(error)")
            }
        }
    }
}
