import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus
import SintraReplica

/// A replica's metrics through swift-metrics, backed by a Prometheus collector registry
/// (swift-prometheus) that `MetricsEndpoint` serves as text.
///
/// The node and the listeners keep plain counters (`ReplicaNode.Statistics`, `NetworkStatistics`,
/// `ClientListener.Statistics`), so the hot path pays nothing for metrics; `refresh` copies them into the
/// swift-metrics handlers, counters by their increase since the last refresh, before each scrape.
///
/// Metric names (all prefixed `sintra_`): `round`, `batches_delivered_total`, `requests_executed_total`,
/// `requests_refused_total{reason}`, `requests_skipped_total{reason}`, `faults_total{kind}`,
/// `malformed_frames_total`, `network_events_total{event}`, `send_queue_depth{peer}`,
/// `client_connections`, `client_requests_total`, `client_malformed_records_total`,
/// `client_refusals_total{reason}` (refusals sent to clients, by `RefusalReason.label`),
/// `client_cached_replies_total` (requests answered from the executor's cache: they came after execution),
/// `client_routed_clients`, `client_overload_closes_total` (connections refused or closed for flooding
/// past the listener's limits; requests over them are refused `overloaded`),
/// `checkpoint_stable_round`, `state_transfers_total`, `state_transfer_rejected_total`,
/// `catch_up_stalls_total` (catch-up made no progress below a stable checkpoint, so the replica fetched the
/// state at once), `diverged` (1 once
/// the replica stopped because its state differs from a certified checkpoint).
public final class ReplicaMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let node: ReplicaNode
    private let listener: ClientListener?
    private let state = NIOLockedValueBox(Totals())

    /// The totals already counted, and the counters made so far, by name and labels.
    private struct Totals: Sendable {
        var counted: [String: Int] = [:]
        var counters: [String: CoreMetrics.Counter] = [:]
        var gauges: [String: CoreMetrics.Gauge] = [:]
    }

    /// Metrics of `node` and, if given, its client `listener`, in a registry of their own.
    public init(node: ReplicaNode, listener: ClientListener? = nil, registry: PrometheusCollectorRegistry = .init()) {
        self.node = node
        self.listener = listener
        self.registry = registry
        self.factory = PrometheusMetricsFactory(registry: registry)
    }

    /// Copies the current counters into the metrics.
    public func refresh() async {
        let statistics = await node.statistics
        let round = await node.round
        let executed = await node.executedCount
        let network = node.network.statistics
        let peers = node.configuration.members.filter { $0 != node.member }
        let depths = peers.map { ($0, node.network.queuedFrames(to: $0)) }
        let clients = listener?.statistics

        state.withLockedValue { totals in
            gauge("sintra_round", [], &totals).record(Int64(clamping: round))
            count("sintra_batches_delivered_total", [], statistics.batches, &totals)
            count("sintra_rounds_total", [("path", "fast")], statistics.fastPathRounds, &totals)
            count("sintra_rounds_total", [("path", "agreement")], statistics.agreementRounds, &totals)
            count("sintra_requests_executed_total", [], Int(clamping: executed), &totals)
            count("sintra_malformed_frames_total", [], statistics.malformedFrames, &totals)
            count("sintra_send_refused_total", [], statistics.refusedSends, &totals)
            gauge("sintra_checkpoint_stable_round", [], &totals).record(Int64(clamping: statistics.stableCheckpointRound))
            count("sintra_state_transfers_total", [], statistics.stateTransfers, &totals)
            count("sintra_state_transfer_rejected_total", [], statistics.rejectedStateAnswers, &totals)
            count("sintra_catch_up_stalls_total", [], statistics.stalledCatchUps, &totals)
            gauge("sintra_diverged", [], &totals).record(Int64(statistics.divergences))
            for error in [ClientRequestError.malformed, .invalidPublicKey, .invalidSignature] {
                let number = statistics.refusedRequests[error, default: 0]
                count("sintra_requests_refused_total", [("reason", error.reason)], number, &totals)
            }
            count("sintra_requests_skipped_total", [("reason", "malformed")], statistics.malformedRequests, &totals)
            count("sintra_requests_skipped_total", [("reason", "unauthentic")], statistics.unauthenticRequests, &totals)
            for (kind, number) in statistics.faultsByKind {
                count("sintra_faults_total", [("kind", kind)], number, &totals)
            }
            let events: [(String, Int)] = [
                ("refused_handshake", network.refusedHandshakes), ("malformed_record", network.malformedRecords),
                ("protocol_violation", network.protocolViolations), ("connection_error", network.connectionErrors),
                ("handshake_timeout", network.handshakeTimeouts), ("refused_connection", network.refusedConnections),
                ("link_established", network.linksEstablished), ("frame_resent", network.framesResent),
                ("inbound_overflow", network.inboundOverflows),
            ]
            for (event, number) in events {
                count("sintra_network_events_total", [("event", event)], number, &totals)
            }
            for (peer, depth) in depths {
                gauge("sintra_send_queue_depth", [("peer", "\(peer)")], &totals).record(Int64(depth))
            }
            if let clients {
                gauge("sintra_client_connections", [], &totals).record(Int64(clients.openConnections))
                count("sintra_client_requests_total", [], clients.requests, &totals)
                count("sintra_client_malformed_records_total", [], clients.malformedRecords, &totals)
                count("sintra_client_cached_replies_total", [], clients.cachedReplies, &totals)
                gauge("sintra_client_routed_clients", [], &totals).record(Int64(clients.routedClients))
                count("sintra_client_overload_closes_total", [], clients.overloaded, &totals)
                for reason in RefusalReason.allCases {
                    let number = clients.refusedByReason[reason, default: 0]
                    count("sintra_client_refusals_total", [("reason", reason.label)], number, &totals)
                }
            }
        }
    }

    /// The Prometheus text exposition of every metric, after a refresh.
    public func render() async -> [UInt8] {
        await refresh()
        var buffer = [UInt8]()
        registry.emit(into: &buffer)
        return buffer
    }

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        ([name] + labels.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    /// Raises the counter `name` with `labels` to `total`.
    private func count(_ name: String, _ labels: [(String, String)], _ total: Int, _ totals: inout Totals) {
        let key = Self.key(name, labels)
        let counter =
            totals.counters[key]
            ?? {
                let made = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
                totals.counters[key] = made
                return made
            }()
        let increase = total - totals.counted[key, default: 0]
        if increase > 0 {
            counter.increment(by: increase)
            totals.counted[key] = total
        }
    }

    private func gauge(_ name: String, _ labels: [(String, String)], _ totals: inout Totals) -> CoreMetrics.Gauge {
        let key = Self.key(name, labels)
        if let gauge = totals.gauges[key] { return gauge }
        let made = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
        totals.gauges[key] = made
        return made
    }
}
