import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `/status`: the supervisor's state and every counter, as JSON for scripts and the status
/// page. Built from the same snapshot as `/metrics`.
extension Supervisor {
    func statusReport() -> JSONValue {
        let now = WallClock.now
        let monotonicNow = NIODeadline.now()
        let snapshot = metrics.snapshot()
        let notReady = machine.notReadyReason
        var members: [(String, JSONValue)] = [
            ("pid", .int(getpid())),
            ("version", .string(WharfBuild.version)),
            ("abi", .string(WharfBuild.abi)),
            ("time", .number(now)),
            ("uptime_s", .number(now - startedAt)),
            ("ready", .bool(notReady == nil)),
            ("not_ready_reason", notReady.map(JSONValue.string) ?? .null),
            ("generation", machine.servingGeneration.map(JSONValue.int) ?? .null),
        ]
        members.append(("generations", .array(machine.generationStates.map { number, state in
            let config = generations[number]?.config
            return .object([
                ("number", .int(number)),
                ("state", .string(state)),
                ("config", config.map { .string($0.source) } ?? .null),
                ("config_hash", config.map { .string(Self.hash($0.text)) } ?? .null),
                ("age_s", generationStarted[number].map { .number(now - $0) } ?? .null),
                ("processes", config.map { .int($0.processes) } ?? .null),
                ("plugins", .array((generationPlugins[number] ?? []).map { plugin in
                    .object([("instance", .string(plugin.instance)), ("library", .string(plugin.library)),
                             ("path", .string(plugin.path)), ("version", .string(plugin.version)),
                             ("abi", .string(plugin.abi))])
                })),
            ])
        })))
        members.append(("workers", .array(machine.workerSummaries.map { worker in
            .object([
                ("pid", .int(worker.pid)),
                ("generation", .int(worker.generation)),
                ("slot", .int(worker.slot)),
                ("state", .string(worker.state)),
                ("started", metrics.startTime(of: worker.pid).map(JSONValue.number) ?? .null),
                ("uptime_s", .number(Double((monotonicNow - worker.startedAt).nanoseconds) / 1e9)),
                ("slot_restarts", .int(metrics.restartsBySlot[worker.slot] ?? 0)),
            ])
        })))
        members.append(("listeners", .array(listenerReports(snapshot))))
        members.append(("restarts", .object(snapshot.restarts.keys.sorted().map { ($0, .int(snapshot.restarts[$0]!)) })))
        members.append(("reloads", .object([("ok", .int(snapshot.reloads.ok)), ("failed", .int(snapshot.reloads.failed))])))
        members.append(("log_lines_dropped", .int(snapshot.process[ProcessField.logLinesDropped])))
        members.append(("access_log_lines_dropped", .int(snapshot.process[ProcessField.accessLogLinesDropped])))
        members.append(("plugin_metrics", .array(snapshot.plugins.keys.sorted().map { key in
            let series = snapshot.plugins[key]!
            var fields: [(String, JSONValue)] = [
                ("name", .string(key.name)), ("type", .string(series.kind.name)), ("instance", .string(key.instance)),
                ("labels", .object(zip(series.labelNames, key.labels).map { ($0, .string($1)) })),
            ]
            switch series.kind {
            case .counter: fields.append(("value", .int(series.words[0])))
            case .gauge: fields.append(("value", .int(Int64(bitPattern: series.words[0]))))
            case .histogram:
                fields.append(("count", .int(series.words.dropLast().reduce(0, &+))))
                fields.append(("sum", .number(Double(bitPattern: series.words.last!))))
            }
            return .object(fields)
        })))
        return .object(members)
    }

    /// The serving generation's listeners first (with their addresses), then any that only
    /// older generations had.
    private func listenerReports(_ snapshot: MetricsSnapshot) -> [JSONValue] {
        let config = currentConfig
        let socketsOfSlot0 = machine.servingGeneration.flatMap { generations[$0]?.slots.first } ?? []
        var reported = Set<MetricsLayout.ListenerLabels>()
        var reports: [JSONValue] = []
        func report(_ labels: MetricsLayout.ListenerLabels, address: String?, port: Int?, current: Bool) {
            reported.insert(labels)
            let counters = snapshot.listeners[labels]
            func value(_ field: Int) -> JSONValue { .int(counters?[field] ?? 0) }
            reports.append(.object([
                ("name", .string(labels.listener)),
                ("plugin", .string(labels.plugin)),
                ("address", address.map(JSONValue.string) ?? .null),
                ("port", port.map(JSONValue.int) ?? .null),
                ("current", .bool(current)),
                ("active", .int(counters?.active ?? 0)),
                ("accepted", value(ListenerField.accepted)),
                ("closed", .object(CloseReason.allCases.map { ($0.label, .int(counters?.closed($0) ?? 0)) })),
                ("received_bytes", value(ListenerField.received)),
                ("sent_bytes", value(ListenerField.sent)),
                ("tls_handshakes", value(ListenerField.tlsHandshakes)),
                ("upstream_connects", value(ListenerField.upstreamConnects)),
                ("upstream_failures", .object(ConnectFailure.allCases.map {
                    ($0.label, value(ListenerField.connectFailures + $0.rawValue))
                })),
                ("upstream_received_bytes", value(ListenerField.upstreamReceived)),
                ("upstream_sent_bytes", value(ListenerField.upstreamSent)),
                ("accept_errors", .object(AcceptFailure.allCases.map {
                    ($0.label, value(ListenerField.acceptErrors + $0.rawValue))
                })),
            ]))
        }
        for (index, listener) in (config?.listeners ?? []).enumerated() {
            let socket = index < socketsOfSlot0.count ? socketsOfSlot0[index] : nil
            report(MetricsLayout.ListenerLabels(listener: listener.displayName, plugin: listener.plugin),
                   address: socket?.boundAddress ?? listener.address, port: socket?.boundPort ?? listener.port,
                   current: true)
        }
        for labels in snapshot.listenerLabels where !reported.contains(labels) {
            report(labels, address: nil, port: nil, current: false)
        }
        return reports
    }

    /// FNV-1a, 64 bits: enough to tell two configs apart at a glance.
    static func hash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
