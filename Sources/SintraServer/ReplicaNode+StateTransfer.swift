import Logging
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import SintraStorage

/// State transfer (docs/DURABILITY.md, "State transfer"): a replica that learns of a stable checkpoint well
/// past its own round fetches that checkpoint's state from a peer in chunks, checks it against the
/// certified digest, installs it and resumes atomic broadcast after it; and it serves its own checkpoint
/// states to peers (within `ServeBudget`). A part of `ReplicaNode`, in its own file.
extension ReplicaNode {
    // MARK: State transfer

    /// A state transfer in progress: the checkpoint it installs, the peers to ask in turn, and the bytes
    /// received so far from the current one.
    struct StateTransfer {
        let target: StableCheckpoint
        let peers: [Int]
        var attempt = 0
        var received: [UInt8] = []
        var totalBytes: UInt64?
        var request: UInt64 = 0

        var peer: Int { peers[attempt % peers.count] }
    }

    /// Starts (or retargets) a state transfer if the latest stable checkpoint is so far ahead that catching
    /// up round by round may be impossible: the peers remember decided vectors of their last
    /// `catchUpRounds` rounds only, so a checkpoint half that far ahead (`stateTransferLag`) is the
    /// point where fetching the state is the sure way. A reseeding node transfers from any checkpoint ahead
    /// of it.
    ///
    /// A stable checkpoint ahead but within the lag is left to catch-up, and watched (`watchCatchUp`): if
    /// this node delivers nothing for `catchUpPatience`, `stalled` transfers from it at once.
    func considerTransfer(stalled: Bool = false) {
        guard !isStopped, let stable = votes.stable else { return }
        let delivered = instance.round - 1
        if reseeding, stable.round <= delivered {
            // Caught up past the checkpoint by catch-up alone: it can rejoin from here.
            rejoinAfterReseed(checkpointRound: stable.round)
            return
        }
        let lag = reseeding || stalled ? 1 : stateTransferLag
        guard stable.round >= delivered + lag else {
            if stable.round > delivered { watchCatchUp(from: delivered) }
            return
        }
        if let transfer, transfer.target.round >= stable.round { return }
        // The signers computed this state, so they hold it; then the others.
        let signers = stable.certificate.signers.filter { $0 != member }
        let others = configuration.members.filter { $0 != member && !signers.contains($0) }
        transfer = StateTransfer(target: stable, peers: signers + others)
        logger.notice(
            "state transfer started",
            metadata: ["checkpoint": "\(stable.round)", "delivered": "\(delivered)", "peer": "\(transfer!.peer)"])
        requestChunk()
    }

    /// Checks after `catchUpPatience` whether this node delivered anything since round `delivered`, with a
    /// stable checkpoint still ahead of it. If not, the peers no longer hold the rounds it needs (it was
    /// down for longer than their catch-up memory, or they forgot rounds early under its byte budget,
    /// `AtomicBroadcast.Limits.catchUpMemoryBytesMax`), so it fetches the checkpoint's state now instead
    /// of waiting for the next checkpoint, up to `snapshotInterval` rounds of cluster progress later. A
    /// transfer that was not needed costs bandwidth only. One watch at a time.
    func watchCatchUp(from delivered: UInt64) {
        guard catchUpWatch == nil, !shuttingDown else { return }
        let patience = catchUpPatience
        catchUpWatch = Task { [weak self] in
            try? await Task.sleep(for: patience)
            await self?.checkCatchUp(from: delivered)
        }
    }

    func checkCatchUp(from delivered: UInt64) {
        catchUpWatch = nil
        guard !shuttingDown, !isStopped, transfer == nil, let stable = votes.stable else { return }
        if instance.round - 1 == delivered, stable.round > delivered {
            statistics.stalledCatchUps += 1
            logger.notice(
                "catch-up stalled below a stable checkpoint",
                metadata: ["checkpoint": "\(stable.round)", "delivered": "\(delivered)"])
            considerTransfer(stalled: true)
        } else {
            considerTransfer()
        }
    }

