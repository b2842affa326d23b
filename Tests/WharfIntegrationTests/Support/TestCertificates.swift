import Foundation
import WharfTestSupport

/// Throwaway certificates made with the openssl CLI at test time (nothing private is
/// committed): a CA; server certificates for a.test and b.test (also valid for localhost
/// and 127.0.0.1) signed by it; a client certificate "CN=alice,O=Example" signed by it; and
/// a second, untrusted CA with its own client "mallory". Made once per test run.
final class TestCertificates: Sendable {
    let directory: String

    static let shared: Result<TestCertificates, any Error> = Result { try TestCertificates() }
    static func get() throws -> TestCertificates { try shared.get() }

    private init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("wharf-certs-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd "\(directory)"
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
            ca() { key $1.key; openssl req -x509 -new -key $1.key -out $1.pem -days 2 -subj "$2"; }
            leaf() { # name subject ca extensions
              key $1.key
              openssl req -new -key $1.key -out $1.csr -subj "$2"
              printf '%s\\n' "$4" > $1.ext
              openssl x509 -req -in $1.csr -CA $3.pem -CAkey $3.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext 2>/dev/null
            }
            ca ca "/CN=Wharf Test CA"
            ca rogue "/CN=Rogue CA"
            leaf a.test "/CN=a.test" ca "subjectAltName=DNS:a.test,DNS:localhost,IP:127.0.0.1"
            leaf b.test "/CN=b.test" ca "subjectAltName=DNS:b.test,DNS:*.b.test"
            leaf alice "/CN=alice/O=Example" ca "extendedKeyUsage=clientAuth"
            leaf mallory "/CN=mallory" rogue "extendedKeyUsage=clientAuth"
            """
        let result = try FixturePlugins.run("/bin/sh", ["-c", script])
        guard result.status == 0 else { throw TestError.failed("making test certificates: \(result.output)") }
    }

    func path(_ name: String) -> String { "\(directory)/\(name)" }
}

/// `openssl s_client` against 127.0.0.1:`port`: sends `input`, keeps stdin open until the
/// echo of `input` comes back (or s_client exits, or `seconds` pass), and returns
/// everything it printed (stdout and stderr).
func openSSLClient(port: Int, arguments: [String], input: String = "", seconds: TimeInterval = 10) throws -> String {
    let client = try OpenSSLClientProcess(port: port, arguments: ["-no_ign_eof"] + arguments)
    client.send(input)
    let deadline = Date().addingTimeInterval(seconds)
    while client.isRunning, Date() < deadline, input.isEmpty || !client.output.contains(input) { usleep(20_000) }
    client.closeInput()
    while client.isRunning, Date() < deadline { usleep(20_000) }
    client.kill()
    client.waitForOutputEnd()
    return client.output
}

/// `openssl s_client -quiet` (stdout and stderr collected), run so a test can act on the
/// process itself: write to it, stop it, kill it.
final class OpenSSLClientProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let printed = Pipe()
    private let lock = NSLock()
    private var collected = Data()
    private var outputEnded = false

    init(port: Int, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-quiet"] + arguments
        process.standardOutput = printed
        process.standardError = printed
        process.standardInput = input
        try process.run()
        // A thread of its own reads to the end. (FileHandle's readabilityHandler sometimes
        // stopped being called with output still in the pipe: the last lines, and the end of
        // file, never arrived, in about one run in three.)
        let fd = printed.fileHandleForReading.fileDescriptor
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let got = read(fd, &buffer, buffer.count)
                if got < 0, errno == EINTR { continue }
                lock.withLock { if got > 0 { collected.append(contentsOf: buffer[0..<got]) } else { outputEnded = true } }
                if got <= 0 { return }
            }
        }.start()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var output: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }

    /// Waits (at most 10 s) until everything s_client printed has been read: what it prints
    /// as it exits (`read:errno=104`) may still be on its way when the process is gone.
    func waitForOutputEnd() { _ = eventually { lock.withLock { outputEnded } } }

    func send(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }

    /// End of input: s_client closes the connection unless told `-ign_eof`.
    func closeInput() { try? input.fileHandleForWriting.close() }

    /// SIGKILL, and waits (at most 10 s) for the process to be gone. Not SIGTERM: s_client
    /// inherits the spawning thread's signal mask, where dispatch's threads block SIGTERM, so
    /// `Process.terminate()` and a wait for the exit after it would never return.
    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(pid, SIGKILL)
        _ = eventually { !process.isRunning }
    }
}
