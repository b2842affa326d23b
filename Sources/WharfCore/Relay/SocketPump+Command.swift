/// What an event loop asks of its relay pump (`SocketPump.send`), applied on the pump's
/// thread in the order sent.
extension SocketPump {
    enum Command {
        case add(PumpedPair)
        /// A pair with only its upstream socket, connecting: the pump reports the outcome.
        case connect(PumpedPair)
        /// The client's socket for a pair whose upstream connected.
        case attachClient(PumpedPair, ClientHandover)
        /// The plugin closed (or aborted) one side.
        case close(PumpedPair, side: Int, abort: Bool)
        /// The gateway ends the relay now (shutdown).
        case end(PumpedPair, StreamError)
        case setNoDelay(PumpedPair, side: Int, Bool)
        /// Read an accepted socket's preamble (PROXY header, TLS handshake); the owner hears
        /// how it ended.
        case preamble(PumpPreamble)
        /// The stream gave up on the preamble (its deadline, a shutdown): close its socket.
        case cancelPreamble(PumpPreamble)
        /// Accept on a listening socket (see `PumpListener`).
        case listen(PumpListener)
        /// The listener's gate opened or closed.
        case setAccepting(PumpListener, Bool)
        /// Stop accepting on it for good; `done` runs on the pump thread once it is unwatched.
        case unlisten(PumpListener, done: @Sendable () -> Void)
    }
}
