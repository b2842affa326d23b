import Foundation
import NIOSSL
@testable import WharfCore

/// A listener's TLS for unit tests: a throwaway P-256 certificate made with `openssl`.
enum TestTLS {
    static func serverTLS() throws -> ServerTLS {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wharf-unit-tls-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = directory.appendingPathComponent("key.pem").path
        let certificate = directory.appendingPathComponent("cert.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                             "-keyout", key, "-out", certificate, "-subj", "/CN=unit.test", "-days", "1"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        return ServerTLS(defaultContext: try NIOSSLContext(configuration: configuration), named: [], startTLS: false)
    }
}
