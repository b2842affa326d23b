import Foundation
import WharfTestSupport
import Testing

/// TLS on listeners (termination, SNI, mTLS, versions, ALPN, start_tls), on upstreams
/// (the proxy's `tls:`) and SNI passthrough, checked with `openssl s_client`.
@Suite struct TLSTests {
    let certs: TestCertificates
    init() throws { certs = try TestCertificates.get() }

    /// Who terminates TLS at accept: NIOSSL on a channel (`whoami`), or the relay pump's own
    /// sessions, on OpenSSL or BoringSSL, for a plugin that says it relays at once
    /// (`whoami_pump`, which then reads and writes after all, through the pump's bridge to a
    /// channel).
    enum Termination: String, CaseIterable, Sendable {
        case channel
        case pumpOpenSSL = "openssl"
        case pumpBoringSSL = "boringssl"

        var variant: String? { self == .channel ? nil : TLSTests.pumpVariant }
        /// What the worker's log names as the pump's library.
        var logged: String? {
            switch self {
            case .channel: nil
            case .pumpOpenSSL: "TLS by OpenSSL 3"
            case .pumpBoringSSL: "TLS by BoringSSL"
            }
        }
    }
    static let terminations = Termination.allCases
    static let pumpVariant = "VARIANT_RELAYS_AT_ONCE"

    /// A whoami listener terminating TLS with `tls` (a YAML flow mapping's body).
    func tlsWhoami(_ tls: String, termination: Termination = .channel, extra: String = "") throws -> RunningWharf {
        try tlsWhoami(tls + (termination == .channel ? "" : ", library: \(termination.rawValue)"),
                      variant: termination.variant, extra: extra, logged: termination.logged)
    }

