import Logging
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import SintraStorage

/// `ReplicaNode`'s options and statistics, in their own file.
extension ReplicaNode {
    /// Logging and the network's options.
    public struct Options: Sendable {
        public var network = ReplicaNetwork.Options()
        public var logger = Logger(label: "sintra.replica")
        public var broadcastLimits = AtomicBroadcast.Limits()
        /// Where the node keeps its durable state; nil keeps everything in memory.
        public var store: ReplicaStore?
        /// Rounds between checkpoints: at every round that is a multiple of it, the node snapshots its state
        /// (in memory, to serve state transfer; on disk every `snapshotWriteEvery`-th time) and signs the
        /// state's digest.
        ///
        /// At most the peers' catch-up memory (`broadcastLimits.catchUpRounds`, 256; the node refuses to
        /// start otherwise, `Options.Invalid`): a replica that installs the latest stable checkpoint catches
        /// up the rounds after it from the peers' memory, so the checkpoints must come at least that often (a
        /// longer interval would leave a laggard that installed one unable to catch up the rest until the
        /// next). Every snapshot is a checkpoint, so the state a certificate covers is always one a peer
        /// keeps and can serve. The same on every replica of a cluster.
        ///
        /// 256: encoding and hashing the whole state at each checkpoint is the cost (n = 4, 2,000 callers on
        /// 32 signers, 200,000 keys: checkpoints every 64 rounds, none written, cost 30 % of the throughput;
        /// BENCHMARKS.md). The deduplication memory a checkpoint carries stays 64 rounds.
        public var snapshotInterval: UInt64 = 256
        /// Every how many checkpoints the node writes one into its store as the snapshot (and prunes the log
        /// below it, keeping `broadcastLimits.catchUpRounds` to answer catch-up after a restart). Recovery
        /// replays at most `snapshotWriteEvery` × `snapshotInterval` rounds; the log keeps that many plus
        /// `catchUpRounds`. A local choice.
        ///
        /// 1 with checkpoints every 256 rounds, so that a restart replays at most 256 rounds. Writing the
        /// whole state into SQLite (through its WAL, then into the file) is the cost: with checkpoints every
        /// 64 rounds, writing each cost about a quarter of the throughput with 200,000 keys, and every fourth
        /// was the default then (BENCHMARKS.md).
        public var snapshotWriteEvery: UInt64 = 1
        /// How far (in rounds) a stable checkpoint must be ahead of the last delivered round before the node
        /// fetches its state instead of catching up round by round; nil: half the peers' catch-up memory
        /// (`broadcastLimits.catchUpRounds / 2`, 128), where catch-up starts to be at risk. A local choice
        /// (replicas may differ); lower values make a slow replica transfer more often.
        public var stateTransferLag: UInt64?
        /// How long a state-transfer request may go unanswered before the node asks another peer.
        public var stateTransferTimeout: Duration = .seconds(10)
        /// How long the node may deliver nothing, with a stable checkpoint ahead of it, before it fetches
        /// that checkpoint's state however close it is (`ReplicaNode.watchCatchUp`): the peers forgot the
        /// rounds it needs. A local choice; too short only makes a slow replica transfer more often.
        public var catchUpPatience: Duration = .seconds(5)
        /// Bounds of the fast path's timer (`AtomicBroadcast.Message.timeout`): it fires four smoothed round
        /// times after a round starts, within these bounds. A timer only changes speed: too short makes
        /// rounds fall back to agreement, too long makes a crashed leader's first round wait.
        public var fastPathTimeoutMin: Duration = .milliseconds(150)
        public var fastPathTimeoutMax: Duration = .seconds(2)
        /// The largest checkpoint state the node accepts by state transfer (a Byzantine peer cannot make it
        /// hold more).
        public var stateBytesMax = 512 << 20
        /// A replica started with `--reseed` on a new store: it forgot what it sent before, so it sends nothing
        /// until it installed a checkpoint from its peers (also read from the store, `ReplicaStore.reseeding`).
        public var reseeding = false
        /// Fault injection for tests of state transfer: this node answers state requests with a forged
        /// state and certificate requests with a forged certificate (a Byzantine server).
        var forgesServedStates = false

