import NIOCore

/// The machine's vocabulary: its states, and for each event the actions it can answer with.
/// `IOStreamHandler` switches over these; nothing else interprets them.
extension StreamStateMachine {
    enum State: Equatable {
        /// Reading the preamble still `awaiting`; the owner has not seen the stream.
        case starting(awaiting: Preamble)
        case open
        /// Close requested: reads refused, flushing writes (bounded by the close linger).
        case closing
        case relayed(RelayMode)
        /// The channel is gone; the close notification is queued.
        case closed
        /// The close notification has run: nothing more happens.
        case finished
    }

    enum RelayMode: Equatable {
        /// Bytes pass through this stream's channel (TLS pairs).
        case channel
        /// Waiting for unsent writes before the socket goes to the pump.
        case pumpHandoff
        /// The pump owns a duplicate of the socket; the channel is closed.
        case pumped
    }

    enum ActivateAction: Equatable { case none, open, readPreamble }

    enum InboundAction: Equatable {
        case none
        /// Evaluate the pending read (through the loop's dispatcher).
        case serviceRead
        /// The bytes belong to the channel relay.
        case forwardToRelay(ByteBuffer)
        /// The peer's FIN, for the channel relay.
        case forwardEndToRelay
        /// A connection that never opened is over: close its channel.
        case abandon
    }

    enum ErrorAction: Equatable {
        case none
        case abandon
        /// Close at once for `reason`; first fail the start_tls in flight, if any.
        case close(StreamError, failingUpgrade: CompletionToken?)
    }

    enum InactiveAction: Equatable {
        case none
        /// Never opened: tell the owner why.
        case abandoned(StreamError)
        /// Resolve what is pending (the read, a start_tls), tell a relay, then queue the
        /// close notification.
        case closed(serviceRead: Bool, failingUpgrade: CompletionToken?, tellRelay: Bool)
    }

    enum ServiceAction: Equatable {
        case none
        case deliver(ByteBuffer, CompletionToken)
        /// Fail the read, then close the stream gracefully (with `closeReason`, if any).
        case fail(StreamError, CompletionToken, closeReason: StreamError?)
    }

    enum CloseAction: Equatable {
        case none
        /// Flush pending writes, then close the channel.
        case closeWhenFlushed(serviceRead: Bool)
        /// Close the channel now; `reset` sends RST (SO_LINGER 0) and drops unsent data.
        case closeNow(reset: Bool, serviceRead: Bool)
        /// The pump owns the socket: the relay carries the close out.
        case forwardToRelay
    }

    enum TimerAction: Equatable {
        case none
        /// A connection that never opened took too long.
        case abandon
        /// Close for this reason: gracefully (flush first), or at once.
        case close(StreamError, graceful: Bool, failingUpgrade: CompletionToken?)
        /// The plugin's read deadline passed: fail that read; the stream stays usable.
        case failRead(CompletionToken)
    }

    enum HandshakeAction: Equatable {
        case none
        case open
        case upgraded(CompletionToken)
    }
}
