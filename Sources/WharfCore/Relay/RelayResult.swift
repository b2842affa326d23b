/// The outcome of a relay, as `wharf_relay_result` reports it.
public struct RelayResult: Sendable, Equatable {
    public var reason: StreamError?
    public var bytesAToB: UInt64
    public var bytesBToA: UInt64
}
