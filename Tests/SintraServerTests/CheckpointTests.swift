import Foundation
import SintraCore
import SintraCrypto
import SintraReplica
import SintraStorage
import Testing

@testable import SintraServer

/// Checkpoint votes, certificates and their wire format, without a network.
struct CheckpointVoteTests {
    static func vote(_ keys: DealtKeys, member: Int, round: UInt64, digest: [UInt8]) throws -> [UInt8] {
        try keys.secrets[member - 1].identity.sign(Checkpoint.statement(round: round, digest: digest))
    }

    /// n − t matching votes make a certificate that verifies; a vote with a bad signature counts nothing;
    /// each member's held votes are bounded; votes at or below the stable checkpoint are dropped.
    @Test func votesFormACertificateWithBoundedMemory() throws {
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1)
        let cluster = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: 20_000)
        let configuration = try GroupConfiguration(cluster: cluster)
        var votes = CheckpointVotes(configuration: configuration)
        let good = [UInt8](repeating: 1, count: 32)
        let bad = [UInt8](repeating: 2, count: 32)
        #expect(votes.add(round: 8, digest: good, signature: try Self.vote(keys, member: 1, round: 8, digest: good), from: 1) == .recorded)
        // Member 2 signed another digest (a diverged or Byzantine replica): no quorum with it.
        #expect(votes.add(round: 8, digest: bad, signature: try Self.vote(keys, member: 2, round: 8, digest: bad), from: 2) == .recorded)
        // A signature of member 3 presented as member 4's.
        #expect(votes.add(round: 8, digest: good, signature: try Self.vote(keys, member: 3, round: 8, digest: good), from: 4) == .invalid)
        #expect(votes.add(round: 8, digest: good, signature: try Self.vote(keys, member: 3, round: 8, digest: good), from: 3) == .recorded)
        // A member flooding rounds keeps at most `roundsPerMember` of them.
        for round in stride(from: UInt64(16), through: 80, by: 8) {
            _ = votes.add(round: round, digest: good, signature: try Self.vote(keys, member: 2, round: round, digest: good), from: 2)
        }
        #expect(votes.heldVoteCount <= 2 + 1 + CheckpointVotes.roundsPerMember)
        guard case .stable(let checkpoint) = votes.add(
            round: 8, digest: good, signature: try Self.vote(keys, member: 4, round: 8, digest: good), from: 4)
        else {
            Issue.record("three matching votes did not make a stable checkpoint")
            return
        }
        #expect(checkpoint.round == 8 && checkpoint.digest == good)
        #expect(checkpoint.certificate.signers == [1, 3, 4])
        #expect(checkpoint.isValid(configuration: configuration))
        let decoded = try StableCheckpoint(encoded: checkpoint.encoded, memberCount: 4)
        #expect(decoded == checkpoint && decoded.isValid(configuration: configuration))
        // The same signatures on another digest or round do not verify.
        #expect(!StableCheckpoint(round: 8, digest: bad, certificate: checkpoint.certificate).isValid(configuration: configuration))
        #expect(!StableCheckpoint(round: 16, digest: good, certificate: checkpoint.certificate).isValid(configuration: configuration))
        #expect(votes.add(round: 8, digest: good, signature: try Self.vote(keys, member: 2, round: 8, digest: good), from: 2) == .stale)
        // Member 2's votes above the stable round are all that is left.
        #expect(votes.heldVoteCount <= CheckpointVotes.roundsPerMember)
    }

    /// The messages round-trip, and bytes that break the format are typed errors (never a crash).
    @Test func messagesDecodeDefensively() throws {
        let limits = WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: 4)
        let messages: [CheckpointMessage] = [
            .vote(round: 64, digest: [UInt8](repeating: 3, count: 32), signature: [UInt8](repeating: 4, count: 64)),
            .certificateRequest,
            .stateRequest(round: 64, offset: 1 << 20),
            .stateChunk(round: 64, offset: 0, totalBytes: 3, bytes: [1, 2, 3]),
            .certificate(StableCheckpoint(
                round: 64, digest: [UInt8](repeating: 5, count: 32),
                certificate: QuorumCertificate(signatures: [.init(member: 2, bytes: [UInt8](repeating: 6, count: 64))]))),
        ]
        for message in messages {
            #expect(try CheckpointMessage(encoded: message.encoded, limits: limits) == message)
            let encoded = message.encoded
            if encoded.count > 1 {
                #expect(throws: DecodingError.self) {
                    _ = try CheckpointMessage(encoded: Array(encoded.dropLast()), limits: limits)
                }
            }
            #expect(throws: DecodingError.self) { _ = try CheckpointMessage(encoded: encoded + [0], limits: limits) }
        }
        #expect(throws: DecodingError.self) { _ = try CheckpointMessage(encoded: [9], limits: limits) }
        // A chunk longer than `Checkpoint.chunkBytes` is refused before it is read.
        var writer = ByteWriter()
        writer.write(UInt8(4))
        writer.write(UInt64(1))
        writer.write(UInt64(0))
        writer.write(UInt64(1 << 30))
        writer.write(UInt32(Checkpoint.chunkBytes + 1))
        #expect(throws: DecodingError.self) { _ = try CheckpointMessage(encoded: writer.bytes, limits: limits) }
        // A certificate naming a member out of range.
        var certificate = ByteWriter()
        certificate.write(UInt8(2))
        certificate.write(UInt64(64))
        certificate.writeFixed([UInt8](repeating: 0, count: 32))
        certificate.write(UInt16(1))
        certificate.write(UInt16(9))
        certificate.writeFixed([UInt8](repeating: 0, count: 64))
        #expect(throws: DecodingError.self) { _ = try CheckpointMessage(encoded: certificate.bytes, limits: limits) }
    }

    /// The checkpoint state round-trips, and a state whose counts exceed its bytes is refused.
    @Test func checkpointStateRoundTrips() throws {
        let state = CheckpointState(
            chain: [UInt8](repeating: 7, count: 32), executor: [1, 2, 3],
            recentDigests: [(3, [[UInt8](repeating: 8, count: 32)]), (4, [])])
        #expect(try CheckpointState(encoded: state.encoded) == state)
        var forged = state.encoded
        forged[32 + 4 + 3 + 3] = 0xff  // the round count's low byte
        #expect(throws: DecodingError.self) { _ = try CheckpointState(encoded: forged) }
    }
}

