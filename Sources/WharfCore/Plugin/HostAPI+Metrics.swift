import CWharf

/// metric_register and the three updates [1.4]: a plugin's own counters, gauges and
/// histograms, in the worker's metrics segment (see `PluginMetricsRegistry`).
extension HostAPI {
    static func addMetrics(to api: inout wharf_host_api) {
        api.metric_register = { instance, spec, out in
            guard let instance, let spec, let out,
                  spec.pointee.struct_size >= UInt32(MemoryLayout<wharf_metric_spec>.size) else { return WHARF_E_INVALID }
            let identity = PluginLog.identity(instance)
            guard identity.initializing else { return WHARF_E_WRONG_THREAD }
            guard let parsed = PluginMetricSpec(spec.pointee) else {
                identity.logger.error("metric_register: a name, help text or label is missing (NULL)")
                return WHARF_E_INVALID
            }
            let metric: PluginMetric
            if let registry = identity.metrics {
                do throws(PluginMetricsRegistry.Failure) {
                    metric = try registry.register(instance: identity.name, loop: identity.loopIndex, spec: parsed)
                } catch {
                    switch error {
                    case let .invalid(problem):
                        identity.logger.error("metric_register: \(problem)")
                        return WHARF_E_INVALID
                    case .full:
                        let room = MetricsLayout.pluginWords
                        identity.logger.error("metric_register: no room for '\(parsed.name)': a worker holds \(room) plugin metric values per loop")
                        return WHARF_E_NOMEM
                    }
                }
            } else {
                if let problem = parsed.problem {
                    identity.logger.error("metric_register: \(problem)")
                    return WHARF_E_INVALID
                }
                metric = PluginMetric(spec: parsed, values: nil)
            }
            identity.metricHandles.append(metric)
            out.pointee = metric.opaque
            return WHARF_OK
        }
        api.metric_add = { metric, series, value in
            guard let metric else { return }
            PluginMetric.from(metric).add(series, value)
        }
        api.metric_set = { metric, series, value in
            guard let metric else { return }
            PluginMetric.from(metric).set(series, value)
        }
        api.metric_observe = { metric, series, value in
            guard let metric else { return }
            PluginMetric.from(metric).observe(series, value)
        }
    }
}

extension PluginMetricSpec {
    /// The C spec, copied; nil if a required pointer is NULL. The rules are checked later.
    init?(_ spec: wharf_metric_spec) {
        guard let kind = Kind(rawValue: spec.type), let name = spec.name, let help = spec.help else { return nil }
        func string(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }
        let labelCount = Int(min(spec.label_count, 16))
        // Without labels there is one series, whatever series_count says.
        let seriesCount = labelCount == 0 ? 1 : Int(min(spec.series_count, 1024))
        var labelNames: [String] = []
        for index in 0..<labelCount {
            guard let names = spec.label_names, let label = string(names[index]) else { return nil }
            labelNames.append(label)
        }
        var rows: [[String]] = []
        for row in 0..<seriesCount {
            var values: [String] = []
            for column in 0..<labelCount {
                guard let table = spec.label_values, let value = string(table[row * labelCount + column]) else { return nil }
                values.append(value)
            }
            rows.append(values)
        }
        let bucketCount = Int(min(spec.bucket_count, 64))
        var buckets: [Double] = []
        if bucketCount > 0 {
            guard let bounds = spec.buckets else { return nil }
            buckets = (0..<bucketCount).map { bounds[$0] }
        }
        self.init(kind: kind, name: String(cString: name), help: String(cString: help), labelNames: labelNames,
                  series: rows, buckets: buckets)
    }
}
