import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An answer of the admin endpoint.
struct AdminResponse {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String

    static func text(_ body: String, _ status: HTTPResponseStatus = .ok) -> AdminResponse {
        AdminResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }

    static func json(_ body: String, _ status: HTTPResponseStatus = .ok) -> AdminResponse {
        AdminResponse(status: status, contentType: "application/json", body: body)
    }
}

/// What the admin endpoint answers: a method and a path in, a response out (later, for a
/// reload, through `respond`). Runs on the supervisor's event loop.
protocol AdminRoutes: AnyObject {
    func answer(_ method: HTTPMethod, _ path: String, respond: @escaping (AdminResponse) -> Void)
}

/// The supervisor's HTTP/1.1 listener (NIOHTTP1): small requests, one at a time per
/// connection, keep-alive honoured. Refuses clients the `admin` allow/deny list refuses
/// before reading a byte, and request bodies (nothing here takes one) past 64 KiB.
enum AdminServer {
    /// Serves on a duplicate of `socket`'s descriptor: the supervisor keeps the socket itself
    /// (a binary upgrade hands it over; a failed one serves it again).
    static func start(_ config: AdminConfig, socket: ListeningSocket, on eventLoop: any EventLoop,
                      routes: any AdminRoutes) -> EventLoopFuture<any Channel> {
        let descriptor = dup(socket.descriptor)
        guard descriptor >= 0 else {
            return eventLoop.makeFailedFuture(IOError(errnoCode: errno, reason: "dup"))
        }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        let access = config.access
        let boxedRoutes = NIOLoopBound(routes, eventLoop: eventLoop)
        return ServerBootstrap(group: eventLoop)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard access.permits(channel.remoteAddress) else {
                        channel.close(promise: nil)
                        return
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(routes: boxedRoutes.value))
                }
            }
            .withBoundSocket(descriptor)
    }
}

/// One admin connection: gathers a request, asks the routes, writes the answer.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private static let maxBody = 64 * 1024
    private let routes: any AdminRoutes
    private var request: HTTPRequestHead?
    private var bodyBytes = 0
    /// A response is being produced (a reload takes a while): later requests wait their turn.
    private var answering = false

    init(routes: any AdminRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case let .head(head):
            request = head
            bodyBytes = 0
        case let .body(buffer):
            bodyBytes += buffer.readableBytes
            if bodyBytes > Self.maxBody {
                request = nil
                respond(context: context, head: nil, .text("request body too large\n", .payloadTooLarge), close: true)
            }
        case .end:
            guard let head = request, !answering else { return }
            request = nil
            answering = true
            let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            routes.answer(head.method, path) { response in
                let (handler, context) = loopBound.value
                handler.answering = false
                handler.respond(context: context, head: head, response, close: !head.isKeepAlive)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead?, _ response: AdminResponse, close: Bool) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: "\(response.body.utf8.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        if close { headers.add(name: "Connection", value: "close") }
        let version = head?.version ?? .http1_1
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status,
                                                                  headers: headers))), promise: nil)
        if head?.method != .HEAD {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if close { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}
