import SintraCore
import SintraCrypto
import SintraReplica
import Testing

@testable import SintraServer

/// Four replica nodes in one process over real TLS on loopback.
@Suite(.serialized) struct ReplicaNodeTests {
    /// Total order end to end: requests submitted to every node are executed by every node in the same
    /// order, leaving equal key-value states.
    @Test func everyNodeExecutesTheSameRequestsInTheSameOrder() async throws {
        let cluster = try LocalCluster(replicas: 4, faulty: 1)
        try await cluster.start()
        // One request per client: a client's later request executed first would make its earlier one stale
        // (RequestExecutor), and this test checks order, not deduplication.
        var requests = [ClientRequest]()
        for number in 0..<40 {
            let client = (0..<16).map { UInt8(truncatingIfNeeded: number &* 31 &+ $0) }
            let operation = KeyValueStore.Operation.put(
                key: Array("key-\(number % 3)".utf8), value: Array("value-\(number)".utf8))
            requests.append(ClientRequest(client: client, sequence: 1, operation: operation.encoded))
        }
        for request in requests {
            for node in cluster.nodes {
                await node.submit(request)
            }
        }
        let done = await eventually(within: 60) {
            for node in cluster.nodes where await node.executedCount < UInt64(requests.count) { return false }
            return true
        }
        #expect(done)
        let chains = await cluster.nodes.asyncMap { await $0.executionChain }
        let digests = await cluster.nodes.asyncMap { await $0.stateDigest }
        let counts = await cluster.nodes.asyncMap { await $0.executedCount }
        #expect(counts == Array(repeating: UInt64(requests.count), count: 4))
        #expect(Set(chains).count == 1)
        #expect(Set(digests).count == 1)
        #expect(chains[0] != [UInt8](repeating: 0, count: 32))
        for node in cluster.nodes {
            #expect(await node.statistics.malformedFrames == 0)
        }
        await cluster.shutdown()
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async -> T) async -> [T] {
        var result = [T]()
        for element in self { result.append(await transform(element)) }
        return result
    }
}
