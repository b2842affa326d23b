import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the supervisor holds for its workers: every listening socket (bound once, kept across
/// reloads and crashes) and the listeners' per-client tables.
extension Supervisor {
    // MARK: Listening sockets

    /// Each worker slot's sockets for `config`'s listeners, in listener order: the groups a
    /// live generation already has for the same address and port (grown if `processes`
    /// grew), an inherited socket bound there, or new ones. Sockets this call bound are
    /// closed again if a later one fails.
    func bindListeners(of config: GatewayConfig, inherited: [CInt] = []) throws(GatewayError) -> [[ListeningSocket]] {
        var groups: [String: [ListeningSocket]] = [:]
        var fresh: [ListeningSocket] = []
        var unclaimed = inherited
        do throws(GatewayError) {
            for (index, listener) in config.listeners.enumerated() {
                let key = ListeningSocket.key(of: listener, index: index)
                var group = socketGroups[key] ?? []
                if group.isEmpty, let match = unclaimed.firstIndex(where: { ListeningSocket.isBound($0, to: listener) }) {
                    let socket = ListeningSocket.adopt(descriptor: unclaimed.remove(at: match), key: key)
                    socket.configure(for: listener)
                    logger.info("using the socket passed for \(key) (fd \(socket.descriptor))")
                    group = [socket]
                    fresh.append(socket)
                }
                if group.isEmpty {
                    group = try ListeningSocket.bindGroup(listener, index: index, count: config.processes)
                    fresh += group
                }
                while group.count < config.processes {
                    guard group[0].reusesPort else {
                        // A passed socket without SO_REUSEPORT: every worker shares it.
                        logger.warning("""
                            the socket passed for \(key) has no SO_REUSEPORT (ReusePort=yes in the socket unit): \
                            the \(config.processes) workers share one socket
                            """)
                        group += Array(repeating: group[0], count: config.processes - group.count)
                        break
                    }
                    let joined = try ListeningSocket.join(group[0], for: listener, index: index)
                    fresh.append(joined)
                    group.append(joined)
                }
                groups[key] = group
            }
        } catch {
            fresh.forEach { $0.close() }
            throw error
        }
        for descriptor in unclaimed {
            logger.warning("an inherited socket (fd \(descriptor)) matches no listener; closing it")
            close(descriptor)
        }
        for (key, group) in groups {
            if socketGroups[key] == nil, let first = group.first {
                let address = first.boundAddress.contains(":") ? "[\(first.boundAddress)]" : first.boundAddress
                logger.info("listening on \(address):\(first.boundPort)")
            }
            socketGroups[key] = group
        }
        let keys = config.listeners.enumerated().map { ListeningSocket.key(of: $1, index: $0) }
        return (0..<config.processes).map { slot in keys.map { groups[$0]![slot] } }
    }

    /// Closes every socket that no generation serving or starting has and no worker may still
    /// accept from: a removed listener, or the slots of a `processes` that shrank. Only
    /// sockets at the end of a group go, so a socket's index stays its slot.
    func closeUnusedSockets() {
        var used = Set<ObjectIdentifier>()
        for user in machine.socketUsers {
            generations[user.generation]?.slots[user.slot].forEach { used.insert(ObjectIdentifier($0)) }
        }
        for (key, group) in socketGroups {
            var kept = group
            while let last = kept.last, !used.contains(ObjectIdentifier(last)) {
                kept.removeLast()
                if !kept.contains(where: { $0 === last }) { last.close() }
            }
            if kept.isEmpty {
                logger.info("no longer listening on \(key)")
                socketGroups[key] = nil
            } else {
                socketGroups[key] = kept
            }
        }
    }

    /// Drops this supervisor's copy of every listening socket (stopping, handed over, exiting).
    func closeAllSockets() {
        socketGroups.values.joined().forEach { $0.close() }
        socketGroups.removeAll()
    }

    // MARK: Per-client tables

    /// The tables of `config`'s listeners with `per_client` limits, in listener order: the
    /// one a live generation has for the same socket (and size), or a new one.
    func clientTables(for config: GatewayConfig) throws(GatewayError) -> [ClientTable] {
        var tables: [ClientTable] = []
        for (index, listener) in config.listeners.enumerated() where listener.perClient.isEnabled {
            let key = ListeningSocket.key(of: listener, index: index)
            if let table = clientTables[key], table.capacity == listener.perClient.tableSize {
                tables.append(table)
                continue
            }
            guard let table = ClientTable.create(capacity: listener.perClient.tableSize) else {
                throw GatewayError(kind: .listen, message: "\(listener.location): cannot create the per-client table: "
                    + ListeningSocket.errorText())
            }
            clientTables[key] = table
            tables.append(table)
        }
        return tables
    }

    /// Drops tables no live generation's listeners use.
    func releaseUnusedClientTables() {
        var used = Set<String>()
        for (config, _) in generations.values {
            for (index, listener) in config.listeners.enumerated() where listener.perClient.isEnabled {
                used.insert(ListeningSocket.key(of: listener, index: index))
            }
        }
        clientTables = clientTables.filter { used.contains($0.key) }
    }
}
