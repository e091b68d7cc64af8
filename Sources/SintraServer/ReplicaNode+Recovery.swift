import Logging
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import SintraStorage

/// How a `ReplicaNode` encodes its log and rebuilds its state from a store, in their own file.
extension ReplicaNode {
    // MARK: Durable encoding

    /// A logged batch: its requests, count-prefixed, each length-prefixed.
    static func encode(_ requests: [[UInt8]]) -> [UInt8] {
        var writer = ByteWriter(capacity: requests.reduce(4) { $0 + 4 + $1.count })
        writer.write(UInt32(requests.count))
        for request in requests { writer.writeVariable(request) }
        return writer.bytes
    }

    static func decodeBatch(_ bytes: [UInt8]) throws(DecodingError) -> [[UInt8]] {
        var reader = ByteReader(bytes, context: "logged batch")
        let count = Int(try reader.readUInt32())
        // Every request takes at least its 4-byte length, which bounds the count by the bytes present.
        guard count <= reader.remainingCount / 4 else {
            throw DecodingError(.tooLong(maximum: reader.remainingCount / 4, actual: count), in: "logged batch")
        }
        var requests = [[UInt8]]()
        requests.reserveCapacity(count)
        for _ in 0..<count { requests.append(try reader.readVariable(maximum: Frame.frameBytesMax)) }
        try reader.finish()
        return requests
    }

    /// The state rebuilt from a store: the snapshot's executor and chain (and, for a checkpoint snapshot,
    /// the recent delivered digests), advanced by the log after it (requests re-authenticated as at first
    /// execution: the result is the same, since verification is deterministic).
    struct Recovered {
        var execution: Execution
        var snapshotRound: UInt64 = 0
        var replayedRounds = 0
        var resumption: AtomicBroadcast.Instance.Resumption
        var recentDigests: [UInt64: [[UInt8]]] = [:]
        /// The logged batches (before and after the snapshot): the restarted instance answers catch-up
        /// requests for them.
        var recentBatches: [AtomicBroadcast.Batch] = []
        /// The checkpoint state on disk, to serve to peers.
        var servedState: (round: UInt64, state: [UInt8])?
        var certificate: StableCheckpoint?
        var reseeding: Bool
        /// The highest round this node may have sent a binding message for before it stopped.
        var sendHorizon: UInt64

        init(
            _ recovery: ReplicaStore.Recovery, configuration: GroupConfiguration, memory: UInt64, path: String
        ) throws(StoreError) {
            execution = Execution(clusterIdentifier: configuration.clusterIdentifier)
            reseeding = recovery.reseeding
            sendHorizon = recovery.sendHorizon
            var journal = [AtomicBroadcast.JournalEntry]()
            do {
                if let snapshot = recovery.snapshot {
                    switch snapshot.format {
                    case 1:
                        guard snapshot.state.count >= 32 else { throw DecodingError(.truncated, in: "snapshot") }
                        execution.chain = Array(snapshot.state[0..<32])
                        execution.executor = try RequestExecutor(snapshot: Array(snapshot.state[32...]))
                    case 2:
                        let state = try CheckpointState(encoded: snapshot.state)
                        execution.chain = state.chain
                        execution.executor = try RequestExecutor(snapshot: state.executor)
                        for entry in state.recentDigests { recentDigests[entry.round] = entry.digests }
                        servedState = (snapshot.round, snapshot.state)
                    default:
                        throw DecodingError(.invalidValue("snapshot format \(snapshot.format)"), in: "snapshot")
                    }
                    snapshotRound = snapshot.round
                }
                for entry in recovery.log {
                    let requests = try ReplicaNode.decodeBatch(entry.batch)
                    recentDigests[entry.round] = requests.map(AtomicBroadcast.digest)
                    recentBatches.append(AtomicBroadcast.Batch(round: entry.round, requests: requests))
                    guard entry.round > snapshotRound else { continue }
                    _ = execution.execute(requests)
                    replayedRounds += 1
                }
                if let stored = recovery.certificate {
                    let checkpoint = try StableCheckpoint(encoded: stored.bytes, memberCount: configuration.replicas)
                    guard checkpoint.isValid(configuration: configuration) else {
                        throw DecodingError(.invalidValue("certificate does not verify"), in: "checkpoint certificate")
                    }
                    certificate = checkpoint
                }
                let limits = WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: configuration.replicas)
                journal = try recovery.journal.map { try AtomicBroadcast.JournalEntry(encoded: $0.entry, limits: limits) }
            } catch {
                throw StoreError.corrupted(path: path, detail: "\(error)")
            }
            let last = recovery.lastRound
            if last >= memory { recentDigests = recentDigests.filter { $0.key > last - memory } }
            // With the journal the node replays what it sent and need not be silent, except where the store
            // says (a journal lost in a reboot, an installed checkpoint, a file from before the journal).
            resumption = AtomicBroadcast.Instance.Resumption(
                nextRound: last + 1, recentBatches: recentBatches, sendHorizon: recovery.silentThrough,
                recentDigests: recentDigests, journal: journal)
        }
    }
}
