import SintraClient
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import Testing

@testable import SintraServer

/// A request in flight reaches a replica that the client could not reach when it sent it: a replica routes
/// a client's replies only to connections that sent it one of the client's requests, so without the
/// request on the new connection it executes the request and has nowhere to reply. The bench lost requests
/// this way with one reply each ("1 replica answered") when replicas closed client connections.
@Suite(.serialized) struct RedeliveryTests {
    /// The client reaches only replica 1 when it sends its request; replicas 2–4 execute it (replica 1 gets
    /// it ordered) but have no route for its reply. Once their listeners are up the multiplexer connects
    /// and must send them the request, or it waits for its timeout with one reply. No timing decides the
    /// outcome: the request is executed everywhere before the other listeners start.
    /// Four replicas, the client listener of replica 1 started and those of replicas 2–4 only made: each
    /// listener on its member's client port (`ClientPorts`, free by `LoopbackPorts`), so the endpoints are
    /// known before the listeners of replicas 2–4 start.
    func clusterReachingOnlyReplicaOne() async throws
        -> (cluster: LocalCluster, listeners: [ClientListener], endpoints: [SintraClient.Endpoint])
    {
        let cluster = try LocalCluster(replicas: 4, faulty: 1)
        try await cluster.start()
        let listeners = try cluster.nodes.map { try ClientListener(node: $0) }
        let members = cluster.configuration.members
        try await listeners[0].start(host: "127.0.0.1", memberPort: members[0].port)
        let endpoints = members.map {
            SintraClient.Endpoint(
                member: $0.index, host: "127.0.0.1", port: ClientPorts.port(of: $0), identityKey: $0.identityKey)
        }
        return (cluster, listeners, endpoints)
    }

    /// Starts the client listeners of replicas 2–4 once every replica executed one request.
    func startTheOtherListenersOnceExecuted(_ cluster: LocalCluster, _ listeners: [ClientListener]) async throws {
        let executed = await eventually(within: 120) {
            for node in cluster.nodes where await node.executedCount < 1 { return false }
            return true
        }
        #expect(executed)
        let members = cluster.configuration.members
        for offset in 1..<4 {
            try await listeners[offset].start(host: "127.0.0.1", memberPort: members[offset].port)
        }
    }

    @Test func aRequestInFlightIsSentToAReplicaReachedLater() async throws {
        let (cluster, listeners, endpoints) = try await clusterReachingOnlyReplicaOne()
        let multiplexer = try ClientMultiplexer(
            endpoints: endpoints, faulty: 1, clusterIdentifier: cluster.configuration.clusterIdentifier, slots: 1,
            timeoutSeconds: 120)
        #expect(await multiplexer.connect() == 1)
        let result = multiplexer.execute(
            slot: 0, operation: KeyValueStore.Operation.put(key: [1], value: [2]).encoded)
        try await startTheOtherListenersOnceExecuted(cluster, listeners)
        #expect(listeners[0].statistics.replies + listeners[0].statistics.cachedReplies == 1)
        // Accepted only with a second reply, from a replica the request reached on a new connection.
        #expect(try KeyValueStore.Result(encoded: try await result.get()) == .ok)
        #expect(multiplexer.redeliveryCount >= 1)
        #expect(listeners[1...].contains { $0.statistics.cachedReplies >= 1 })
        await multiplexer.close()
        for listener in listeners { await listener.shutdown() }
        await cluster.shutdown()
    }

    /// The same for `SintraClient`: while its request waits it redials the replicas it could not reach and
    /// sends the request on each new connection.
    @Test func aSingleClientsWaitingRequestIsSentToAReplicaReachedLater() async throws {
        let (cluster, listeners, endpoints) = try await clusterReachingOnlyReplicaOne()
        let client = try SintraClient(
            endpoints: endpoints, faulty: 1, clusterIdentifier: cluster.configuration.clusterIdentifier,
            timeoutSeconds: 120)
        let result = Task { try await client.execute(.put(key: [1], value: [2])) }
        try await startTheOtherListenersOnceExecuted(cluster, listeners)
        #expect(try await result.value == .ok)
        #expect(listeners[1...].contains { $0.statistics.cachedReplies >= 1 })
        await client.close()
        for listener in listeners { await listener.shutdown() }
        await cluster.shutdown()
    }
}
