import SintraCore

/// What a simulated replica has on disk, kept exactly as `ReplicaNode` keeps it in its `ReplicaStore`
/// (docs/DURABILITY.md): the delivered batches, the send horizon, one snapshot, and (stage 2) the seed of
/// the node's protocol generator and the atomic broadcast journal. A crash in the simulator loses
/// everything of a node but this; its restart reads nothing else.
///
/// The rules are `ReplicaNode.persist` and `ReplicaNode.snapshotIfDue` with the database replaced by
/// memory (a crash in the simulator happens between two calls of the node or between a call's commit and
/// its sends, never inside a commit, which SQLite makes atomic):
/// - `commit(_:journal:)` is called with the effects of every call into the atomic broadcast instance
///   (`handle`, `submit`, `start`) and the journal entries that call recorded (`takeJournal()`) before any
///   of its messages is sent: it appends the delivered batches and the entries, raises the send horizon to
///   the highest round of a binding message among the messages (`AtomicBroadcast.bindingRound(of:)`), and
///   drops the entries of rounds the instance no longer rebuilds, as one group commit;
/// - `snapshotIfDue(after:interval:state:)` after the call's batches are executed: every `interval`
///   rounds, replaces the snapshot and deletes the log at or below `round − catchUpRounds`;
/// - `resumption` is what `ReplicaNode`'s `Recovered` hands the restarted instance: with `journaling`, the
///   journal and no silent rounds (stage 2: the instance rebuilds what it sent and sends it again); without,
///   the send horizon (stage 1: silent up to it), kept so that the two can be compared.
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
    /// Whether the node journals its atomic broadcast inputs and resumes from them (stage 2).
    public let journaling: Bool
    /// The journal entries of the rounds a resumed instance still rebuilds, in the order they were recorded.
    public private(set) var journal: [AtomicBroadcast.JournalEntry] = []
    /// The most entries the journal held after a commit, for the report and the bound.
    public private(set) var journalCountMax = 0
    /// `AtomicBroadcast.Limits.futureRoundWindow`: an instance resuming at round r rebuilds the agreements
    /// of the rounds from r − window − 1 on (`Instance.replay`), so older entries are dropped.
    let futureRoundWindow: UInt64
    /// The generator the node's instance was made with, stored once (a real replica stores its seed): a
    /// replay must derive the same per-round generators (`ProtocolRandom.derive`) to send the same bytes.
    public let random: ProtocolRandom

    public init(
        keepRounds: UInt64, journaling: Bool = false, futureRoundWindow: UInt64 = AtomicBroadcast.Limits().futureRoundWindow,
        random: ProtocolRandom = .seeded(0)
    ) {
        self.keepRounds = keepRounds
        self.journaling = journaling
        self.futureRoundWindow = futureRoundWindow
        self.random = random
    }

    /// The last round on disk (`ReplicaStore.Recovery.lastRound`).
    public var lastRound: UInt64 { log.last?.round ?? snapshot?.round ?? 0 }

    /// Persists one call's effects and journal entries before they take effect (`ReplicaNode.persist`).
    public mutating func commit(
        _ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>, journal entries: [AtomicBroadcast.JournalEntry] = []
    ) {
        let horizon = effects.messages.compactMap { AtomicBroadcast.bindingRound(of: $0.message) }.max() ?? 0
        let entries = journaling ? entries : []
        guard !effects.outputs.isEmpty || horizon > sendHorizon || !entries.isEmpty else { return }
        for batch in effects.outputs {
            // The store refuses a gap or a repeat (`StoreError.outOfOrder`); an instance that produced one
            // is a bug the simulation must surface, not paper over.
            precondition(batch.round == lastRound + 1, "delivered round \(batch.round) after \(lastRound)")
            log.append(batch)
        }
        sendHorizon = max(sendHorizon, horizon)
        journal += entries
        // Rounds below lastRound + 1 − window − 1 are no longer rebuilt at a restart.
        let oldest = lastRound + 1 > futureRoundWindow + 1 ? lastRound + 1 - futureRoundWindow - 1 : 0
        journal.removeAll { $0.round < oldest }
        journalCountMax = max(journalCountMax, journal.count)
        commitCount += 1
    }

    /// `commit(effects, journal:)`, returning `effects` for the caller to act on.
    public mutating func committing(
        _ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>, journal entries: [AtomicBroadcast.JournalEntry] = []
    ) -> Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch> {
        commit(effects, journal: entries)
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
        journaling
            ? AtomicBroadcast.Instance.Resumption(nextRound: lastRound + 1, recentBatches: log, sendHorizon: 0, journal: journal)
            : AtomicBroadcast.Instance.Resumption(nextRound: lastRound + 1, recentBatches: log, sendHorizon: sendHorizon)
    }

    /// Whether `request` is in a batch still on disk.
    public func contains(_ request: [UInt8]) -> Bool {
        log.contains { $0.requests.contains(request) }
    }
}
