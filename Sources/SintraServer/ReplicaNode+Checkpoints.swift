import Logging
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import SintraStorage

/// Checkpoints (docs/DURABILITY.md, "Checkpoints"): every `snapshotInterval` rounds the node snapshots its
/// state, signs its digest and sends the vote to its peers; n − t matching votes make a stable checkpoint,
/// whose certificate is stored with the snapshot; a node whose own digest differs from a certified one
/// stops. A part of `ReplicaNode`, in its own file.
extension ReplicaNode {
    // MARK: Checkpoints

    /// Takes the checkpoint of `round` (just executed): captures the state and has it encoded and digested
    /// off the actor (`finishCheckpoint` then keeps it, signs it, and has it written in its turn).
    ///
    /// Why off the actor: encoding and hashing the whole state took 35–300 ms per checkpoint with 200,000
    /// keys (measured in a batched bench, growing with the store), and every replica checkpoints at the same
    /// round, so the whole cluster stopped ordering meanwhile (p99 about 1 s with durable replicas; with
    /// in-memory replicas throughput was about two thirds of that without checkpoints, loaded machine).
    /// The capture is cheap: the executor is a value (copy on write), so the actor goes on executing while
    /// the copy is encoded, and only the chunks it changes meanwhile are copied. Checkpoints finish in round
    /// order (each task waits for the one before it).
    func checkpoint(at round: UInt64) {
        let memory = instance.limits.deliveredMemoryRounds
        let recent = recentDigests.keys.sorted().filter { round < memory || $0 > round - memory }.filter { $0 <= round }
        let chain = execution.chain
        let executor = execution.executor
        let recentEntries = recent.map { ($0, recentDigests[$0]!) }
        let clusterIdentifier = configuration.clusterIdentifier
        let previous = checkpointEncoding
        checkpointEncoding = Task.detached(priority: .medium) { [weak self] in
            await previous?.value
            let state = CheckpointState(chain: chain, executor: executor.snapshot(), recentDigests: recentEntries).encoded
            let digest = Checkpoint.digest(clusterIdentifier: clusterIdentifier, round: round, state: state)
            await self?.finishCheckpoint(round: round, state: state, digest: digest)
        }
    }

    /// Keeps the checkpoint of `round` to serve and to store as the snapshot (`saveDueSnapshot`), signs its
    /// digest and sends the vote to the peers. Nothing if the node is shutting down or stopped, or a later
    /// checkpoint (its own, or one installed by state transfer) came first.
    func finishCheckpoint(round: UInt64, state: [UInt8], digest: [UInt8]) {
        guard !shuttingDown, !isStopped, round > snapshotRound, round > (unsavedSnapshot?.round ?? 0) else { return }
        if store == nil {
            snapshotRound = round
        } else if (round / snapshotInterval) % snapshotWriteEvery == 0 {
            unsavedSnapshot = (round, state)
            saveDueSnapshot()
        }
        statistics.snapshots += 1
        servedStates[round] = state
        if servedStates.count > 2, let oldest = servedStates.keys.min() { servedStates[oldest] = nil }
        ownDigests[round] = digest
        if ownDigests.count > 4, let oldest = ownDigests.keys.min() { ownDigests[oldest] = nil }
        let signature = keys.identity.sign(Checkpoint.statement(round: round, digest: digest))
        for peer in configuration.members where peer != member {
            sendCheckpoint(.vote(round: round, digest: digest, signature: signature), to: peer)
        }
        if let stable = votes.stable, stable.round == round {
            // Certified before this node got here (it was behind): check it; its certificate is stored with
            // the snapshot (`saveDueSnapshot`).
            checkAgainst(stable)
            if !isStopped, snapshotRound == round, let store {
                try? store.saveCertificate(ReplicaStore.Certificate(round: round, bytes: stable.encoded))
            }
        } else {
            receiveVote(round: round, digest: digest, signature: signature, from: member)
        }
    }

    /// Rounds this replica waits after a checkpoint before writing its snapshot into the store: member i
    /// waits (i − 1) · interval / n rounds, so the replicas write at different rounds.
    ///
    /// Why: writing a large snapshot into SQLite blocks the replica, and every replica checkpoints at the
    /// same round, so when they also wrote at the same round the whole cluster stopped (200,000 keys, about
    /// 20 MB: p99 0.8–0.9 s against 0.33 s without checkpoints, 0.28–0.30 s staggered); staggered, at most
    /// one replica writes at a time in a cluster of four, and the other
    /// n − 1 ≥ n − t go on ordering. The vote and the served state do not wait: only the write does. The log
    /// is pruned by the write, so until then it still holds every round since the last stored snapshot.
    var snapshotWriteDelay: UInt64 {
        UInt64(member - 1) * snapshotInterval / UInt64(max(configuration.members.count, 1))
    }

