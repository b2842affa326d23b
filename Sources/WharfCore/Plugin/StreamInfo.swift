import CWharf

/// `wharf_stream_info` for a stream, as get_info fills it.
enum StreamInfo {
    static func make(for stream: IOStreamHandler) -> wharf_stream_info {
        var info = wharf_stream_info()
        info.struct_size = UInt32(MemoryLayout<wharf_stream_info>.size)
        info.loop_index = UInt32(stream.loop.loopIndex)
        info.loop_count = UInt32(stream.loop.loopCount)
        info.is_client = stream.isClient ? 1 : 0
        info.stream_id = stream.streamID
        let proxied = stream.proxiedHeader
        if let peer = proxied?.source ?? stream.remoteAddress {
            info.peer_family = Int32(peer.protocol.rawValue)
            info.peer_port = UInt32(peer.port ?? 0)
            CString.fill(&info.peer_address, with: peer.ipAddress ?? peer.pathname ?? "")
        }
        if let local = proxied?.destination ?? stream.localAddress {
            info.local_family = Int32(local.protocol.rawValue)
            info.local_port = UInt32(local.port ?? 0)
            CString.fill(&info.local_address, with: local.ipAddress ?? local.pathname ?? "")
        }
        info.proxied = proxied?.source != nil ? 1 : 0
        if let tls = stream.tlsFacts {
            info.tls_version = tls.version
            CString.fill(&info.tls_server_name, with: stream.serverName ?? "")
            CString.fill(&info.tls_alpn, with: tls.alpn)
            CString.fill(&info.tls_peer_subject, with: tls.peerSubject)
        }
        return info
    }
}