    func tlsWhoami(_ tls: String, variant: String?, extra: String = "", logged: String? = nil) throws -> RunningWharf {
        let name = switch variant {
        case nil: "whoami"
        case Self.pumpVariant: "whoami_pump"
        default: "whoami_starttls"
        }
        let whoami = try FixturePlugins.build(name, source: "whoami", define: variant)
        let wharf = try RunningWharf(config: """
            plugins:
              whoami: {path: \(whoami)}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: whoami, tls: {\(tls)}\(extra)}

            """)
        if let logged {
            #expect(eventually { wharf.stderr.contains("accepted by the relay pump, \(logged)") },
                    "the pump terminates TLS: \(wharf.stderr)")
        }
        return wharf
    }

    /// The `proxy` plugin in front of 127.0.0.1:`port`, terminating TLS for a.test;
    /// `extra`: more of the plugin's config keys.
    func tlsProxy(to port: Int, extra: String = "") throws -> RunningWharf {
        try RunningWharf(config: """
            plugins:
              proxy: {path: proxy, config: {upstreams: ["127.0.0.1:\(port)"]\(extra.isEmpty ? "" : ", " + extra)}}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: proxy, tls: {\(siteA)}}

            """)
    }

    var siteA: String { "certificate: \(certs.path("a.test.pem")), key: \(certs.path("a.test.key"))" }
    var siteB: String { "{certificate: \(certs.path("b.test.pem")), key: \(certs.path("b.test.key"))}" }

    func client(_ port: Int, _ arguments: [String], input: String = "ping\n") throws -> String {
        try openSSLClient(port: port, arguments: ["-CAfile", certs.path("ca.pem"), "-verify_return_error"] + arguments,
                          input: input)
    }

    @Test(arguments: Self.terminations) func terminatesTLSAndShowsItsFactsToThePlugin(termination: Termination) throws {
        let wharf = try tlsWhoami(siteA, termination: termination)
        let output = try client(try wharf.port("whoami"), ["-servername", "a.test"])
        #expect(output.contains("tls=0304 sni=a.test alpn= subject=\n"), "\(output)")
        #expect(output.contains("ping\n"), "the plugin echoes over TLS")
        #expect(output.contains("verify return:1"))
    }

    @Test(arguments: Self.terminations) func picksTheCertificateBySNI(termination: Termination) throws {
        let wharf = try tlsWhoami("\(siteA), certificates: [\(siteB)]", termination: termination)
        let port = try wharf.port("whoami")
        let wildcard = try client(port, ["-servername", "www.b.test"])
        #expect(wildcard.contains("depth=0 CN = b.test"), "\(wildcard)")
        #expect(wildcard.contains("sni=www.b.test"))
        let fallback = try client(port, ["-servername", "unknown.test", "-verify_hostname", "unknown.test"])
        #expect(fallback.contains("depth=0 CN = a.test"), "an unknown name gets the first certificate")
    }

    @Test(arguments: Self.terminations) func verifiesClientCertificates(termination: Termination) throws {
        let wharf = try tlsWhoami("\(siteA), client_ca: \(certs.path("ca.pem"))", termination: termination)
        let port = try wharf.port("whoami")
        let alice = try client(port, ["-cert", certs.path("alice.pem"), "-key", certs.path("alice.key")])
        #expect(alice.contains("subject=CN=alice,O=Example\n"), "\(alice)")
        let anonymous = try client(port, [])
        #expect(!anonymous.contains("peer="), "no certificate, no service")
        let mallory = try client(port, ["-cert", certs.path("mallory.pem"), "-key", certs.path("mallory.key")])
        #expect(!mallory.contains("peer="), "a certificate from another CA is refused")
        #expect(eventually { wharf.stderr.contains("TLS handshake failed") && wharf.stderr.contains("count=2") },
                "\(wharf.stderr)")
    }

    @Test(arguments: Self.terminations) func optionalClientAuthLetsAnonymousClientsIn(termination: Termination) throws {
        let wharf = try tlsWhoami("\(siteA), client_ca: \(certs.path("ca.pem")), client_auth: optional",
                                  termination: termination)
        let anonymous = try client(try wharf.port("whoami"), [])
        #expect(anonymous.contains("tls=0304") && anonymous.contains("subject=\n"), "\(anonymous)")
    }

    @Test func enforcesTheMinimumVersion() throws {
        let wharf = try tlsWhoami("\(siteA), min_version: \"1.3\"")
        let port = try wharf.port("whoami")
        #expect(!(try client(port, ["-tls1_2"])).contains("peer="))
        #expect(try client(port, ["-tls1_3"]).contains("tls=0304"))
        let defaults = try tlsWhoami(siteA)
        #expect(try client(try defaults.port("whoami"), ["-tls1_2"]).contains("tls=0303"), "1.2 is allowed by default")
        #expect(!(try client(try defaults.port("whoami"), ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])).contains("peer="))
    }

    @Test(arguments: Self.terminations) func negotiatesALPN(termination: Termination) throws {
        let wharf = try tlsWhoami("\(siteA), alpn: [h2, http/1.1]", termination: termination)
        #expect(try client(try wharf.port("whoami"), ["-alpn", "http/1.1"]).contains("alpn=http/1.1 "))
    }

    @Test func upgradesInPlaceWithStartTLS() throws {
        let wharf = try tlsWhoami("\(siteA), starttls: true", variant: "VARIANT_STARTTLS")
        let output = try client(try wharf.port("whoami"), ["-starttls", "smtp", "-servername", "a.test"])
        #expect(output.contains("tls=0304 sni=a.test"), "\(output)\n\(wharf.stderr)")
        #expect(output.contains("ping\n"))
    }

    @Test(arguments: Self.terminations)
    func aFailedOrSilentHandshakeAffectsOnlyItsConnection(termination: Termination) throws {
        let wharf = try tlsWhoami(siteA, termination: termination, extra: ", handshake_timeout_ms: 300")
        let port = try wharf.port("whoami")
        let silent = try TestSocket(port: port)
        let garbage = try TestSocket(port: port)
        try garbage.send("GET / HTTP/1.0\r\n\r\n")
        #expect(garbage.isClosedByPeer())
        #expect(try client(port, ["-servername", "a.test"]).contains("tls=0304"), "others are served meanwhile")
        #expect(silent.isClosedByPeer())
        #expect(eventually { wharf.stderr.contains("handshake_timeout_ms passed") })
    }

    /// Behind a load balancer: a PROXY header, then TLS (Python's ssl, as no openssl tool
    /// sends a header first). The plugin sees the announced client and the TLS facts.
    @Test(arguments: Self.terminations) func aProxyHeaderThenTLS(termination: Termination) throws {
        let wharf = try tlsWhoami(siteA, termination: termination, extra: ", proxy_protocol: accept")
        let scratch = try TemporaryDirectory()
        let script = try scratch.write("client.py", """
            import socket, ssl, sys
            raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
            raw.sendall(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\\r\\n")
            context = ssl.create_default_context(cafile=sys.argv[2])
            tls = context.wrap_socket(raw, server_hostname="a.test")
            tls.sendall(b"ping\\n")
            reply = b""
            while reply.count(b"\\n") < 2:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                reply += chunk
            print(reply.decode(), end="")
            """)
        let result = try FixturePlugins.run("/usr/bin/env", ["python3", script, "\(try wharf.port("whoami"))",
                                                             certs.path("ca.pem")])
        #expect(result.output.contains("peer=192.0.2.1:56324 local=198.51.100.2:443 proxied=1 tls=0304 sni=a.test"),
                "\(result.output)\n\(wharf.stderr)")
        #expect(result.output.contains("ping\n"))
    }

    @Test func badCertificateFilesAreConfigErrors() throws {
        let scratch = try TemporaryDirectory()
        func check(_ tls: String) throws -> ProcessResult {
            let config = "plugins:\n  echo: {path: echo}\nlisteners:\n"
                + "  - {address: 127.0.0.1, port: 0, plugin: echo, tls: {\(tls)}}\n"
            return try runWharf(["check", "--config", try scratch.write("wharf.yaml", config)])
        }
        let missing = try check("certificate: /nonexistent/cert.pem, key: \(certs.path("a.test.key"))")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains(
            "wharf.yaml:4:68: listeners[0].tls.certificate: cannot read /nonexistent/cert.pem: No such file or directory"),
            "\(missing.stderr)")
        let mismatched = try check("certificate: \(certs.path("a.test.pem")), key: \(certs.path("b.test.key"))")
        #expect(mismatched.status == 2)
        #expect(mismatched.stderr.contains("listeners[0].tls.key: the key does not match the certificate"), "\(mismatched.stderr)")
        let notPEM = try check("certificate: \(scratch.path("wharf.yaml")), key: \(certs.path("a.test.key"))")
        #expect(notPEM.stderr.contains("listeners[0].tls.certificate: \(scratch.path("wharf.yaml")): not a PEM certificate"))
    }

    /// `library: openssl` is an error where OpenSSL cannot serve the listener (here the
    /// system's security level refuses an RSA-1024 key that BoringSSL takes); `auto` then
    /// serves it on BoringSSL and says why.
    @Test func aListenerOpenSSLRefusesFallsBackOrIsAConfigError() throws {
        let scratch = try TemporaryDirectory()
        let generated = try FixturePlugins.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "1", "-subj", "/CN=weak.test",
            "-keyout", scratch.path("weak.key"), "-out", scratch.path("weak.pem")])
        #expect(generated.status == 0, "\(generated.output)")
        let weak = "certificate: \(scratch.path("weak.pem")), key: \(scratch.path("weak.key"))"
        let config = { (library: String) in
            "plugins:\n  echo: {path: echo}\nlisteners:\n"
                + "  - {address: 127.0.0.1, port: 0, plugin: echo, tls: {\(weak), library: \(library)}}\n"
        }
        let strict = try runWharf(["check", "--config", try scratch.write("strict.yaml", config("openssl"))])
        #expect(strict.status == 2)
        #expect(strict.stderr.contains("listeners[0].tls.library: OpenSSL cannot serve this listener: ")
                    && strict.stderr.contains("too small"), "\(strict.stderr)")
        let unknown = try runWharf(["check", "--config", try scratch.write("unknown.yaml", config("libressl"))])
        #expect(unknown.stderr.contains("listeners[0].tls.library: expected auto, openssl or boringssl, got \"libressl\""),
                "\(unknown.stderr)")
        let whoami = try FixturePlugins.build("whoami_pump", source: "whoami", define: Self.pumpVariant)
        let wharf = try RunningWharf(config: """
            plugins:
              whoami: {path: \(whoami)}
            listeners:
              - {address: 127.0.0.1, port: 0, plugin: whoami, tls: {\(weak), library: auto}}

            """)
        #expect(eventually { wharf.stderr.contains("accepted by the relay pump, TLS by BoringSSL") }, "\(wharf.stderr)")
        #expect(wharf.stderr.contains("the relay pump's TLS uses BoringSSL: OpenSSL cannot serve it"))
        let output = try openSSLClient(port: try wharf.port("whoami"), arguments: ["-cipher", "DEFAULT@SECLEVEL=0"],
                                       input: "ping\n")
        #expect(output.contains("tls=0304"), "\(output)")
    }

    /// `auto` picks by the certificates' keys: OpenSSL for RSA, BoringSSL for ECDSA (the
    /// suite's certificates), with no notice (a choice, not a fallback).
    @Test func autoTakesOpenSSLForRSAAndBoringSSLForECDSA() throws {
        let scratch = try TemporaryDirectory()
        let generated = try FixturePlugins.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=a.test",
            "-addext", "subjectAltName=DNS:a.test", "-keyout", scratch.path("rsa.key"), "-out", scratch.path("rsa.pem")])
        #expect(generated.status == 0, "\(generated.output)")
        let rsa = try tlsWhoami("certificate: \(scratch.path("rsa.pem")), key: \(scratch.path("rsa.key"))",
                                variant: Self.pumpVariant, logged: "TLS by OpenSSL 3")
        let output = try openSSLClient(port: try rsa.port("whoami"), arguments: ["-servername", "a.test"],
                                       input: "ping\n")
        #expect(output.contains("tls=0304 sni=a.test"), "\(output)")
        let ecdsa = try tlsWhoami(siteA, variant: Self.pumpVariant, logged: "TLS by BoringSSL")
        #expect(!ecdsa.stderr.contains("OpenSSL cannot serve it"))
    }

    func proxyTo(_ port: Int, tls: String) throws -> RunningWharf {
        try RunningWharf(config: gatewayConfig(
            plugins: "  proxy: {path: proxy, config: {upstreams: [\"127.0.0.1:\(port)\"], retries: 0, tls: {\(tls)}}}\n",
            listeners: ["proxy"]))
    }

    @Test func upstreamTLSVerifiesTheServer() throws {
        let backend = try tlsWhoami("\(siteA), client_ca: \(certs.path("ca.pem")), client_auth: optional")
        let port = try backend.port("whoami")
        let trusted = try proxyTo(port, tls: "ca: \(certs.path("ca.pem")), server_name: a.test")
        let client = try TestSocket(port: try trusted.port("proxy"))
        #expect(try client.receiveLine().contains("tls=0304 sni=a.test alpn= subject=\n"))
        try client.send("ping\n")
        client.shutdownWrite() // becomes close_notify towards the TLS upstream
        let (rest, reset) = try client.receiveUntilClose()
        #expect(String(decoding: rest, as: UTF8.self) == "ping\n" && !reset)

        let withCertificate = try proxyTo(port, tls: "ca: \(certs.path("ca.pem")), server_name: a.test, "
            + "certificate: \(certs.path("alice.pem")), key: \(certs.path("alice.key"))")
        let mutual = try TestSocket(port: try withCertificate.port("proxy"))
        #expect(try mutual.receiveLine().contains("subject=CN=alice,O=Example\n"))

        let untrusted = try proxyTo(port, tls: "ca: \(certs.path("rogue.pem")), server_name: a.test")
        let refused = try TestSocket(port: try untrusted.port("proxy"))
        #expect(refused.isClosedByPeer())
        #expect(eventually { untrusted.stderr.contains("TLS handshake failed") })

        // b.test's certificate has no IP address in it (a.test's does, and NIO accepts a
        // certificate naming the connected IP), so only the name can match.
        let other = try tlsWhoami("certificate: \(certs.path("b.test.pem")), key: \(certs.path("b.test.key"))")
        let wrongName = try proxyTo(try other.port("whoami"), tls: "ca: \(certs.path("ca.pem")), server_name: a.test")
        #expect(try TestSocket(port: try wrongName.port("proxy")).isClosedByPeer())
        #expect(eventually { wrongName.stderr.contains("failedToValidateHostname") }, "\(wrongName.stderr)")
    }

    @Test func sniPassthroughRoutesByTheClientHello() throws {
        let a = try tlsWhoami(siteA), b = try tlsWhoami("certificate: \(certs.path("b.test.pem")), key: \(certs.path("b.test.key"))")
        let aPort = try a.port("whoami"), bPort = try b.port("whoami")
        let front = try RunningWharf(config: gatewayConfig(plugins: """
              proxy: {path: proxy, config: {sni_routes: {a.test: "127.0.0.1:\(aPort)", "*.b.test": ["127.0.0.1:\(bPort)"]}}}

            """, listeners: ["proxy"]))
        let port = try front.port("proxy")
        let toA = try client(port, ["-servername", "a.test"])
        #expect(toA.contains("local=127.0.0.1:\(aPort) ") && toA.contains("sni=a.test"), "\(toA)")
        let toB = try client(port, ["-servername", "api.b.test"])
        #expect(toB.contains("local=127.0.0.1:\(bPort) ") && toB.contains("sni=api.b.test"), "\(toB)")
        let unrouted = try client(port, ["-servername", "c.test"])
        #expect(!unrouted.contains("peer="))
        #expect(eventually { front.stderr.contains("no route for server name \"c.test\"") })
    }

    /// TLS pairs relay through their channels (not the pump); their idle limit still holds.
    @Test func aTLSRelayEndsWhenIdle() throws {
        let backend = TestServer.echo()
        let front = try tlsProxy(to: backend.port, extra: "idle_timeout_ms: 300")
        let started = Date()
        // -ign_eof: s_client stays until the server closes (or the helper's 10 s run out).
        let output = try client(try front.port("proxy"), ["-servername", "a.test", "-ign_eof"], input: "idle soon\n")
        #expect(output.contains("idle soon"), "\(output)")
        let lasted = Date().timeIntervalSince(started)
        #expect(lasted < 5, "the relay ended after \(lasted) s, not after 300 ms of silence")
    }

    /// A reset from the upstream reaches a TLS client as a reset: not a close_notify that would
    /// make the cut-off reply look whole, and not silence.
    @Test func anUpstreamResetReachesTheTLSClientAsAReset() throws {
        let backend = TestServer { fd in
            var request = [UInt8](repeating: 0, count: 64)
            _ = recv(fd, &request, request.count, 0)
            TestServer.write(fd, [UInt8](repeating: 65, count: 100_000))
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        let front = try tlsProxy(to: backend.port)
        let started = Date()
        // -ign_eof: s_client stays until the server ends the connection (or 10 s run out).
        let output = try client(try front.port("proxy"), ["-servername", "a.test", "-ign_eof"], input: "send\n")
        let lasted = Date().timeIntervalSince(started)
        #expect(output.contains("read:errno=104"), "s_client saw ECONNRESET: \(output.suffix(300))")
        #expect(lasted < 5, "the client was ended after \(lasted) s")
    }

    /// The other way: a TLS client that resets reaches the upstream as a reset, and ends it.
    /// (A TLS pair's relay once never heard of a side closed by a socket error, and left the
    /// upstream open until its idle limit: one descriptor leaked per client that reset.)
    /// s_client cannot reset, but its kernel does if it dies with bytes unread: it is stopped,
    /// sent bytes it will never read, and killed.
    @Test func aTLSClientResetReachesTheUpstreamAsAReset() throws {
        let lock = NSLock()
        nonisolated(unsafe) var ending: String?
        let clientStopped = DispatchSemaphore(value: 0)
        let backend = TestServer { fd in
            var buffer = [UInt8](repeating: 0, count: 64)
            let got = recv(fd, &buffer, buffer.count, 0)
            if got > 0 { TestServer.write(fd, Array(buffer[0..<got])) }
            if clientStopped.wait(timeout: .now() + 10) == .success { TestServer.write(fd, Array("unread\n".utf8)) }
            let seen = TestServer.ending(of: fd)
            lock.withLock { ending = seen }
        }
        let front = try tlsProxy(to: backend.port)
        let port = try front.port("proxy")
        let client = try OpenSSLClientProcess(port: port, arguments: ["-CAfile", certs.path("ca.pem"), "-servername", "a.test"])
        defer { client.kill() }
        client.send("hello\n")
        #expect(eventually { client.output.contains("hello\n") }, "relayed: \(client.output)")
        kill(client.pid, SIGSTOP)
        clientStopped.signal()
        #expect(eventually { unreadBytes(onConnectionTo: port) > 0 }, "the client's socket holds what it will not read")
        client.kill()
        #expect(eventually { lock.withLock { ending } != nil }, "the upstream connection ended")
        #expect(lock.withLock { ending } == "reset", "not a FIN that would make the request look whole")
    }

    @Test func wharfClientSpeaksTLS() throws {
        let wharf = try tlsWhoami(siteA)
        let port = try wharf.port("whoami")
        let result = try runWharf(["client", "127.0.0.1", "\(port)", "--tls", "--ca", certs.path("ca.pem"),
                                   "--server-name", "a.test", "--separator", "\\n"], stdin: "hello\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("tls=0304 sni=a.test"), "\(result.stdout)")
        let untrusted = try runWharf(["client", "127.0.0.1", "\(port)", "--tls", "--server-name", "a.test"],
                                     stdin: "hello\n")
        #expect(untrusted.status == 1)
        #expect(untrusted.stderr.contains("TLS handshake failed"), "\(untrusted.stderr)")
    }
}
