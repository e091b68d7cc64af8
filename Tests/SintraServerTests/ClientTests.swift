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

        /// A multiplexer of `slots` clients over every replica.
        func multiplexer(slots: Int) throws -> ClientMultiplexer {
            try ClientMultiplexer(
                endpoints: endpoints, faulty: 1, clusterIdentifier: cluster.configuration.clusterIdentifier,
                slots: slots, timeoutSeconds: 120)
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
        let multiplexer = try service.multiplexer(slots: 40)
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

    /// Callers sharing two signing clients through an `OperationBatcher`: every operation gets its own result,
    /// in its own order, and the operations travel in fewer requests than there are operations.
    @Test func batchedOperationsAreAnsweredEachWithItsOwnResult() async throws {
        let service = try await Service()
        let multiplexer = try service.multiplexer(slots: 2)
        #expect(await multiplexer.connect() == 4)
        let batcher = OperationBatcher(multiplexer: multiplexer, format: KeyValueStore.Batching())
        func key(_ index: Int) -> [UInt8] { Array("key-\(index)".utf8) }
        let puts = (0..<300).map { index in
            batcher.execute(KeyValueStore.Operation.put(key: key(index), value: [UInt8(index % 256), 1]).encoded)
        }
        for future in puts { #expect(try KeyValueStore.Result(encoded: try await future.get()) == .ok) }
        // Each caller's get, a compare-and-swap and a scan (which goes alone) in one burst.
        let gets = (0..<300).map { index in batcher.execute(KeyValueStore.Operation.get(key: key(index)).encoded) }
        let swap = batcher.execute(
            KeyValueStore.Operation.compareAndSwap(key: key(7), expected: [7, 1], new: [70]).encoded)
        let scan = batcher.execute(KeyValueStore.Operation.scan(from: key(10), to: key(12), limit: 10).encoded)
        for (index, future) in gets.enumerated() {
            #expect(try KeyValueStore.Result(encoded: try await future.get()) == .value([UInt8(index % 256), 1]))
        }
        #expect(try KeyValueStore.Result(encoded: try await swap.get()) == .ok)
        let entries = try KeyValueStore.Result(encoded: try await scan.get())
        // Keys in byte order: "key-10", "key-100" … "key-108" are the first ten of ["key-10", "key-12").
        let scanned: [(key: [UInt8], value: [UInt8])] =
            [(key(10), [10, 1])] + (100...108).map { (key: key($0), value: [UInt8($0), 1]) }
        #expect(entries == .entries(scanned))
        let counts = try await batcher.counts().get()
        #expect(counts.operations == 602)
        #expect(counts.requests < counts.operations / 4, "operations did not share requests: \(counts)")
        #expect(try await batcher.execute(.get(key: key(7))) == .value([70]))
        await multiplexer.close()
        await service.shutdown()
    }

    /// Replicas configured with a lower request limit than the batcher assumes refuse its batches
    /// `.tooLarge`: the batcher sends the same operations again in smaller batches, and every one is answered;
    /// past its queue bound, an operation fails `.busy` at once.
    @Test func batchesRefusedAsTooLargeAreSplitAndQueueingIsBounded() async throws {
        var nodeOptions = ReplicaNode.Options.testing
        nodeOptions.broadcastLimits.requestBytesMax = 2048
        let service = try await Service(nodeOptions: nodeOptions)
        let multiplexer = try service.multiplexer(slots: 1)
        #expect(await multiplexer.connect() == 4)
        let batcher = OperationBatcher(
            multiplexer: multiplexer, format: KeyValueStore.Batching(), pendingMax: 400, requestBytesMax: 64 << 10)
        let value = [UInt8](repeating: 3, count: 64)
        let (futures, overflow) = try await batcher.eventLoop.submit {
            let futures = (0..<400).map { index in
                batcher.execute(KeyValueStore.Operation.put(key: [UInt8(index % 256), UInt8(index / 256)], value: value).encoded)
            }
            // The first went out alone at once; 399 wait, and the bound is 400.
            let admitted = batcher.execute(KeyValueStore.Operation.get(key: [0, 0]).encoded)
            let overflow = batcher.execute(KeyValueStore.Operation.get(key: [1, 0]).encoded)
            return (futures + [admitted], overflow)
        }.get()
        await #expect(throws: SintraClient.Failure.busy) { try await overflow.get() }
        for future in futures.dropLast() { #expect(try KeyValueStore.Result(encoded: try await future.get()) == .ok) }
        #expect(try KeyValueStore.Result(encoded: try await futures.last!.get()) == .value(value))
        let limit = try await batcher.eventLoop.submit { batcher.requestBytesMax }.get()
        #expect(limit <= 2048)
        let counts = try await batcher.counts().get()
        #expect(counts.requests > 10 && counts.requests < counts.operations)
        await multiplexer.close()
        await service.shutdown()
    }

    /// A closed multiplexer fails each request at once: thousands of waiting operations, one per request, all
    /// fail `.busy`, none is left waiting, and each went out in a request of its own.
    @Test func aClosedMultiplexerFailsEveryWaitingOperation() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let multiplexer = try ClientMultiplexer(
            endpoints: [
                SintraClient.Endpoint(member: 1, host: "127.0.0.1", port: 1, identityKey: [UInt8](repeating: 0, count: 32))
            ],
            faulty: 0, clusterIdentifier: [UInt8](repeating: 1, count: 32), slots: 1, timeoutSeconds: 5,
            eventLoop: group.next())
        await multiplexer.close()
        let batcher = OperationBatcher(
            multiplexer: multiplexer, format: KeyValueStore.Batching(), operationsPerRequestMax: 1)
        let futures = try await batcher.eventLoop.submit {
            (0..<20_000).map { index in
                batcher.execute(KeyValueStore.Operation.put(key: [UInt8(index % 256)], value: []).encoded)
            }
        }.get()
        for future in futures {
            await #expect(throws: SintraClient.Failure.busy) { try await future.get() }
        }
        let counts = try await batcher.counts().get()
        #expect(counts.requests == 20_000 && counts.operations == 20_000)
        try await group.shutdownGracefully()
    }
}