    func requestChunk() {
        guard var transfer else { return }
        transferRequests += 1
        transfer.request = transferRequests
        self.transfer = transfer
        sendCheckpoint(
            .stateRequest(round: transfer.target.round, offset: UInt64(transfer.received.count)), to: transfer.peer)
        let request = transferRequests
        let timeout = stateTransferTimeout
        Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.transferTimedOut(request)
        }
    }

    func transferTimedOut(_ request: UInt64) {
        guard let transfer, transfer.request == request, !isStopped else { return }
        statistics.stateTransferTimeouts += 1
        logger.notice("state transfer request timed out", metadata: ["peer": "\(transfer.peer)"])
        nextPeer()
    }

    /// Starts over with the next peer (the bytes of the previous one are dropped, so a bad state is always
    /// blamed on the one peer that sent all of it).
    func nextPeer() {
        guard var transfer else { return }
        transfer.attempt += 1
        transfer.received = []
        transfer.totalBytes = nil
        self.transfer = transfer
        requestChunk()
    }

    func rejectAnswer(from peer: Int, _ reason: String) {
        statistics.rejectedStateAnswers += 1
        recordFault(.invalidProof, "state transfer answer from \(peer): \(reason)")
        nextPeer()
    }

    func serveState(round: UInt64, offset: UInt64, to peer: Int) {
        guard let state = servedStates[round] else {
            // Moved on (or never had it): the newer certificate lets the peer retarget.
            if let stable = votes.stable, stable.round > round { sendCheckpoint(.certificate(stable), to: peer) }
            return
        }
        guard offset < UInt64(state.count) else { return }
        guard serveBudget.take(peer: peer, now: .now) else {
            statistics.throttledStateRequests += 1
            return
        }
        let start = Int(offset)
        let end = min(state.count, start + Checkpoint.chunkBytes)
        if forgesServedStates {
            var forged = state
            forged[forged.count / 2] ^= 0x5a
            sendCheckpoint(
                .stateChunk(round: round, offset: offset, totalBytes: UInt64(forged.count), bytes: Array(forged[start..<end])),
                to: peer)
            return
        }
        sendCheckpoint(
            .stateChunk(round: round, offset: offset, totalBytes: UInt64(state.count), bytes: Array(state[start..<end])),
            to: peer)
    }

    func receiveChunk(round: UInt64, offset: UInt64, totalBytes: UInt64, bytes: [UInt8], from peer: Int) {
        // Answers to an older transfer, or from a peer not asked now, are ignored: not a fault (they may be late).
        guard var transfer, transfer.target.round == round, transfer.peer == peer else { return }
        guard offset == UInt64(transfer.received.count), totalBytes > 0, totalBytes <= UInt64(stateBytesMax),
            transfer.totalBytes.map({ $0 == totalBytes }) ?? true, !bytes.isEmpty,
            offset + UInt64(bytes.count) <= totalBytes
        else {
            rejectAnswer(from: peer, "chunk out of order or over its bounds")
            return
        }
        transfer.totalBytes = totalBytes
        transfer.received += bytes
        self.transfer = transfer
        guard UInt64(transfer.received.count) == totalBytes else {
            requestChunk()
            return
        }
        let digest = Checkpoint.digest(
            clusterIdentifier: configuration.clusterIdentifier, round: round, state: transfer.received)
        guard digest == transfer.target.digest else {
            rejectAnswer(from: peer, "state of round \(round) does not match the certified digest")
            return
        }
        install(transfer.target, state: transfer.received, from: peer)
    }

    /// Installs a verified checkpoint state: executor, chain, recent digests, on disk with the certificate
    /// (one transaction), then a new atomic broadcast instance at the next round. The new instance is
    /// silent in that round, so it asks for it by catch-up at once and goes on round by round while the
    /// peers are ahead (it sent nothing in those rounds before, so taking part later is safe).
    func install(_ checkpoint: StableCheckpoint, state: [UInt8], from peer: Int) {
        transfer = nil
        // Rounds the current instance delivered in this batch of frames go to disk first: the log must not
        // continue after the checkpoint with rounds below it.
        flush()
        guard !isStopped else { return }
        let round = checkpoint.round
        guard round > instance.round - 1 else { return }  // Overtaken by catch-up meanwhile.
        let decoded: CheckpointState
        let executor: RequestExecutor<KeyValueStore>
        do {
            decoded = try CheckpointState(encoded: state)
            executor = try RequestExecutor(snapshot: decoded.executor)
        } catch {
            // n − t replicas, t + 1 of them honest, signed this state: not decoding it is a bug here.
            logger.error("a certified checkpoint state does not decode", metadata: ["error": "\(error)"])
            return
        }
        // A reseeded replica forgot how far it got before: see `rejoinAfterReseed`.
        let horizon = reseeding ? reseedHorizon(after: round) : max(sentHorizon, round + 1)
        if let store {
            do {
                try store.installCheckpoint(
                    ReplicaStore.Snapshot(round: round, state: state, format: 2),
                    certificate: ReplicaStore.Certificate(round: round, bytes: checkpoint.encoded), sendHorizon: horizon)
            } catch {
                storageFailure = error
                logger.critical("replica store failed; this replica stops", metadata: ["error": "\(error)"])
                return
            }
        }
        execution.executor = executor
        execution.chain = decoded.chain
        recentDigests = Dictionary(uniqueKeysWithValues: decoded.recentDigests.map { ($0.round, $0.digests) })
        snapshotRound = round
        // A checkpoint of this replica's own waiting for its turn to be written is older: the installed one
        // replaces it in the store.
        if let pending = unsavedSnapshot, pending.round <= round { unsavedSnapshot = nil }
        servedStates[round] = state
        ownDigests[round] = checkpoint.digest
        statistics.stateTransfers += 1
        reseeding = false
        logger.notice(
            "installed checkpoint by state transfer",
            metadata: ["checkpoint": "\(round)", "peer": "\(peer)", "bytes": "\(state.count)", "silentThrough": "\(horizon)"])
        resumeInstance(nextRound: round + 1, silentThrough: horizon)
    }

    /// The horizon up to which a reseeded replica stays silent after the checkpoint of `round`. Before its
    /// store was lost it was in some round p and may have sent binding messages up to p + `futureRoundWindow`.
    /// p − 1 was decided, so every honest replica reaches it; the checkpoint below p − 1 becomes stable, and
    /// the latest stable checkpoint a peer has is at most one interval behind that in practice, so
    /// p ≤ round + 2 · interval + 1. Silence is always safe; it only costs this replica its vote meanwhile.
    func reseedHorizon(after round: UInt64) -> UInt64 {
        round + 2 * snapshotInterval + instance.limits.futureRoundWindow + 1
    }

    /// A reseeding replica that caught up past a stable checkpoint by catch-up alone (a young cluster, whose
    /// peers still remember every round): it resumes where it is, silent up to `reseedHorizon`.
    func rejoinAfterReseed(checkpointRound: UInt64) {
        flush()
        guard !isStopped else { return }
        let horizon = max(reseedHorizon(after: checkpointRound), instance.round + instance.limits.futureRoundWindow)
        if let store {
            do {
                try store.commit([], sendHorizon: horizon)
            } catch {
                storageFailure = error
                logger.critical("replica store failed; this replica stops", metadata: ["error": "\(error)"])
                return
            }
        }
        reseeding = false
        logger.notice("reseeded replica rejoins by catch-up", metadata: ["silentThrough": "\(horizon)"])
        resumeInstance(nextRound: instance.round, silentThrough: horizon)
    }
}