/// Durable replicas over real TLS on loopback with real SQLite stores: checkpoints, garbage collection,
/// state transfer.
/// The per-peer bound on serving state chunks.
struct ServeBudgetTests {
    /// A burst, then the refill rate; one peer's spending leaves another's budget alone.
    @Test func aPeerGetsItsBurstThenTheRefillRate() {
        var budget = ServeBudget(burst: 4, perSecond: 10)
        func served(_ peer: Int, at now: ContinuousClock.Instant, asking: Int = 10) -> Int {
            var count = 0
            for _ in 0..<asking where budget.take(peer: peer, now: now) { count += 1 }
            return count
        }
        let start = ContinuousClock.now
        #expect(served(2, at: start) == 4)
        #expect(served(3, at: start, asking: 1) == 1)
        // 0.5 s later: 5 more (10 per second), capped at the burst of 4.
        let later = start + .milliseconds(500)
        #expect(served(2, at: later) == 4)
        // 0.25 s after that: 2.5 more, so 2 chunks.
        #expect(served(2, at: later + .milliseconds(250)) == 2)
    }
}

@Suite(.serialized) struct CheckpointTests {
    final class DurableCluster: @unchecked Sendable {
        let folder: URL
        let keys: DealtKeys
        let configuration: ClusterConfiguration
        var nodes: [ReplicaNode] = []
        var stores: [ReplicaStore] = []
        let configure: @Sendable (Int, inout ReplicaNode.Options) -> Void

        init(configure: @escaping @Sendable (Int, inout ReplicaNode.Options) -> Void) throws {
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("sintra-ckpt-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            keys = try KeyDealer.deal(replicas: 4, faulty: 1)
            configuration = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: try freeConsecutivePorts(4))
            self.configure = configure
            for index in 1...4 {
                let (node, store) = try open(index)
                nodes.append(node)
                stores.append(store)
            }
        }

        func open(_ index: Int) throws -> (ReplicaNode, ReplicaStore) {
            let store = try ReplicaStore.open(
                path: folder.appendingPathComponent("replica-\(index).sqlite").path,
                owner: ReplicaStore.Owner(clusterIdentifier: configuration.clusterIdentifier, member: index))
            var options = ReplicaNode.Options.testing
            options.store = store
            configure(index, &options)
            return (try ReplicaNode(cluster: configuration, secrets: keys.secrets[index - 1], options: options), store)
        }

        func stop(_ index: Int) async {
            await nodes[index - 1].shutdown()
            stores[index - 1].close()
        }

        func restart(_ index: Int) async throws {
            let (node, store) = try open(index)
            nodes[index - 1] = node
            stores[index - 1] = store
            try await node.start()
        }

        func shutdown() async {
            for node in nodes { await node.shutdown() }
            for store in stores { store.close() }
            try? FileManager.default.removeItem(at: folder)
        }
    }

