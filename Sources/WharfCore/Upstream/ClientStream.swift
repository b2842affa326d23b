import NIOCore

/// An outgoing stream for Swift code (`wharf client`): the same stream plugins get, with
/// closures instead of C callbacks. Confined to its loop: call it there, and completions
/// run there, never inside the call that started them.
public final class ClientStream: StreamOwner, @unchecked Sendable {
    public typealias ReadCompletion = (Result<[UInt8], StreamError>) -> Void

    private var stream: IOStreamHandler?
    private var pendingRead: ReadCompletion?
    private var connected: ((Result<ClientStream, StreamError>) -> Void)?
    /// The last word: called once when the stream has closed, with why.
    public var onClose: ((StreamError?) -> Void)?

    private init(connected: @escaping (Result<ClientStream, StreamError>) -> Void) {
        self.connected = connected
    }

    /// Connects on `loop` (call on that loop); `completion` runs once with the open stream
    /// or the reason it could not be opened.
    public static func connect(on loop: LoopContext, host: String, port: Int, options: ConnectOptions,
                               completion: @escaping (Result<ClientStream, StreamError>) -> Void) {
        let client = ClientStream(connected: completion)
        UpstreamConnector.connect(on: loop, host: host, port: port, options: options, streamOptions: StreamOptions(),
                                  owner: client, connectFailed: client.finishConnect(with:))
    }

    public func readUntil(_ delimiter: [UInt8], _ completion: @escaping ReadCompletion) -> StreamError? {
        read(.until(delimiter: delimiter, maxBytes: 0), completion)
    }

    public func readSome(upTo count: Int, _ completion: @escaping ReadCompletion) -> StreamError? {
        read(.bytes(count: count, partial: true), completion)
    }

    private func read(_ request: ReadRequest, _ completion: @escaping ReadCompletion) -> StreamError? {
        guard let stream else { return .closed }
        let refusal = stream.startRead(request, token: CompletionToken(function: nil, context: nil))
        if refusal == nil { pendingRead = completion }
        return refusal
    }

    public func write(_ bytes: [UInt8]) -> StreamError? {
        guard let stream else { return .closed }
        return bytes.withUnsafeBytes { stream.write($0, token: nil) }
    }

    public func shutdownWrite() -> StreamError? {
        stream?.shutdownWrite() ?? .closed
    }

    private func finishConnect(with error: StreamError) {
        connected?(.failure(error))
        connected = nil
    }

    // MARK: StreamOwner

    func streamOpened(_ stream: IOStreamHandler) -> Bool {
        self.stream = stream
        connected?(.success(self))
        connected = nil
        return true
    }

    func streamRead(_ stream: IOStreamHandler, _ token: CompletionToken,
                    _ result: Result<UnsafeRawBufferPointer, StreamError>) {
        let completion = pendingRead
        pendingRead = nil
        completion?(result.map { Array($0) })
    }

    func streamWrote(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?) {}
    func streamUpgraded(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?) {}

    func streamClosed(_ stream: IOStreamHandler, reason: StreamError?) {
        self.stream = nil
        onClose?(reason)
        onClose = nil
    }

    func streamAbandoned(_ stream: IOStreamHandler, reason: StreamError, error: (any Error)?) {
        finishConnect(with: reason)
    }
}
