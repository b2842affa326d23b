import Glibc
import Testing
@testable import WharfCore

/// The metrics segment, the supervisor's sums over live and retired workers, and the text
/// the admin endpoint writes.
@Suite struct MetricsTests {
    static let layout = MetricsLayout(listeners: [.init(listener: "web", plugin: "proxy"),
                                                  .init(listener: "db", plugin: "proxy")], loops: 2)

    @Test func aWorkerAttachesOnlyToASegmentOfItsLayout() throws {
        let segment = try #require(MetricsSegment.create(Self.layout))
        let other = MetricsLayout(listeners: [.init(listener: "web", plugin: "proxy")], loops: 2)
        #expect(MetricsSegment.attach(dup(segment.descriptor), other) == nil, "another layout is refused")
        let attached = try #require(MetricsSegment.attach(dup(segment.descriptor), Self.layout))
        let worker = WorkerMetrics(segment: attached)
        worker.listener(1, loop: 1).add(ListenerField.accepted, 3)
        #expect(segment.listenerTotals(1)[ListenerField.accepted] == 3, "the supervisor sees the worker's writes")
        #expect(segment.listenerTotals(0)[ListenerField.accepted] == 0)
    }

    @Test func byteMetersOfTheLoopAndItsPumpAddUp() throws {
        let segment = try #require(MetricsSegment.local(Self.layout))
        let worker = WorkerMetrics(segment: segment)
        let meter = ByteMeter(worker.listener(0, loop: 1), upstream: false)
        meter.received(100)
        meter.sent(40)
        meter.inPumpRegion(regionWords: worker.regionWords).received(1000)
        ByteMeter(worker.listener(0, loop: 0), upstream: true).sent(7)
        let totals = segment.listenerTotals(0)
        #expect(totals[ListenerField.received] == 1100)
        #expect(totals[ListenerField.sent] == 40)
        #expect(totals[ListenerField.upstreamSent] == 7)
        #expect(segment.listenerTotals(1)[ListenerField.received] == 0, "the pump wrote its own region, not the next listener's")
    }

    @Test func histogramsBucketByUpperBound() {
        let shape = HistogramShape.connectionDuration
        #expect(shape.bucket(micros: 0) == 0)
        #expect(shape.bucket(micros: 1000) == 0, "le=0.001 includes 1 ms")
        #expect(shape.bucket(micros: 1001) == 1)
        #expect(shape.bucket(micros: 10_000_000_000) == shape.bounds.count, "past the last bound: +Inf")
    }

    @Test func retiredWorkersKeepTheirCountsAndTheirOpenConnectionsCountAsClosed() throws {
        let collector = MetricsCollector()
        let first = try #require(MetricsSegment.local(Self.layout))
        let web = WorkerMetrics(segment: first).listener(0, loop: 0)
        web.add(ListenerField.accepted, 5)
        web.add(ListenerField.closed + CloseReason.peer.rawValue, 2)
        web.add(ListenerField.received, 500)
        collector.started(101, segment: first, generation: 1, slot: 0)
        #expect(collector.snapshot().listeners[Self.layout.listeners[0]]?.active == 3)

        collector.exited(101, failure: "signal")
        let second = try #require(MetricsSegment.local(Self.layout))
        WorkerMetrics(segment: second).listener(0, loop: 1).add(ListenerField.accepted, 1)
        collector.started(102, segment: second, generation: 1, slot: 0)
        let snapshot = collector.snapshot()
        let listener = try #require(snapshot.listeners[Self.layout.listeners[0]])
        #expect(listener[ListenerField.accepted] == 6, "retired plus live")
        #expect(listener[ListenerField.received] == 500)
        #expect(listener.closed(.workerExit) == 3, "what the dead worker held")
        #expect(listener.active == 1, "only live workers' connections are open")
        #expect(snapshot.restarts["signal"] == 1)
        #expect(collector.restartsBySlot[0] == 1)
    }

    @Test func theExpositionIsPrometheusText() throws {
        let collector = MetricsCollector()
        let segment = try #require(MetricsSegment.local(Self.layout))
        let web = WorkerMetrics(segment: segment).listener(0, loop: 0)
        web.add(ListenerField.accepted, 2)
        web.record(.connectionDuration, at: ListenerField.duration, micros: 500)
        web.record(.connectionDuration, at: ListenerField.duration, micros: 2_500_000)
        collector.started(7, segment: segment, generation: 3, slot: 0)
        collector.reloaded(ok: true)
        let text = collector.snapshot().prometheus(SupervisorFacts(generation: 3, workers: [3: 1], draining: false))
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains("# TYPE wharf_connections_accepted_total counter"))
        #expect(lines.contains(#"wharf_connections_accepted_total{listener="web",plugin="proxy"} 2"#))
        #expect(lines.contains(#"wharf_connections_active{listener="web",plugin="proxy"} 2"#))
        #expect(lines.contains(#"wharf_connection_duration_seconds_bucket{listener="web",plugin="proxy",le="0.001"} 1"#))
        #expect(lines.contains(#"wharf_connection_duration_seconds_bucket{listener="web",plugin="proxy",le="1"} 1"#))
        #expect(lines.contains(#"wharf_connection_duration_seconds_bucket{listener="web",plugin="proxy",le="10"} 2"#),
                "buckets are cumulative")
        #expect(lines.contains(#"wharf_connection_duration_seconds_bucket{listener="web",plugin="proxy",le="+Inf"} 2"#))
        #expect(lines.contains(#"wharf_connection_duration_seconds_sum{listener="web",plugin="proxy"} 2.5005"#))
        #expect(lines.contains(#"wharf_reloads_total{result="ok"} 1"#))
        #expect(lines.contains("wharf_generation 3"))
        #expect(lines.contains(#"wharf_worker_processes{generation="3"} 1"#))
        for line in lines where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: /[a-z_]+(\{[^}]*\})? [0-9.e+-]+/) != nil, "a sample line: \(line)")
        }
    }

    @Test func labelValuesAreEscaped() {
        var out = PrometheusText()
        out.sample("x", [("listener", "a\"b\\c\nd")], 1)
        #expect(out.text == "x{listener=\"a\\\"b\\\\c\\nd\"} 1\n")
    }

    @Test func closeReasonsSayWhoEndedTheConnection() {
        #expect(CloseReason(nil, peerEnded: true) == .peer)
        #expect(CloseReason(nil, peerEnded: false) == .plugin)
        #expect(CloseReason(.connectionReset, peerEnded: false) == .peer)
        #expect(CloseReason(.idleTimeout, peerEnded: false) == .idleTimeout)
        #expect(CloseReason(.shuttingDown, peerEnded: false) == .drain)
        #expect(CloseReason(.limitExceeded, peerEnded: false) == .limit)
        #expect(CloseReason(.io, peerEnded: false) == .error)
        #expect(Set(CloseReason.allCases.map(\.label)).count == CloseReason.allCases.count, "labels are distinct")
    }

    @Test func jsonIsEscapedAndOrdered() {
        let value = JSONValue.object([("b", .int(1)), ("a", .string("q\"\n\u{1}")), ("c", .array([.bool(true), .null]))])
        #expect(value.text == #"{"b":1,"a":"q\"\n\u0001","c":[true,null]}"#)
    }
}
