import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The admin endpoint's answers: health, readiness, metrics, status, reload, status page.
extension Supervisor: AdminRoutes {
    /// The socket a binary upgrade handed over if it is bound where `admin` says, else a new one.
    func takeAdminSocket(_ admin: AdminConfig) throws(GatewayError) -> ListeningSocket {
        if let inherited = inheritedAdminSocket {
            inheritedAdminSocket = nil
            if ListeningSocket.isBound(inherited.descriptor, host: admin.address, port: admin.port) { return inherited }
            inherited.close()
        }
        return try ListeningSocket.bindAdmin(admin)
    }

    /// Starts (or restarts, after a failed upgrade) serving the admin socket.
    func serveAdmin() {
        guard let socket = adminSocket, let admin = adminConfig else { return }
        AdminServer.start(admin, socket: socket, on: eventLoop, routes: self).whenComplete { result in
            switch result {
            case let .success(channel):
                self.adminServer = channel
                self.logger.info("admin endpoint on http://\(socket.endpoint)/")
            case let .failure(error):
                self.logger.error("cannot serve the admin endpoint: \(Gateway.describe(error))")
            }
        }
    }

    /// The config of the generation serving now (or starting, before any serves).
    var currentConfig: GatewayConfig? {
        if let serving = machine.servingGeneration { return generations[serving]?.config }
        return generations.keys.max().flatMap { generations[$0]?.config }
    }

    func answer(_ method: HTTPMethod, _ path: String, respond: @escaping (AdminResponse) -> Void) {
        let known: [String: [HTTPMethod]] = ["/healthz": [.GET, .HEAD], "/readyz": [.GET, .HEAD],
                                             "/metrics": [.GET, .HEAD], "/status": [.GET, .HEAD],
                                             "/reload": [.POST], "/": [.GET, .HEAD]]
        guard let methods = known[path] else { return respond(.text("not found\n", .notFound)) }
        guard methods.contains(method) else {
            return respond(.text("\(path) takes \(methods.map(\.rawValue).joined(separator: " or "))\n",
                                 .methodNotAllowed))
        }
        switch path {
        case "/healthz":
            respond(.text("ok\n"))
        case "/readyz":
            if let reason = machine.notReadyReason {
                respond(.text("not ready: \(reason)\n", .serviceUnavailable))
            } else {
                respond(.text("ready\n"))
            }
        case "/metrics":
            respond(AdminResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                  body: metrics.snapshot().prometheus(facts)))
        case "/status":
            respond(.json(statusReport().text + "\n"))
        case "/reload":
            func failed(_ reason: String, _ status: HTTPResponseStatus) {
                respond(.json(JSONValue.object([("result", .string("failed")), ("reason", .string(reason))]).text + "\n",
                              status))
            }
            // Refused at once (another reload, starting, stopping): 409; failed: 500.
            if let reason = machine.canReload { return failed(reason, .conflict) }
            reload { result in
                switch result {
                case let .serving(generation):
                    respond(.json(JSONValue.object([("result", .string("ok")), ("generation", .int(generation))]).text + "\n"))
                case let .failed(reason):
                    failed(reason, .internalServerError)
                }
            }
        default:
            respond(AdminResponse(status: .ok, contentType: "text/html; charset=utf-8", body: StatusPage.html))
        }
    }

    var facts: SupervisorFacts {
        var workers: [Int: Int] = [:]
        for worker in machine.workerSummaries { workers[worker.generation, default: 0] += 1 }
        return SupervisorFacts(generation: machine.servingGeneration, workers: workers,
                               draining: machine.phase == .stopping)
    }
}

extension ListeningSocket {
    var endpoint: String { Endpoint.text(boundAddress, boundPort) }
}
