import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SintraClient
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import Testing

@testable import SintraServer

/// Every request answered: refusals reach the client with their reason at once (not after its timeout), and
/// a request that comes after its execution gets the cached reply or a stale refusal. Four in-process
/// replicas with client listeners over real TLS; the clients' timeouts are long (120 s), so a refusal that
/// did not arrive would show as a timeout, not as a pass.
@Suite(.serialized) struct RefusalServiceTests {
    typealias Service = ClientTests.Service

    @Test func forgedAndOversizedRequestsFailFastWithTheirReason() async throws {
        let service = try await Service()
        // Signed for another cluster: every replica's signature check fails.
        let forger = try SintraClient(
            endpoints: service.endpoints, faulty: 1, clusterIdentifier: [UInt8](repeating: 0, count: 16),
            timeoutSeconds: 120)
        await #expect(throws: SintraClient.Failure.refused(.invalidSignature)) {
            try await forger.execute(.put(key: [1], value: [1]))
        }
        #expect(!SintraClient.Failure.refused(.invalidSignature).isRetryable)
        // A final refusal is not retried (the default policy retries only retryable ones).
        #expect(await forger.retryCount == 0)
        await forger.close()
        let client = try service.client(timeoutSeconds: 120)
        // Over the queues' request bound (64 KiB): refused by every replica before any signature check.
        await #expect(throws: SintraClient.Failure.refused(.tooLarge)) {
            try await client.execute(operation: [UInt8](repeating: 7, count: 100_000))
        }
        // Over what a replica reads at all: refused by the client itself.
        await #expect(throws: SintraClient.Failure.refused(.tooLarge)) {
            try await client.execute(operation: [UInt8](repeating: 7, count: ClientPorts.recordBytesMax))
        }
        // The same client goes on.
        #expect(try await client.execute(.put(key: [2], value: [2])) == .ok)
        // Every replica refused the oversized request; the forgery's first proposers refused it at once, the
        // others once it was overdue (`ReplicaNode.deferredPatience`).
        let refusedEverywhere = await eventually(within: 120) {
            service.listeners.allSatisfy { $0.statistics.refusedByReason == [.tooLarge: 1, .invalidSignature: 1] }
        }
        #expect(refusedEverywhere, "\(service.listeners.map { $0.statistics.refusedByReason })")
        // A request record that does not decode but names a key and a sequence number: its sender is told
        // (here the operation's length is over the bound: too large), then the connection is closed.
        let stranger = ClientKey.generate()
        let raw = try await RawClientConnection(to: service.endpoints[1])
        try await raw.send(bytes: [1] + stranger.publicKey + [0, 0, 0, 0, 0, 0, 0, 9] + [0xff, 0xff, 0xff, 0xff])
        #expect(
            try await raw.record(0) == .refusal(ClientRefusal(client: stranger.client, sequence: 9, reason: .tooLarge)))
        #expect(await eventually(within: 120) { service.listeners[1].statistics.malformedRecords == 1 })
        await raw.close()
        await client.close()
        await service.shutdown()
    }

    /// Queues that stay full: the client sends the request again as often as its policy allows (three sends
    /// here), then fails with the retryable refusal; the multiplexer's slots do the same.
    @Test func aFullQueueIsARetryableRefusal() async throws {
        var options = ReplicaNode.Options.testing
        options.broadcastLimits.pendingCountMax = 0
        let service = try await Service(nodeOptions: options)
        let policy = RetryPolicy(attemptsMax: 3, initialDelaySeconds: 0.01, delayMaxSeconds: 0.05)
        let client = try SintraClient(
            endpoints: service.endpoints, faulty: 1, clusterIdentifier: service.cluster.configuration.clusterIdentifier,
            timeoutSeconds: 120, retry: policy)
        do {
            _ = try await client.execute(.put(key: [1], value: [1]))
            Issue.record("a request was executed with every queue full")
        } catch let failure as SintraClient.Failure {
            #expect(failure == .refused(.queueFull))
            #expect(failure.isRetryable)
        }
        #expect(await client.retryCount == 2)
        await client.close()
        let multiplexer = try ClientMultiplexer(
            endpoints: service.endpoints, faulty: 1, clusterIdentifier: service.cluster.configuration.clusterIdentifier,
            slots: 2, timeoutSeconds: 120, retry: policy)
        #expect(await multiplexer.connect() == 4)
        let futures = (0..<2).map { slot in
            multiplexer.execute(slot: slot, operation: KeyValueStore.Operation.put(key: [UInt8(slot)], value: [1]).encoded)
        }
        for future in futures {
            await #expect(throws: SintraClient.Failure.refused(.queueFull)) { try await future.get() }
        }
        #expect(multiplexer.retryCount == 4)
        await multiplexer.close()
        await service.shutdown()
    }

    /// A request sent again after it was executed (a retry, or a slow connection) is answered with the
    /// cached reply, on its own connection; one older than the client's last is refused as stale; and
    /// replicas that shut down refuse as unavailable.
    @Test func aRequestThatComesAfterItsExecutionIsAnswered() async throws {
        let service = try await Service()
        let key = ClientKey.generate()
        // Two sends at most: the unavailable replicas at the end refuse every retry alike.
        let client = try SintraClient(
            endpoints: service.endpoints, faulty: 1, clusterIdentifier: service.cluster.configuration.clusterIdentifier,
            key: key, timeoutSeconds: 120, retry: RetryPolicy(attemptsMax: 2, initialDelaySeconds: 0.01))
        let operation = KeyValueStore.Operation.put(key: [1], value: [1]).encoded
        #expect(try await client.execute(operation: operation) == KeyValueStore.Result.ok.encoded)
        let sequence = await client.lastSequence
        // The same bytes again (signatures are deterministic), on a new connection to replica 1.
        let retry = key.request(
            clusterIdentifier: service.cluster.configuration.clusterIdentifier, sequence: sequence, operation: operation)
        let connection = try await RawClientConnection(to: service.endpoints[0])
        // t + 1 = 2 replies suffice: wait until replica 1 executed it too.
        #expect(await eventually(within: 120) { await service.cluster.nodes[0].executedCount >= 1 })
        try await connection.send(.request(retry))
        #expect(
            try await connection.record(0)
                == .reply(ClientReply(client: key.client, sequence: sequence, result: KeyValueStore.Result.ok.encoded)))
        #expect(service.listeners[0].statistics.cachedReplies == 1)
        #expect(try await client.execute(.get(key: [1])) == .value([1]))
        // Once replica 1 executed the get too, the put is older than the client's last request there.
        #expect(await eventually(within: 120) { await service.cluster.nodes[0].executedCount >= 2 })
        try await connection.send(.request(retry))
        #expect(
            try await connection.record(1)
                == .refusal(ClientRefusal(client: key.client, sequence: sequence, reason: .stale)))
        #expect(service.listeners[0].statistics.refusedByReason == [.stale: 1])
        await connection.close()
        // Two replicas shutting down (t + 1): the other two queue it and cannot order it alone.
        for node in service.cluster.nodes.suffix(2) { await node.shutdown() }
        await #expect(throws: SintraClient.Failure.refused(.unavailable)) {
            try await client.execute(.put(key: [1], value: [2]))
        }
        #expect(await client.retryCount == 1)
        await client.close()
        for listener in service.listeners { await listener.shutdown() }
        for node in service.cluster.nodes.prefix(2) { await node.shutdown() }
    }

    /// A Byzantine replica sees every client's signed request and can send a copy to the honest replicas on
    /// its own connections before the client's copy arrives. The client's connection still gets the replies:
    /// the same bytes as an authentic request route replies to every connection that sent them.
    @Test func aCopySentFirstOnAnotherConnectionDoesNotTakeTheReplies() async throws {
        let service = try await Service()
        let key = ClientKey.generate()
        let request = key.request(
            clusterIdentifier: service.cluster.configuration.clusterIdentifier, sequence: 1,
            operation: KeyValueStore.Operation.put(key: [5], value: [5]).encoded)
        var thief = [RawClientConnection]()
        var owner = [RawClientConnection]()
        for endpoint in service.endpoints {
            thief.append(try await RawClientConnection(to: endpoint))
            owner.append(try await RawClientConnection(to: endpoint))
        }
        for connection in thief { try await connection.send(.request(request)) }
        for connection in owner { try await connection.send(.request(request)) }
        let expected = ReplicaRecord.reply(
            ClientReply(client: key.client, sequence: 1, result: KeyValueStore.Result.ok.encoded))
        for (index, connection) in owner.enumerated() {
            #expect(try await connection.record(0) == expected, "replica \(index + 1)")
        }
        for connection in thief + owner { await connection.close() }
        await service.shutdown()
    }
}

