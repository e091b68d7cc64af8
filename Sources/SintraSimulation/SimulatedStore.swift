import SintraCore

/// What a simulated replica has on disk, kept exactly as `ReplicaNode` keeps it in its `ReplicaStore`
/// (docs/DURABILITY.md): the delivered batches, the send horizon, and one snapshot. A crash in the
/// simulator loses everything of a node but this; its restart reads nothing else.
///
/// The rules are `ReplicaNode.persist` and `ReplicaNode.snapshotIfDue` with the database replaced by
/// memory (a crash in the simulator happens between two calls of the node or between a call's commit and
/// its sends, never inside a commit, which SQLite makes atomic):
/// - `commit(_:)` is called with the effects of every call into the atomic broadcast instance (`handle`,
///   `submit`, `start`) before any of its messages is sent: it appends the delivered batches and raises
///   the send horizon to the highest round of a binding message among them
///   (`AtomicBroadcast.bindingRound(of:)`), as one group commit;
/// - `snapshotIfDue(after:interval:state:)` after the call's batches are executed: every `interval`
///   rounds, replaces the snapshot and deletes the log at or below `round − deliveredMemoryRounds`;
/// - `resumption` is what `ReplicaNode`'s `Recovered` hands the restarted instance.
public struct SimulatedStore: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public let round: UInt64
        public let state: [UInt8]
    }

    /// Delivered batches, consecutive rounds, oldest first.
    public private(set) var log: [AtomicBroadcast.Batch] = []
    /// The highest round of a binding message this node may have sent.
    public private(set) var sendHorizon: UInt64 = 0
    public private(set) var snapshot: Snapshot?
    /// Commits that wrote something (group commits), for the report.
    public private(set) var commitCount = 0
    /// Rounds kept below a snapshot (the protocol's deduplication memory).
    let keepRounds: UInt64

    public init(keepRounds: UInt64) {
        self.keepRounds = keepRounds
    }

    /// The last round on disk (`ReplicaStore.Recovery.lastRound`).
    public var lastRound: UInt64 { log.last?.round ?? snapshot?.round ?? 0 }

    /// Persists one call's effects before they take effect (`ReplicaNode.persist`).
    public mutating func commit(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>) {
        let horizon = effects.messages.compactMap { AtomicBroadcast.bindingRound(of: $0.message) }.max() ?? 0
        guard !effects.outputs.isEmpty || horizon > sendHorizon else { return }
        for batch in effects.outputs {
            // The store refuses a gap or a repeat (`StoreError.outOfOrder`); an instance that produced one
            // is a bug the simulation must surface, not paper over.
            precondition(batch.round == lastRound + 1, "delivered round \(batch.round) after \(lastRound)")
            log.append(batch)
        }
        sendHorizon = max(sendHorizon, horizon)
        commitCount += 1
    }

    /// `commit(effects)`, returning `effects` for the caller to act on.
    public mutating func committing(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>)
        -> Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>
    {
        commit(effects)
        return effects
    }

    /// Takes a snapshot of `state()` if `round` is `interval` rounds past the last one
    /// (`ReplicaNode.snapshotIfDue`), and prunes the log below it.
    public mutating func snapshotIfDue(after round: UInt64, interval: UInt64, state: () -> [UInt8]) {
        guard round >= (snapshot?.round ?? 0) + interval else { return }
        snapshot = Snapshot(round: round, state: state())
        if round > keepRounds {
            log.removeAll { $0.round <= round - keepRounds }
        }
    }

    /// The batches after the snapshot, to replay into the restored state.
    public var logAfterSnapshot: [AtomicBroadcast.Batch] {
        log.filter { $0.round > (snapshot?.round ?? 0) }
    }

    /// Where the restarted instance resumes (`ReplicaNode.Recovered`).
    public var resumption: AtomicBroadcast.Instance.Resumption {
        AtomicBroadcast.Instance.Resumption(nextRound: lastRound + 1, recentBatches: log, sendHorizon: sendHorizon)
    }

    /// Whether `request` is in a batch still on disk.
    public func contains(_ request: [UInt8]) -> Bool {
        log.contains { $0.requests.contains(request) }
    }
}
