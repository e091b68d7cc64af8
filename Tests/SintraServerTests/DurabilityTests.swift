import Foundation
import SintraCore
import SintraCrypto
import SintraReplica
import SintraStorage
import Testing

@testable import SintraServer

/// Durable replicas over real TLS on loopback, each with a real SQLite store in a temporary folder.
@Suite(.serialized) struct DurabilityTests {
    /// Requests from distinct clients (one per client: the test checks state, not deduplication).
    static func requests(_ range: Range<Int>, cluster: [UInt8]) throws -> [ClientRequest] {
        try range.map { number in
            let key = try ClientKey(seed: (0..<32).map { UInt8(truncatingIfNeeded: number &* 131 &+ $0 &* 7) })
            let operation = KeyValueStore.Operation.put(
                key: Array("key-\(number % 17)".utf8), value: Array("value-\(number)".utf8))
            return key.request(clusterIdentifier: cluster, sequence: 1, operation: operation.encoded)
        }
    }

    static func submit(_ requests: [ClientRequest], to nodes: [ReplicaNode]) async {
        for request in requests {
            for node in nodes { await node.submit(request) }
        }
    }

    static func waitFor(_ count: Int, _ nodes: [ReplicaNode], seconds: Double = 90) async -> Bool {
        await eventually(within: seconds) {
            for node in nodes where await node.executedCount < UInt64(count) { return false }
            return true
        }
    }

    /// Stops replica 4, lets the others order more requests, restarts replica 4 from its data folder (its
    /// state must equal what it had, before it talks to anyone), then loads all four: every replica ends
    /// with the same execution chain and state digest. Snapshots every 4 rounds, so the restart goes
    /// through snapshot + log replay, and the restarted replica catches up the rounds it missed without
    /// sending anything in the rounds it may have taken part in before (its send horizon).
    @Test func aRestartedReplicaRecoversItsStateAndRejoins() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sintra-durable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1)
        let configuration = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: try freeConsecutivePorts(4))
        func open(_ index: Int) throws -> (ReplicaNode, ReplicaStore) {
            let store = try ReplicaStore.open(
                path: folder.appendingPathComponent("replica-\(index).sqlite").path,
                owner: ReplicaStore.Owner(clusterIdentifier: configuration.clusterIdentifier, member: index))
            var options = ReplicaNode.Options.testing
            options.store = store
            options.snapshotInterval = 4
            options.snapshotWriteEvery = 1
            return (try ReplicaNode(cluster: configuration, secrets: keys.secrets[index - 1], options: options), store)
        }
        var opened = try (1...4).map { try open($0) }
        var nodes = opened.map(\.0)
        for node in nodes { try await node.start() }

        // Waves of ten, each waited for, so the first load spans several rounds and snapshots.
        let first = try Self.requests(0..<60, cluster: configuration.clusterIdentifier)
        for wave in 0..<6 {
            await Self.submit(Array(first[(wave * 10)..<(wave * 10 + 10)]), to: nodes)
            #expect(await Self.waitFor(wave * 10 + 10, nodes))
        }
        #expect(await nodes[3].statistics.snapshots > 0)

        // Replica 4 stops; its state at that moment is what it must come back with.
        let chainBefore = await nodes[3].executionChain
        let digestBefore = await nodes[3].stateDigest
        let executedBefore = await nodes[3].executedCount
        let roundBefore = await nodes[3].round
        await nodes[3].shutdown()
        opened[3].1.close()

        let second = try Self.requests(60..<120, cluster: configuration.clusterIdentifier)
        await Self.submit(second, to: Array(nodes[0..<3]))
        #expect(await Self.waitFor(first.count + second.count, Array(nodes[0..<3])))

        opened[3] = try open(4)
        nodes[3] = opened[3].0
        #expect(await nodes[3].executionChain == chainBefore)
        #expect(await nodes[3].stateDigest == digestBefore)
        #expect(await nodes[3].executedCount == executedBefore)
        #expect(await nodes[3].round == roundBefore)
        // Restored from the snapshot plus exactly the logged rounds after it.
        let snapshotRound = try #require(try opened[3].1.recover().snapshot?.round)
        #expect(await nodes[3].statistics.replayedRounds == Int(roundBefore - 1 - snapshotRound))
        try await nodes[3].start()

        let third = try Self.requests(120..<180, cluster: configuration.clusterIdentifier)
        await Self.submit(third, to: nodes)
        let total = first.count + second.count + third.count
        #expect(await Self.waitFor(total, nodes))

        let chains = await nodes.asyncMap { await $0.executionChain }
        let digests = await nodes.asyncMap { await $0.stateDigest }
        let counts = await nodes.asyncMap { await $0.executedCount }
        #expect(counts == Array(repeating: UInt64(total), count: 4))
        #expect(Set(chains).count == 1)
        #expect(Set(digests).count == 1)
        for node in nodes {
            #expect(await node.storageFailure == nil)
            #expect(await node.statistics.malformedFrames == 0)
        }
        for node in nodes { await node.shutdown() }
        for (_, store) in opened { store.close() }
    }

    /// A node refuses a store that belongs to another member, before it starts.
    @Test func aNodeRefusesAnotherMembersStore() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sintra-durable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1)
        let configuration = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: try freeConsecutivePorts(4))
        let store = try ReplicaStore.open(
            path: folder.appendingPathComponent("replica.sqlite").path,
            owner: ReplicaStore.Owner(clusterIdentifier: configuration.clusterIdentifier, member: 1))
        defer { store.close() }
        var options = ReplicaNode.Options.testing
        options.store = store
        #expect(throws: StoreError.self) {
            _ = try ReplicaNode(cluster: configuration, secrets: keys.secrets[1], options: options)
        }
    }
}
