import NIOCore
import NIOPosix
import SintraClient
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import Testing

@testable import SintraServer

/// SintraClient against four in-process replicas with client listeners on free ports.
@Suite(.serialized) struct ClientTests {
    struct Service {
        let cluster: LocalCluster
        let listeners: [ClientListener]
        let endpoints: [SintraClient.Endpoint]

        init(
            options: ClientListener.Options = ClientListener.Options(), nodeOptions: ReplicaNode.Options = .testing
        ) async throws {
            cluster = try LocalCluster(replicas: 4, faulty: 1, options: nodeOptions)
            try await cluster.start()
            var options = options
            options.port = 0
            var listeners = [ClientListener]()
            var endpoints = [SintraClient.Endpoint]()
            for (offset, node) in cluster.nodes.enumerated() {
                let listener = try ClientListener(node: node, options: options)
                try await listener.start(host: "127.0.0.1", memberPort: 0)
                listeners.append(listener)
                let member = cluster.configuration.members[offset]
                endpoints.append(
                    SintraClient.Endpoint(
                        member: member.index, host: "127.0.0.1", port: listener.port!, identityKey: member.identityKey))
            }
            self.listeners = listeners
            self.endpoints = endpoints
        }

        /// A client with a fresh key, of every replica or of `endpoints`.
        func client(endpoints: [SintraClient.Endpoint]? = nil, timeoutSeconds: Double) throws -> SintraClient {
            try SintraClient(
                endpoints: endpoints ?? self.endpoints, faulty: 1,
                clusterIdentifier: cluster.configuration.clusterIdentifier, timeoutSeconds: timeoutSeconds)
        }

        func shutdown() async {
            for listener in listeners { await listener.shutdown() }
            await cluster.shutdown()
        }
    }

