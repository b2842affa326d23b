/// What a connection pool needs of a stream (`Plugin/PluginPool.swift`).
extension IOStreamHandler {
    /// Takes the pending read back unresolved (a pool handing out a connection it was
    /// watching); its token, if there was one, never completes.
    func withdrawRead() -> CompletionToken? {
        machine.withdrawRead()
    }

    /// Whether a pool may hand this stream to its next user (see `pool_release`).
    var isReusable: Bool { machine.isReusable(hasUnsentWrites: hasUnsentWrites) }
}