    /// Submits requests `range` one wave of `perWave` at a time, each wave waited for by `nodes`, so the
    /// load spans many rounds.
    static func drive(_ range: Range<Int>, perWave: Int, cluster: DurableCluster, nodes: [ReplicaNode], total: Int)
        async throws -> Bool
    {
        let requests = try DurabilityTests.requests(range, cluster: cluster.configuration.clusterIdentifier)
        var done = total - range.count
        for start in stride(from: 0, to: requests.count, by: perWave) {
            let wave = Array(requests[start..<min(requests.count, start + perWave)])
            await DurabilityTests.submit(wave, to: nodes)
            done += wave.count
            guard await DurabilityTests.waitFor(done, nodes) else { return false }
        }
        return true
    }

    /// Checkpoints further apart than the catch-up memory are refused at start, with both numbers: a
    /// laggard that installed one could not catch up the rounds after it. Equal is allowed.
    @Test func checkpointsFurtherApartThanTheCatchUpMemoryAreRefused() async throws {
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1)
        let configuration = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: try freeConsecutivePorts(4))
        var options = ReplicaNode.Options.testing
        options.broadcastLimits.catchUpMemoryRounds = 100
        options.snapshotInterval = 101
        #expect(throws: ReplicaNode.Options.Invalid.snapshotIntervalOverCatchUpMemory(interval: 101, catchUpRounds: 100)) {
            try ReplicaNode(cluster: configuration, secrets: keys.secrets[0], options: options)
        }
        // The deduplication memory is a floor of the catch-up memory.
        options.broadcastLimits.catchUpMemoryRounds = 10
        options.snapshotInterval = 64
        try await ReplicaNode(cluster: configuration, secrets: keys.secrets[0], options: options).shutdown()
        options.snapshotInterval = 100
        options.broadcastLimits.catchUpMemoryRounds = 100
        try await ReplicaNode(cluster: configuration, secrets: keys.secrets[0], options: options).shutdown()
    }

    /// Checkpoints every 4 rounds, catch-up memory 8 rounds: every replica learns stable checkpoints, stores
    /// the latest certificate (which verifies) with the snapshot it certifies, keeps at most one interval
    /// plus the catch-up memory of log on disk, and holds a bounded number of votes.
    @Test func certificatesFormAndTheLogIsCollected() async throws {
        let cluster = try DurableCluster { _, options in
            options.snapshotInterval = 4
            options.snapshotWriteEvery = 1
            options.broadcastLimits.deliveredMemoryRounds = 8
            options.broadcastLimits.catchUpMemoryRounds = 8
        }
        let nodes = cluster.nodes
        for node in nodes { try await node.start() }
        #expect(try await Self.drive(0..<40, perWave: 2, cluster: cluster, nodes: nodes, total: 40))
        let group = try GroupConfiguration(cluster: cluster.configuration)
        for (index, node) in nodes.enumerated() {
            let statistics = await node.statistics
            #expect(statistics.stableCheckpointRound >= 8, "replica \(index + 1): \(statistics)")
            #expect(statistics.snapshots >= 2)
            #expect(await node.heldCheckpointVotes <= 4 * CheckpointVotes.roundsPerMember)
            let stable = try #require(await node.stableCheckpoint)
            #expect(stable.isValid(configuration: group))
            let recovery = try cluster.stores[index].recover()
            let snapshot = try #require(recovery.snapshot)
            #expect(snapshot.format == 2)
            // The log holds the rounds after the snapshot (at most one interval, plus the rounds replica i
            // waits before writing a snapshot: (i − 1) · 4 / 4) and the catch-up memory before it, nothing
            // older.
            #expect(recovery.log.allSatisfy { $0.round > snapshot.round - 8 })
            #expect(cluster.stores[index].sizes().logRounds <= 4 + index + 8)
            #expect(snapshot.round > 12, "enough rounds for the log to be collected")
            let stored = try #require(recovery.certificate)
            let certificate = try StableCheckpoint(encoded: stored.bytes, memberCount: 4)
            #expect(certificate.isValid(configuration: group))
            // A certified digest is the digest of this replica's own snapshot of that round.
            if certificate.round == snapshot.round {
                #expect(
                    Checkpoint.digest(
                        clusterIdentifier: cluster.configuration.clusterIdentifier, round: snapshot.round,
                        state: snapshot.state) == certificate.digest)
            }
        }
        // Every replica holds the same stable checkpoint for a common round.
        let stables = await nodes.asyncMap { await $0.stableCheckpoint }
        let common = stables.compactMap { $0?.round }.min() ?? 0
        #expect(common >= 8)
        await cluster.shutdown()
    }

    /// Starts the cluster, orders 10 requests on all four, stops replica 4, has the other three order
    /// requests one per round up to `total` (checking they moved more than `rounds` rounds), and restarts
    /// replica 4 from its store; returns it and the round it was in when it stopped.
    static func leaveBehind(
        _ cluster: DurableCluster, through total: Int, rounds: UInt64
    ) async throws -> (laggard: ReplicaNode, roundBefore: UInt64) {
        for node in cluster.nodes { try await node.start() }
        #expect(try await drive(0..<10, perWave: 5, cluster: cluster, nodes: cluster.nodes, total: 10))
        let roundBefore = await cluster.nodes[3].round
        await cluster.stop(4)
        let running = Array(cluster.nodes[0..<3])
        #expect(try await drive(10..<total, perWave: 1, cluster: cluster, nodes: running, total: total))
        let roundNow = await cluster.nodes[1].round
        #expect(roundNow > roundBefore + rounds, "the others moved \(roundNow - roundBefore) rounds")
        try await cluster.restart(4)
        return (cluster.nodes[3], roundBefore)
    }

    /// Replica 4 stops while the others run past the peers' catch-up memory (8 rounds here), with a
    /// state-transfer lag of 1,000 rounds, so the lag rule never fires. Restarted, it learns the latest
    /// stable checkpoint, asks for rounds its peers forgot, delivers nothing for `catchUpPatience` (1 s) and
    /// fetches the checkpoint's state at once; then it catches up and ends with the others' state. Without
    /// the watch it would wait for ever: every later checkpoint is within the lag too.
    @Test func aReplicaWhoseCatchUpStallsFetchesTheStateAtOnce() async throws {
        let cluster = try DurableCluster { _, options in
            options.snapshotInterval = 8
            options.broadcastLimits.deliveredMemoryRounds = 8
            options.broadcastLimits.catchUpMemoryRounds = 8
            options.stateTransferLag = 1000
            options.catchUpPatience = .seconds(1)
        }
        let (laggard, _) = try await Self.leaveBehind(cluster, through: 40, rounds: 8 + 8)
        #expect(await eventually(within: 60) { await laggard.statistics.stateTransfers >= 1 })
        #expect(await laggard.statistics.stalledCatchUps >= 1)
        #expect(try await Self.drive(40..<50, perWave: 5, cluster: cluster, nodes: cluster.nodes, total: 50))
        let chains = await cluster.nodes.asyncMap { await $0.executionChain }
        let counts = await cluster.nodes.asyncMap { await $0.executedCount }
        #expect(counts == Array(repeating: 50, count: 4))
        #expect(Set(chains).count == 1)
        await cluster.shutdown()
    }

    /// Replica 4 stops; the others order a request per round for well over 64 rounds (the peers'
    /// catch-up memory), so catch-up alone cannot bring it back. Restarted from its store, it learns the
    /// latest stable checkpoint, asks replica 1 first (a signer) — which is Byzantine here and answers
    /// with a forged state and a forged certificate — rejects both, fetches the state from an honest peer,
    /// installs it, catches up the rounds after it and takes part again: all four end with the same
    /// execution chain and state digest.
    @Test func aReplicaFarBehindStateTransfersAndRejectsAForgedState() async throws {
        let cluster = try DurableCluster { index, options in
            options.snapshotInterval = 8
            options.broadcastLimits.catchUpMemoryRounds = 64
            options.stateTransferTimeout = .seconds(20)
            options.forgesServedStates = index == 1
        }
        let (laggard, roundBefore) = try await Self.leaveBehind(cluster, through: 110, rounds: 64 + 8)
        #expect(await eventually(within: 90) { await laggard.statistics.stateTransfers >= 1 })
        #expect(try await Self.drive(110..<130, perWave: 5, cluster: cluster, nodes: cluster.nodes, total: 130))

        let statistics = await laggard.statistics
        #expect(statistics.rejectedStateAnswers >= 1, "\(statistics)")
        #expect(statistics.faultsByKind["invalidProof", default: 0] >= 2, "\(statistics)")
        let chains = await cluster.nodes.asyncMap { await $0.executionChain }
        let digests = await cluster.nodes.asyncMap { await $0.stateDigest }
        let counts = await cluster.nodes.asyncMap { await $0.executedCount }
        #expect(counts == Array(repeating: 130, count: 4))
        #expect(Set(chains).count == 1)
        #expect(Set(digests).count == 1)
        for node in cluster.nodes {
            #expect(await node.isStopped == false)
            #expect(await node.statistics.divergences == 0)
        }
        // The installed checkpoint is on disk: a restart now needs no transfer.
        let recovery = try cluster.stores[3].recover()
        #expect((recovery.snapshot?.round ?? 0) > roundBefore + 32)
        #expect(recovery.certificate != nil)
        await cluster.shutdown()
    }
}