        public init() {}

        /// Options a node refuses to start with.
        public enum Invalid: Error, Equatable, CustomStringConvertible {
            /// Checkpoints further apart than the catch-up memory: a laggard that installed one could not
            /// catch up the rounds after it.
            case snapshotIntervalOverCatchUpMemory(interval: UInt64, catchUpRounds: UInt64)

            public var description: String {
                switch self {
                case .snapshotIntervalOverCatchUpMemory(let interval, let rounds):
                    "checkpoints every \(interval) rounds exceed the catch-up memory of \(rounds) rounds; "
                        + "lower the snapshot interval or raise the catch-up memory"
                }
            }
        }
    }

    /// Counters for logs and tests.
    public struct Statistics: Sendable, Equatable {
        /// Frames with another instance path, or a body that does not decode.
        public var malformedFrames = 0
        /// Faults the protocol reported about peers.
        public var faults = 0
        /// The same, by `Fault.Kind` raw value.
        public var faultsByKind: [String: Int] = [:]
        /// Ordered requests that did not decode as `ClientRequest` (skipped).
        public var malformedRequests = 0
        /// Ordered requests with an invalid public key or signature (skipped).
        public var unauthenticRequests = 0
        /// Client requests refused at submission, by reason.
        public var refusedRequests: [ClientRequestError: Int] = [:]
        /// Requests that came after this replica executed them and were answered with the cached reply
        /// (`submission(of:verified:)`), and requests refused as stale (their client had executed a later one).
        public var cachedReplies = 0
        public var staleRequests = 0
        /// Signature verifications at execution (requests not verified at submission).
        public var executionVerifications = 0
        /// Ordered requests not verified here at all because t + 1 replicas queued them
        /// (`AtomicBroadcast.Batch.attested`).
        public var attestedRequests = 0
        /// Client requests verified at submission, and the batches they were verified in.
        public var submissionVerifications = 0
        public var submissionBatches = 0
        /// Client requests held unverified at submission because this replica is not a first proposer of
        /// them (`DeferredRequests`), and those of them it had to check and queue itself (overdue).
        public var deferredRequests = 0
        public var overdueRequests = 0
        /// Batches delivered.
        public var batches = 0
        /// Rounds this replica delivered from the leader's fast path, and from agreement (the fast path
        /// stopped: a slow or faulty leader, or a timer that fired early).
        public var fastPathRounds = 0
        public var agreementRounds = 0
        /// Fast-path timers that fired in a round still undecided (each stops this replica's fast path).
        public var fastPathTimeouts = 0
        /// Requests in the delivered batches (before deduplication by the executor): requests per batch is
        /// this over `batches`.
        public var deliveredRequests = 0
        /// Frames the network refused because a peer's send queue was full.
        public var refusedSends = 0
        /// Rounds restored from the store at start (replayed after its snapshot).
        public var replayedRounds = 0
        /// Protocol journal entries replayed at start, and written since (stage 2).
        public var replayedJournalEntries = 0
        public var journalEntries = 0
        /// Snapshots written (= checkpoints this node signed).
        public var snapshots = 0
        /// The round of the latest stable checkpoint this node knows (0 if none).
        public var stableCheckpointRound: UInt64 = 0
        /// Stable checkpoints this node learnt (formed from votes or received as certificates).
        public var stableCheckpoints = 0
        /// Checkpoints installed by state transfer.
        public var stateTransfers = 0
        /// Times catch-up made no progress for `catchUpPatience` below a stable checkpoint, so the node
        /// fetched the state at once.
        public var stalledCatchUps = 0
        /// State-transfer answers rejected (a chunk out of order or over the bounds, a state whose digest is
        /// not the certified one).
        public var rejectedStateAnswers = 0
        /// State-transfer requests that timed out (the node asked another peer).
        public var stateTransferTimeouts = 0
        /// State-chunk requests not served because the peer asked faster than `ServeBudget` allows.
        public var throttledStateRequests = 0
        /// Peers seen with a new incarnation (they restarted): their catch-up budget starts again.
        public var peerRestarts = 0
        /// 1 once the node found its state differs from a certified checkpoint (it stopped).
        public var divergences = 0
        public init() {}
    }
}
