import CWharf
import NIOCore

/// `connect_relay` [1.6]: an upstream connect and a relay in one call.
extension HostAPI {
    static func addConnectRelay(to api: inout wharf_host_api) {
        api.connect_relay = { client, host, hostLength, port, options, onConnected, onDone, userdata in
            guard let onConnected, let host, hostLength > 0, hostLength <= 255, port > 0, port <= 65535 else {
                return WHARF_E_INVALID
            }
            var given = wharf_connect_relay_options()
            if let options {
                guard let read = CStruct.read(options, declaredSize: Int(options.pointee.struct_size), zero: given) else {
                    return WHARF_E_INVALID
                }
                given = read
            }
            guard let connect = ConnectOptions(given.connect), given.preface != nil || given.preface_len == 0 else {
                return WHARF_E_INVALID
            }
            let idleTimeout = RelayOptions.idleTimeout(given.relay)
            let preface = given.preface.map { Array(UnsafeBufferPointer(start: $0, count: given.preface_len)) } ?? []
            let name = String(decoding: UnsafeRawBufferPointer(start: host, count: hostLength), as: UTF8.self)
            let plugin = UnsafeTransfer(userdata)
            return HostAPI.withStream(client) { adapter in
                let minor = adapter.abiMinor
                let request = ConnectRelayRequest(host: name, port: Int(port), options: connect, idleTimeout: idleTimeout,
                                                  preface: preface)
                return adapter.connectRelay(request, onConnected: { error in
                    onConnected(plugin.value, StatusCode.of(error, abiMinor: minor))
                }, onDone: { outcome in
                    var result = wharf_relay_result(outcome, abiMinor: minor)
                    onDone?(plugin.value, &result)
                })
            }
        }
    }
}

/// What a plugin asked `connect_relay` for.
struct ConnectRelayRequest {
    let host: String
    let port: Int
    let options: ConnectOptions
    let idleTimeout: TimeAmount?
    let preface: [UInt8]
}

extension PluginStream {
    /// Connects this (client) stream's upstream and relays the two. The direct path
    /// (`UpstreamRelay`) needs plain TCP to the upstream, an IP address, the relay pump and the
    /// client's descriptor; otherwise an upstream stream is connected and relayed as
    /// connect and relay would, which the plugin cannot tell apart. A TLS client whose
    /// handshake the pump ran goes to the pump with its session.
    func connectRelay(_ request: ConnectRelayRequest, onConnected: @escaping (StreamError?) -> Void,
                      onDone: @escaping (RelayResult) -> Void) -> Int32 {
        let client = stream!
        if let refusal = client.relayRefusal { return code(refusal) }
        let idle = earliest(request.idleTimeout, client.idleTimeout)
        let loop = client.loop
        if loop.dialer == nil, request.options.tls == nil, client.isPumpableAsClient,
           let address = loop.upstreamAddresses.address(host: request.host, port: request.port),
           let pump = loop.pump.running(), let fd = client.pumpableDescriptor {
            let options = request.options
            let target = UpstreamRelay.Target(address: address, timeout: options.timeout, noDelay: options.noDelay,
                                              keepalive: options.keepalive ?? client.options.keepalive,
                                              source: options.sourceAddress)
            let accounting = UpstreamAccounting(counters: counters, record: record, now: loop.now)
            UpstreamRelay(client: client, clientFD: fd, target: target, idleTimeout: idle, preface: request.preface,
                          accounting: accounting, onConnected: onConnected, onDone: onDone).start(pump: pump)
            return WHARF_OK
        }
        connectThenRelay(request, onConnected: onConnected, onDone: onDone)
        return WHARF_OK
    }

    /// The general path: an upstream stream, then `Relay.start`.
    private func connectThenRelay(_ request: ConnectRelayRequest, onConnected: @escaping (StreamError?) -> Void,
                                  onDone: @escaping (RelayResult) -> Void) {
        let client = stream!
        connectUpstream(host: request.host, port: request.port, options: request.options) { result in
            switch result {
            case let .failure(error):
                onConnected(error)
            case let .success(upstream):
                let stream = upstream.stream!
                if !request.preface.isEmpty {
                    _ = request.preface.withUnsafeBytes { stream.write($0, token: nil) }
                }
                if let refusal = Relay.start(client, stream, idleTimeout: request.idleTimeout, onDone: onDone) {
                    stream.close(reason: nil, graceful: false)
                    onConnected(refusal)
                } else {
                    onConnected(nil)
                }
            }
        }
    }

    /// Opens an upstream stream for this (client) stream, counted by its listener and access
    /// log; `completion` hears the outcome once (`connect`, and `connect_relay`'s general path).
    func connectUpstream(host: String, port: Int, options: ConnectOptions,
                         completion: @escaping (Result<PluginStream, StreamError>) -> Void) {
        let origin = stream!
        var streamOptions = origin.options
        if let cap = options.maxBufferSize { streamOptions.maxBufferSize = cap }
        let upstream = PluginStream(pluginLoop: pluginLoop, abiMinor: abiMinor, role: .connected(completion),
                                    counters: counters, record: record)
        UpstreamConnector.connect(on: origin.loop, host: host, port: port, options: options,
                                  streamOptions: streamOptions, owner: upstream, connectFailed: upstream.connectFailed)
    }
}