    /// Writes the checkpoint waiting for its turn (`snapshotWriteDelay`) once the replica has executed that
    /// many rounds past it: the snapshot (the log at or below `round − catchUpRounds` goes; the
    /// rounds kept below the snapshot are what this replica answers peers' catch-up requests from after a
    /// restart), and the stable certificate if it certifies that round.
    func saveDueSnapshot() {
        guard let pending = unsavedSnapshot, let store, !shuttingDown, !isStopped,
            lastExecutedRound >= pending.round + snapshotWriteDelay
        else { return }
        unsavedSnapshot = nil
        // The write holds this actor: hand the rounds this node would lead meanwhile to their substitutes now,
        // so the peers do not wait for their timers (`AtomicBroadcast.Instance.abdicate`). The write is
        // expected to take about as long as the last one; half as long again, and two rounds, for margin.
        let busyRounds = UInt64((1.5 * snapshotWriteSeconds / max(smoothedRoundSeconds, 0.001)).rounded(.up)) + 2
        perform(instance.abdicate(through: instance.round + busyRounds))
        let started = ContinuousClock.now
        do {
            try store.saveSnapshot(
                ReplicaStore.Snapshot(round: pending.round, state: pending.state, format: 2),
                keepRounds: instance.limits.catchUpRounds)
            let elapsed = started.duration(to: .now)
            snapshotWriteSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        } catch {
            // The log still holds every round since the last snapshot, so this is not yet a failure of
            // durability; the next checkpoint tries again.
            logger.error("snapshot failed", metadata: ["error": "\(error)"])
            return
        }
        snapshotRound = pending.round
        if let stable = votes.stable, stable.round == pending.round {
            try? store.saveCertificate(ReplicaStore.Certificate(round: pending.round, bytes: stable.encoded))
        }
    }

    func sendCheckpoint(_ message: CheckpointMessage, to peer: Int?) {
        let frame = Frame(
            clusterIdentifier: configuration.clusterIdentifier, sender: member, path: Checkpoint.path,
            body: message.encoded)
        if let peer {
            if network.send(frame, to: peer) == .queueFull { statistics.refusedSends += 1 }
        } else {
            for peer in configuration.members where peer != member {
                if network.send(frame, to: peer) == .queueFull { statistics.refusedSends += 1 }
            }
        }
    }

    func receiveCheckpoint(_ message: CheckpointMessage, from sender: Int) {
        guard sender != member else { return }
        switch message {
        case .vote(let round, let digest, let signature):
            receiveVote(round: round, digest: digest, signature: signature, from: sender)
        case .certificateRequest:
            if forgesServedStates {
                sendCheckpoint(.certificate(forgedCertificate()), to: sender)
            } else if let stable = votes.stable {
                sendCheckpoint(.certificate(stable), to: sender)
            }
        case .certificate(let checkpoint):
            // Only a newer one is worth its n − t signature checks.
            guard checkpoint.round > (votes.stable?.round ?? 0) else { return }
            guard checkpoint.isValid(configuration: configuration) else {
                recordFault(.invalidProof, "checkpoint certificate for round \(checkpoint.round) from \(sender) does not verify")
                return
            }
            votes.adopt(checkpoint)
            learnt(checkpoint)
        case .stateRequest(let round, let offset):
            serveState(round: round, offset: offset, to: sender)
        case .stateChunk(let round, let offset, let totalBytes, let bytes):
            receiveChunk(round: round, offset: offset, totalBytes: totalBytes, bytes: bytes, from: sender)
        }
    }

    func receiveVote(round: UInt64, digest: [UInt8], signature: [UInt8], from sender: Int) {
        switch votes.add(round: round, digest: digest, signature: signature, from: sender) {
        case .invalid:
            recordFault(.invalidProof, "checkpoint vote for round \(round) from \(sender) does not verify")
        case .stable(let checkpoint):
            learnt(checkpoint)
        case .stale, .recorded:
            break
        }
    }

    /// A new stable checkpoint: check this node's own state against it, persist its certificate with the
    /// snapshot it certifies, and state-transfer if it is far ahead.
    func learnt(_ checkpoint: StableCheckpoint) {
        statistics.stableCheckpoints += 1
        statistics.stableCheckpointRound = checkpoint.round
        checkAgainst(checkpoint)
        guard !isStopped else { return }
        if let store, snapshotRound == checkpoint.round {
            do {
                try store.saveCertificate(ReplicaStore.Certificate(round: checkpoint.round, bytes: checkpoint.encoded))
            } catch {
                logger.error("saving a checkpoint certificate failed", metadata: ["error": "\(error)"])
            }
        }
        considerTransfer()
    }

    /// What a Byzantine server (`forgesServedStates`) claims: a far-ahead checkpoint signed by itself and,
    /// supposedly, by n − t − 1 others (garbage).
    func forgedCertificate() -> StableCheckpoint {
        let round = (votes.stable?.round ?? 0) + 100 * snapshotInterval
        let digest = [UInt8](repeating: 0xab, count: 32)
        let own = keys.identity.sign(Checkpoint.statement(round: round, digest: digest))
        let others = configuration.members.filter { $0 != member }.prefix(configuration.quorum - 1).map {
            QuorumCertificate.Signature(member: $0, bytes: [UInt8](repeating: UInt8($0), count: 64))
        }
        return StableCheckpoint(
            round: round, digest: digest,
            certificate: QuorumCertificate(signatures: [.init(member: member, bytes: own)] + others))
    }

    /// Fail-stop on divergence: this node's digest of a certified round is not the certified one. At least
    /// t + 1 honest replicas signed the certified digest, so it is this node's state that is wrong (a bug,
    /// a corrupted disk it could not detect, a bit flip in memory); going on would serve wrong replies and
    /// sign wrong checkpoints.
    func checkAgainst(_ checkpoint: StableCheckpoint) {
        guard let own = ownDigests[checkpoint.round], own != checkpoint.digest, divergedRound == nil else { return }
        divergedRound = checkpoint.round
        statistics.divergences = 1
        transfer = nil
        logger.critical(
            "state diverged from a certified checkpoint; this replica stops (restart it with --reseed to fetch the state from its peers)",
            metadata: [
                "round": "\(checkpoint.round)", "ownDigest": "\(Hex.encode(own))",
                "certifiedDigest": "\(Hex.encode(checkpoint.digest))",
            ])
    }
}
