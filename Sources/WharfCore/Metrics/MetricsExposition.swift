/// What only the supervisor knows, for `/metrics` and `/status`.
struct SupervisorFacts {
    /// The generation serving now, if any.
    var generation: Int?
    /// Live worker processes per generation.
    var workers: [Int: Int]
    var draining: Bool
}

/// The `/metrics` page: every family, in a fixed order. The names follow Prometheus
/// conventions; README's metrics table maps them to HAProxy's and Envoy's.
extension MetricsSnapshot {
    func prometheus(_ facts: SupervisorFacts) -> String {
        var out = PrometheusText()
        let labels = listenerLabels
        func each(_ name: String, _ kind: PrometheusText.Kind, _ help: String, _ field: Int) {
            out.family(name, kind, help)
            for key in labels { out.sample(name, key.pairs, listeners[key]![field]) }
        }
        each("wharf_connections_accepted_total", .counter, "Connections accepted by a listener.", ListenerField.accepted)
        out.family("wharf_connections_active", .gauge, "Connections open now.")
        for key in labels { out.sample("wharf_connections_active", key.pairs, listeners[key]!.active) }
        /// One sample per listener and value of `label` (`names[i]` at `field + i`).
        func split(_ name: String, _ help: String, _ label: String, _ names: [String], _ field: Int) {
            out.family(name, .counter, help)
            for key in labels {
                for (index, value) in names.enumerated() {
                    out.sample(name, key.pairs + [(label, value)], listeners[key]![field + index])
                }
            }
        }
        func histogram(_ name: String, _ help: String, _ shape: HistogramShape, _ field: Int) {
            out.family(name, .histogram, help)
            for key in labels {
                out.histogram(name, key.pairs, shape, listeners[key]!.totals[field..<field + shape.words])
            }
        }
        split("wharf_connections_closed_total", "Connections ended, by reason (who or what ended them).", "reason",
              CloseReason.allCases.map(\.label), ListenerField.closed)
        histogram("wharf_connection_duration_seconds", "How long connections lasted, from accept to close.",
                  .connectionDuration, ListenerField.duration)
        each("wharf_received_bytes_total", .counter, "Bytes received from clients.", ListenerField.received)
        each("wharf_sent_bytes_total", .counter, "Bytes sent to clients.", ListenerField.sent)
        each("wharf_tls_handshakes_total", .counter, "TLS handshakes completed with clients at accept.",
             ListenerField.tlsHandshakes)
        each("wharf_upstream_connects_total", .counter, "Upstream connections a plugin started.",
             ListenerField.upstreamConnects)
        split("wharf_upstream_connect_failures_total", "Upstream connections that failed, by reason.", "reason",
              ConnectFailure.allCases.map(\.label), ListenerField.connectFailures)
        histogram("wharf_upstream_connect_seconds", "Time to connect upstream (with the TLS handshake when there is one).",
                  .connectTime, ListenerField.connectTime)
        each("wharf_upstream_received_bytes_total", .counter, "Bytes received from upstream connections.",
             ListenerField.upstreamReceived)
        each("wharf_upstream_sent_bytes_total", .counter, "Bytes sent to upstream connections.",
             ListenerField.upstreamSent)
        split("wharf_accept_errors_total", "Failed accept calls, by errno.", "errno", AcceptFailure.allCases.map(\.label),
              ListenerField.acceptErrors)
        out.family("wharf_event_loop_lag_seconds", .histogram,
                   "How late an event loop ran a task due at a known time (a blocked loop shows here).")
        for key in loops.keys.sorted() {
            out.histogram("wharf_event_loop_lag_seconds", [("slot", "\(key.slot)"), ("loop", "\(key.loop)")],
                          .loopLag, loops[key]![LoopField.lag..<LoopField.lag + HistogramShape.loopLag.words])
        }
        out.family("wharf_callback_duration_seconds", .histogram,
                   "How long each run of plugin callbacks held its event loop (with the host work it started).")
        for key in loops.keys.sorted() {
            out.histogram("wharf_callback_duration_seconds", [("slot", "\(key.slot)"), ("loop", "\(key.loop)")],
                          .callbackDuration,
                          loops[key]![LoopField.callbacks..<LoopField.callbacks + HistogramShape.callbackDuration.words])
        }
        out.family("wharf_log_lines_dropped_total", .counter,
                   "Log lines dropped by workers because the log output could not keep up.")
        out.sample("wharf_log_lines_dropped_total", [], process[ProcessField.logLinesDropped])
        out.family("wharf_access_log_lines_dropped_total", .counter,
                   "Access log lines dropped by workers because the access log output could not keep up.")
        out.sample("wharf_access_log_lines_dropped_total", [], process[ProcessField.accessLogLinesDropped])
        out.family("wharf_worker_processes", .gauge, "Worker processes alive, by generation.")
        for generation in facts.workers.keys.sorted() {
            out.sample("wharf_worker_processes", [("generation", "\(generation)")], UInt64(facts.workers[generation]!))
        }
        out.family("wharf_worker_restarts_total", .counter, "Workers replaced after a failure, by cause.")
        for cause in restarts.keys.sorted() { out.sample("wharf_worker_restarts_total", [("cause", cause)], restarts[cause]!) }
        out.family("wharf_reloads_total", .counter, "Reloads, by result.")
        out.sample("wharf_reloads_total", [("result", "ok")], reloads.ok)
        out.sample("wharf_reloads_total", [("result", "failed")], reloads.failed)
        out.family("wharf_generation", .gauge, "The generation serving now (0: none yet).")
        out.sample("wharf_generation", [], UInt64(facts.generation ?? 0))
        out.family("wharf_build_info", .gauge, "The running build: its version and plugin ABI.")
        out.sample("wharf_build_info", [("version", WharfBuild.version), ("abi", WharfBuild.abi)], 1)
        writePluginMetrics(into: &out)
        return out.text
    }
}

extension MetricsSnapshot {
    /// Plugins' own metrics, one family per name, labelled with the instance.
    private func writePluginMetrics(into out: inout PrometheusText) {
        var described = Set<String>()
        for key in plugins.keys.sorted() {
            let series = plugins[key]!
            if described.insert(key.name).inserted {
                let kind: PrometheusText.Kind = switch series.kind {
                case .counter: .counter
                case .gauge: .gauge
                case .histogram: .histogram
                }
                out.family(key.name, kind, series.help)
            }
            let labels = [("instance", key.instance)] + Array(zip(series.labelNames, key.labels))
            switch series.kind {
            case .counter: out.sample(key.name, labels, series.words[0])
            case .gauge: out.sample(key.name, labels, signed: Int64(bitPattern: series.words[0]))
            case .histogram:
                var cumulative: UInt64 = 0
                for (index, bound) in series.buckets.enumerated() {
                    cumulative &+= series.words[index]
                    out.sample(key.name + "_bucket", labels + [("le", PrometheusText.format(bound))], cumulative)
                }
                cumulative &+= series.words[series.buckets.count]
                out.sample(key.name + "_bucket", labels + [("le", "+Inf")], cumulative)
                out.sample(key.name + "_sum", labels, seconds: Double(bitPattern: series.words[series.buckets.count + 1]))
                out.sample(key.name + "_count", labels, cumulative)
            }
        }
    }
}

extension MetricsLayout.ListenerLabels {
    var pairs: [(String, String)] { [("listener", listener), ("plugin", plugin)] }
}