    @Test func putGetCompareAndSwapAndScanRoundTrip() async throws {
        let service = try await Service()
        let client = try service.client(timeoutSeconds: 120)
        let a = Array("a".utf8), b = Array("b".utf8), one = Array("1".utf8), two = Array("2".utf8)
        #expect(try await client.execute(.get(key: a)) == .notFound)
        #expect(try await client.execute(.put(key: a, value: one)) == .ok)
        #expect(try await client.execute(.put(key: b, value: two)) == .ok)
        #expect(try await client.execute(.get(key: a)) == .value(one))
        #expect(try await client.execute(.compareAndSwap(key: a, expected: two, new: two)) == .conflict(current: one))
        #expect(try await client.execute(.compareAndSwap(key: a, expected: one, new: two)) == .ok)
        #expect(
            try await client.execute(.scan(from: a, to: Array("c".utf8), limit: 10))
                == .entries([(a, two), (b, two)]))
        #expect(try await client.execute(.delete(key: b)) == .ok)
        #expect(try await client.execute(.get(key: b)) == .notFound)
        await client.close()
        await service.shutdown()
    }

    @Test func theServiceAnswersWithOneReplicaShutDown() async throws {
        let service = try await Service()
        let client = try service.client(timeoutSeconds: 120)
        let key = Array("k".utf8)
        #expect(try await client.execute(.put(key: key, value: [1])) == .ok)
        await service.listeners[3].shutdown()
        await service.cluster.nodes[3].shutdown()
        for value in UInt8(2)...5 {
            #expect(try await client.execute(.put(key: key, value: [value])) == .ok)
        }
        #expect(try await client.execute(.get(key: key)) == .value([5]))
        await client.close()
        for listener in service.listeners.prefix(3) { await listener.shutdown() }
        for node in service.cluster.nodes.prefix(3) { await node.shutdown() }
    }

    @Test func fewerThanTPlusOneRepliesTimeOutWithAClearError() async throws {
        let service = try await Service()
        // Only one endpoint is reachable: t + 1 = 2 matching replies can never arrive.
        // On a loaded machine the one reply may not come within the timeout either: 0 or 1 replies.
        let client = try service.client(endpoints: [service.endpoints[0]], timeoutSeconds: 2)
        do {
            _ = try await client.execute(.put(key: [1], value: [1]))
            Issue.record("a result was accepted from one replica")
        } catch SintraClient.Failure.timeout(let seconds, let replies, let needed) {
            #expect(seconds == 2 && replies <= 1 && needed == 2)
        }
        await client.close()
        await service.shutdown()
    }

    @Test func aConnectionSendingGarbageIsClosedAndCounted() async throws {
        let service = try await Service()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let context = try ClientPorts.clientContext()
        let endpoint = service.endpoints[0]
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        try ClientPorts.clientHandler(context: context, pinning: endpoint.identityKey))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        // A record that is no ClientRequest (3 bytes, not the 16-byte client identifier and the rest).
        try await channel.writeAndFlush(ClientRecordDecoder.record([1, 2, 3], allocator: channel.allocator))
        try await channel.closeFuture.get()
        #expect(service.listeners[0].statistics.malformedRecords == 1)
        // The service goes on.
        let client = try service.client(timeoutSeconds: 120)
        #expect(try await client.execute(.put(key: [1], value: [2])) == .ok)
        await client.close()
        try await group.shutdownGracefully()
        await service.shutdown()
    }

    /// A host that opens connections and never starts TLS holds at most `handshakesPerAddressMax` of them,
    /// each for at most `handshakeTimeout`; the next is closed at once, and the service goes on.
    @Test func unfinishedHandshakesAreBoundedPerAddressAndTimeOut() async throws {
        var options = ClientListener.Options()
        options.handshakesPerAddressMax = 2
        options.handshakeTimeout = .seconds(3)
        let service = try await Service(options: options)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let endpoint = service.endpoints[0]
        func connectWithoutTLS() async throws -> Channel {
            try await ClientBootstrap(group: group).connect(host: endpoint.host, port: endpoint.port).get()
        }
        let first = try await connectWithoutTLS()
        let second = try await connectWithoutTLS()
        // Both counted before the third arrives (the listener admits connections in order on one loop).
        let third = try await connectWithoutTLS()
        try await third.closeFuture.get()
        #expect(service.listeners[0].statistics.handshakesRefused == 1)
        try await first.closeFuture.get()
        try await second.closeFuture.get()
        #expect(service.listeners[0].statistics.handshakeTimeouts == 2)
        // Slots are free again, and finished handshakes are not limited.
        let client = try service.client(timeoutSeconds: 120)
        for value in UInt8(1)...3 {
            #expect(try await client.execute(.put(key: [value], value: [value])) == .ok)
        }
        #expect(service.listeners[0].statistics.handshakeTimeouts == 2)
        await client.close()
        try await group.shutdownGracefully()
        await service.shutdown()
    }

    /// Many clients over one connection per replica: each slot's writes are answered by t + 1 matching
    /// replies, and what one slot wrote another reads back.
    @Test func multiplexedClientsShareConnectionsAndGetTheirOwnResults() async throws {
        let service = try await Service()
        let multiplexer = try ClientMultiplexer(
            endpoints: service.endpoints, faulty: 1, clusterIdentifier: service.cluster.configuration.clusterIdentifier,
            slots: 40, timeoutSeconds: 120)
        #expect(await multiplexer.connect() == 4)
        for round in UInt8(1)...3 {
            let futures = (0..<40).map { slot in
                multiplexer.execute(
                    slot: slot, operation: KeyValueStore.Operation.put(key: [UInt8(slot)], value: [round]).encoded)
            }
            for future in futures {
                #expect(try KeyValueStore.Result(encoded: try await future.get()) == .ok)
            }
        }
        // A slot with a request in flight refuses a second one.
        let first = multiplexer.execute(slot: 0, operation: KeyValueStore.Operation.get(key: [7]).encoded)
        await #expect(throws: SintraClient.Failure.busy) {
            try await multiplexer.execute(slot: 0, operation: KeyValueStore.Operation.get(key: [8]).encoded).get()
        }
        #expect(try KeyValueStore.Result(encoded: try await first.get()) == .value([3]))
        #expect(service.listeners.allSatisfy { $0.statistics.connections == 1 })
        await multiplexer.close()
        await service.shutdown()
    }
}