/// A TLS connection to one replica's client port that sends records and keeps the replica's records in order.
final class RawClientConnection: Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Channel
    private let received = NIOLockedValueBox<[[UInt8]]>([])

    /// A connection to `endpoint`; `receiveBufferBytes` sets the socket's receive buffer (a small one keeps
    /// what the kernel holds for a client that stops reading small).
    init(to endpoint: SintraClient.Endpoint, receiveBufferBytes: Int? = nil) async throws {
        let context = try ClientPorts.clientContext()
        let received = self.received
        var bootstrap = ClientBootstrap(group: group)
        if let receiveBufferBytes {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferBytes))
        }
        channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        try ClientPorts.clientHandler(context: context, pinning: endpoint.identityKey),
                        ByteToMessageHandler(ClientRecordDecoder()), Collector(received: received))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
    }

    func send(_ record: ClientRecord) async throws {
        try await send(bytes: record.encoded)
    }

    /// Stops reading what the replica sends (a client that writes and does not read).
    func stopReading() async throws {
        try await channel.setOption(.autoRead, value: false)
    }

    /// Sends each of `records` as one record, flushed once.
    func send(records: [[UInt8]]) async throws {
        for bytes in records { channel.write(ClientRecordDecoder.record(bytes, allocator: channel.allocator), promise: nil) }
        try await channel.writeAndFlush(channel.allocator.buffer(capacity: 0))
    }

    /// Sends `bytes` as one record, whatever they are.
    func send(bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ClientRecordDecoder.record(bytes, allocator: channel.allocator))
    }

    /// The replica's `number`th record (from 0), waiting for it up to `seconds`; nil if none came.
    func record(_ number: Int, within seconds: Double = 120) async throws -> ReplicaRecord? {
        _ = await eventually(within: seconds) { self.received.withLockedValue { $0.count > number } }
        guard let bytes = received.withLockedValue({ $0.count > number ? $0[number] : nil }) else { return nil }
        return try ReplicaRecord(encoded: bytes)
    }

    /// Whether the replica closed the connection within `seconds`.
    func closedByReplica(within seconds: Double = 120) async -> Bool {
        await eventually(within: seconds) { !self.channel.isActive }
    }

    func close() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = [UInt8]
        let received: NIOLockedValueBox<[[UInt8]]>

        init(received: NIOLockedValueBox<[[UInt8]]>) {
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            received.withLockedValue { $0.append(bytes) }
        }
    }
}
