import Foundation
import SintraClient
import SintraCrypto
import SintraReplica
import Testing

/// Durable `sintra replica` processes (docs/DURABILITY.md): state in `replica-I.data/` next to each
/// secret file, `kill -9` with no warning, restart from the store. (One replica killed and restarted:
/// `ProcessClusterTests.aKilledReplicaRestartsFromItsStoreAndCatchesUp`.)
@Suite(.serialized) struct DurabilityProcessTests {
    static let waitSeconds: Double = 120

    /// Polls `sintra status` until every replica in `ids` answers with `executed` requests and all their
    /// digests are equal; returns the last answers.
    static func converged(_ cluster: ProcessCluster, ids: [Int], executed: UInt64) async throws -> [ReplicaStatus] {
        var statuses = [ReplicaStatus]()
        let deadline = Date().addingTimeInterval(waitSeconds)
        repeat {
            let answers = await StatusProbe.query(cluster.endpoints.filter { ids.contains($0.member) }, timeoutSeconds: 10)
            statuses = answers.compactMap(\.status)
            if statuses.count == ids.count, statuses.allSatisfy({ $0.executedCount == executed }),
                Set(statuses.map(\.stateDigest)).count == 1
            {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        return statuses
    }

    /// Every replica killed with SIGKILL at once after its writes were acknowledged: restarted from their
    /// stores, the replicas serve every acknowledged value and go on ordering (the cluster was quiet, so no
    /// replica had sent anything for the next round and none is silent after the restart).
    @Test func allReplicasKilledAtOnceComeBackWithEveryAcknowledgedWrite() async throws {
        let cluster = try ProcessCluster(replicas: 4, faulty: 1)
        defer { cluster.stop() }
        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let client = try SintraClient(configuration: cluster.configuration, timeoutSeconds: Self.waitSeconds)
        for number in 0..<12 {
            #expect(try await client.execute(.put(key: Array("k\(number)".utf8), value: [UInt8(number)])) == .ok)
        }
        let before = try await Self.converged(cluster, ids: [1, 2, 3, 4], executed: 12)
        #expect(before.count == 4, "\(before)")
        await client.close()
        for id in 1...4 { cluster.kill(id) }

        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let restored = try await Self.converged(cluster, ids: [1, 2, 3, 4], executed: 12)
        #expect(restored.map(\.stateDigest) == before.map(\.stateDigest), "\(restored)")
        let again = try SintraClient(configuration: cluster.configuration, timeoutSeconds: Self.waitSeconds)
        for number in 0..<12 {
            #expect(try await again.execute(.get(key: Array("k\(number)".utf8))) == .value([UInt8(number)]))
        }
        #expect(try await again.execute(.put(key: Array("after".utf8), value: [1])) == .ok)
        await again.close()
    }
}
