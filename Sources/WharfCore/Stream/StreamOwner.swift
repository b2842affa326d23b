import NIOCore

/// The owner of a stream: who hears of its completions and its end. The plugin adapter
/// (`PluginStream`) is one; a Swift caller such as `wharf client` is another. Every call
/// arrives on the stream's loop through the dispatcher, never inside the call that started
/// the operation.
protocol StreamOwner: AnyObject {
    /// The preamble is done and the stream is open. Return false to close it at once.
    func streamOpened(_ stream: IOStreamHandler) -> Bool
    /// The pending read completed: the bytes are borrowed for the call only.
    func streamRead(_ stream: IOStreamHandler, _ token: CompletionToken,
                    _ result: Result<UnsafeRawBufferPointer, StreamError>)
    func streamWrote(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?)
    func streamUpgraded(_ stream: IOStreamHandler, _ token: CompletionToken, _ error: StreamError?)
    /// The last word: after it the stream does nothing more.
    func streamClosed(_ stream: IOStreamHandler, reason: StreamError?)
    /// The connection ended before it opened (a failed or silent preamble): the owner never
    /// saw it, and hears nothing else.
    func streamAbandoned(_ stream: IOStreamHandler, reason: StreamError, error: (any Error)?)
}

/// What a relay hears from one of its streams.
enum RelayEvent {
    /// Bytes read from the stream's socket (channel relay).
    case received(ByteBuffer)
    /// The stream's peer sent FIN (channel relay).
    case inputEnded
    /// The stream's output can take more again (channel relay: read the partner).
    case writabilityChanged
    /// The stream's channel closed, for `reason` (nil: cleanly).
    case channelClosed(StreamError?)
    /// The owner (or the gateway, with a reason) closed or aborted the stream (pump).
    case closeRequested(StreamError?, graceful: Bool)
    case setNoDelay(Bool)
}

/// A relay a stream is attached to.
protocol StreamRelay: AnyObject {
    func stream(_ stream: IOStreamHandler, reported event: RelayEvent)
    /// Whether the stream's partner can take what the stream would read now.
    func partnerWritable(of stream: IOStreamHandler) -> Bool
}
