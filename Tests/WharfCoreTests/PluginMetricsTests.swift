import CWharf
import Testing
@testable import WharfCore

/// Plugin metrics (ABI 1.4): the spec's rules, the registry and the supervisor's reading
/// through shared memory, sums over loops, retired workers, and the exposition.
@Suite struct PluginMetricsTests {
    static let layout = MetricsLayout(listeners: [.init(listener: "web", plugin: "proxy")], loops: 2)

    static func spec(_ kind: PluginMetricSpec.Kind = .counter, name: String = "proxy_connects_total",
                     labels: [String] = ["upstream"], series: [[String]] = [["a:1"], ["b:2"]],
                     buckets: [Double] = []) -> PluginMetricSpec {
        PluginMetricSpec(kind: kind, name: name, help: "Connects.", labelNames: labels, series: series, buckets: buckets)
    }

    @Test func specsFollowTheHeadersRules() {
        #expect(Self.spec().problem == nil)
        #expect(Self.spec(name: "wharf_mine_total").problem?.contains("the host's") == true)
        #expect(Self.spec(name: "9lives").problem != nil)
        #expect(Self.spec(labels: ["instance"]).problem != nil, "instance is the host's label")
        #expect(Self.spec(series: [["a\nb"], ["c"]]).problem != nil, "label values are one printable line")
        #expect(Self.spec(.histogram, buckets: [1, 0.5]).problem?.contains("increasing") == true)
        #expect(Self.spec(.histogram, buckets: [0.1, 1]).problem == nil)
        #expect(Self.spec(.gauge, buckets: [1]).problem != nil, "only histograms have buckets")
    }

    @Test func valuesWrittenPerLoopAreReadSummedWithTheirDescription() throws {
        let segment = try #require(MetricsSegment.local(Self.layout))
        let registry = PluginMetricsRegistry(segment: segment)
        let loop0 = try registry.register(instance: "front", loop: 0, spec: Self.spec())
        let loop1 = try registry.register(instance: "front", loop: 1, spec: Self.spec())
        let gauge = try registry.register(instance: "front", loop: 0, spec: Self.spec(.gauge, name: "proxy_active"))
        let histogram = try registry.register(instance: "front", loop: 1,
                                              spec: Self.spec(.histogram, name: "proxy_wait_seconds", buckets: [0.1, 1]))
        loop0.add(1, 3)
        loop1.add(1, 4)
        loop1.add(0, -5) // a counter never goes down: ignored
        loop0.add(7, 1) // no such series: ignored
        gauge.add(0, 2)
        gauge.add(0, -3)
        histogram.observe(0, 0.05)
        histogram.observe(0, 5)
        let read = Dictionary(uniqueKeysWithValues: segment.pluginMetrics().map { ($0.spec.name, $0) })
        #expect(read.count == 3, "one description per name, whichever loops registered it")
        #expect(read["proxy_connects_total"]?.series == [[0], [7]])
        #expect(read["proxy_connects_total"]?.spec == Self.spec())
        #expect(Int64(bitPattern: read["proxy_active"]!.series[0][0]) == -1)
        let words = try #require(read["proxy_wait_seconds"]?.series[0])
        #expect(Array(words.prefix(3)) == [1, 0, 1], "0.05 in le=0.1, 5 past the last bound")
        #expect(Double(bitPattern: words[3]) == 5.05)
        #expect(throws: PluginMetricsRegistry.Failure.self, "the same name must keep its shape") {
            try registry.register(instance: "front", loop: 1, spec: Self.spec(series: [["a:1"]]))
        }
    }

    @Test func theRoomIsBounded() throws {
        let segment = try #require(MetricsSegment.local(Self.layout))
        let registry = PluginMetricsRegistry(segment: segment)
        let rows = (0..<256).map { ["u\($0)"] }
        var registered = 0
        #expect(throws: PluginMetricsRegistry.Failure.self) {
            for index in 0..<100 {
                _ = try registry.register(instance: "big", loop: 0, spec: Self.spec(name: "m\(index)_total", series: rows))
                registered += 1
            }
        }
        #expect(registered == MetricsLayout.pluginWords / 256)
    }

    @Test func countersOfGoneWorkersStayAndGaugesGo() throws {
        let collector = MetricsCollector()
        let segment = try #require(MetricsSegment.local(Self.layout))
        let registry = PluginMetricsRegistry(segment: segment)
        try registry.register(instance: "front", loop: 0, spec: Self.spec()).add(0, 10)
        try registry.register(instance: "front", loop: 0, spec: Self.spec(.gauge, name: "proxy_active")).set(0, 4)
        collector.started(9, segment: segment, generation: 1, slot: 0)
        collector.exited(9, failure: nil)
        let snapshot = collector.snapshot()
        let connects = PluginSeriesKey(name: "proxy_connects_total", instance: "front", labels: ["a:1"])
        #expect(snapshot.plugins[connects]?.words == [10])
        #expect(snapshot.plugins[PluginSeriesKey(name: "proxy_active", instance: "front", labels: ["a:1"])] == nil)
        let text = snapshot.prometheus(SupervisorFacts(generation: 1, workers: [:], draining: false))
        #expect(text.contains("# TYPE proxy_connects_total counter\n"))
        #expect(text.contains("proxy_connects_total{instance=\"front\",upstream=\"a:1\"} 10\n"))
    }

    @Test func olderPluginsGetTheCodesTheyKnow() {
        #expect(StatusCode.of(.writeBufferFull, abiMinor: 4) == WHARF_E_WRITE_FULL)
        #expect(StatusCode.of(.writeBufferFull, abiMinor: 3) == WHARF_E_BUFFER_FULL)
    }
}
