import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SintraCrypto
import SintraNetwork
import SintraReplica

/// A client of a SintraKV cluster: sends each request to every replica and accepts a result once t + 1
/// replicas sent the same one (`ReplyCollector`: at least one of them is honest).
///
/// Replicas that refuse a request say why (`ReplicaRecord.refusal`); the client gives up with
/// `Failure.refused(reason)` once t + 1 replicas refused for the same reason, or once so many refused that
/// t + 1 matching replies cannot come any more (`ReplyCollector` has the counting). One Byzantine
/// replica's false refusal, or t of them, leave it waiting for the others.
///
/// Requests are closed-loop: one at a time per client (a later request executed first would make an
/// earlier one stale at the replicas), so `execute` throws `.busy` if called while another is waiting.
public actor SintraClient {
    /// A replica as the client dials it.
    public struct Endpoint: Sendable {
        public let member: Int
        public let host: String
        public let port: Int
        public let identityKey: [UInt8]

        public init(member: Int, host: String, port: Int, identityKey: [UInt8]) {
            self.member = member
            self.host = host
            self.port = port
            self.identityKey = identityKey
        }
    }

    /// Why a request has no result.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// Fewer than t + 1 replicas sent the same reply in time.
        case timeout(seconds: Double, replies: Int, needed: Int)
        /// Another request of this client is waiting.
        case busy
        /// The result did not decode.
        case malformedResult(String)
        /// The replicas refused the request (t + 1 for this reason, or too many for a result to come). A
        /// retryable reason (`RefusalReason.isRetryable`: queue full, unavailable) means the request may still
        /// be executed, as after a timeout; a final one that it will not be. Also thrown as `.tooLarge`
        /// before sending a request longer than any replica reads (`ClientPorts.recordBytesMax`).
        case refused(RefusalReason)

        public var description: String {
            switch self {
            case .timeout(let seconds, let replies, let needed):
                "no result within \(seconds) s: \(replies) replicas answered, \(needed) matching replies needed "
                    + "(is a quorum of replicas running and reachable?)"
            case .busy: "another request of this client is in flight"
            case .malformedResult(let reason): "malformed result: \(reason)"
            case .refused(let reason): "refused by the replicas (\(reason.label)): " + Self.explain(reason)
            }
        }

        /// Whether trying again later may succeed: a timeout, or a retryable refusal.
        public var isRetryable: Bool {
            switch self {
            case .timeout, .busy: true
            case .malformedResult: false
            case .refused(let reason): reason.isRetryable
            }
        }

        /// What a refusal means for the user.
        public static func explain(_ reason: RefusalReason) -> String {
            switch reason {
            case .queueFull:
                "the replicas are overloaded (their queues are full); retry later (the request may still be executed)"
            case .unavailable:
                "the replicas are shutting down or stopped; retry later (the request may still be executed)"
            case .tooLarge: "the request is larger than the replicas accept; it was not executed"
            case .invalidSignature:
                "its signature does not verify for this cluster (is cluster.json the cluster's?); it was not executed"
            case .invalidPublicKey: "the client's public key is invalid; it was not executed"
            case .malformed: "the request does not decode at the replicas (another version?); it was not executed"
            case .stale:
                "this client's key already executed a later request (sequence numbers went back: a key file "
                    + "used from two places, or the clock moved back?); it was not executed"
            }
        }
    }

    public let endpoints: [Endpoint]
    public let faulty: Int
    public let timeoutSeconds: Double
    /// The cluster the requests are signed for.
    public let clusterIdentifier: [UInt8]
    /// The key requests are signed with.
    public let key: ClientKey
    /// The identifier derived from `key`'s public key, which replies carry.
    public let client: [UInt8]
    /// The last sequence number used. It starts at the wall clock in microseconds, so a client that reuses
    /// its key (`sintra client --key`) in a later run continues above the sequence numbers it used before
    /// (replicas treat a request at or below a client's last executed sequence as a repeat).
    private var sequence = UInt64(Date().timeIntervalSince1970 * 1_000_000)
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let sslContext: NIOSSLContext
    private var channels: [Int: Channel] = [:]
    private var waiting: (collector: ReplyCollector, continuation: CheckedContinuation<[UInt8], Error>)?

    /// A client of the cluster in `configuration` (cluster.json), dialing each member's client port and
    /// signing with `key` (by default a fresh key, so a fresh client identity, per client).
    public init(configuration: ClusterConfiguration, key: ClientKey = .generate(), timeoutSeconds: Double = 5)
        throws
    {
        try self.init(
            endpoints: configuration.members.map {
                Endpoint(member: $0.index, host: $0.host, port: ClientPorts.port(of: $0), identityKey: $0.identityKey)
            },
            faulty: configuration.faulty, clusterIdentifier: configuration.clusterIdentifier, key: key,
            timeoutSeconds: timeoutSeconds)
    }

    public init(
        endpoints: [Endpoint], faulty: Int, clusterIdentifier: [UInt8], key: ClientKey = .generate(),
        timeoutSeconds: Double = 5
    ) throws {
        self.endpoints = endpoints
        self.faulty = faulty
        self.clusterIdentifier = clusterIdentifier
        self.key = key
        self.timeoutSeconds = timeoutSeconds
        self.client = key.client
        self.sslContext = try ClientPorts.clientContext()
    }

    /// Runs one key-value operation and returns its result.
    public func execute(_ operation: KeyValueStore.Operation) async throws -> KeyValueStore.Result {
        let bytes = try await execute(operation: operation.encoded)
        do {
            return try KeyValueStore.Result(encoded: bytes)
        } catch {
            throw Failure.malformedResult(error.description)
        }
    }

    /// The sequence number of the last request sent (before the first: the start value, the wall clock in
    /// microseconds).
    public var lastSequence: UInt64 { sequence }

    /// Runs one application operation and returns the result t + 1 replicas agree on.
    public func execute(operation: [UInt8]) async throws -> [UInt8] {
        guard waiting == nil else { throw Failure.busy }
        sequence += 1
        let request = key.request(clusterIdentifier: clusterIdentifier, sequence: sequence, operation: operation)
        let record = ClientRecord.request(request).encoded
        // A replica closes the connection on a longer record without reading it: nobody would answer.
        guard record.count <= ClientPorts.recordBytesMax else { throw Failure.refused(.tooLarge) }
        await connectMissing()
        let current = sequence
        return try await withCheckedThrowingContinuation { continuation in
            waiting = (ReplyCollector(faulty: faulty, sequence: current, replicas: endpoints.count), continuation)
            for channel in channels.values {
                channel.writeAndFlush(ClientRecordDecoder.record(record, allocator: channel.allocator), promise: nil)
            }
            Task { [timeoutSeconds] in
                try? await Task.sleep(for: .seconds(timeoutSeconds))
                self.expire(sequence: current)
            }
        }
    }

    /// Closes every connection.
    public func close() async {
        for channel in channels.values { try? await channel.close() }
        channels = [:]
        try? await group.shutdownGracefully()
    }

    private func expire(sequence expired: UInt64) {
        guard let waiting, waiting.collector.sequence == expired else { return }
        self.waiting = nil
        waiting.continuation.resume(
            throwing: Failure.timeout(seconds: timeoutSeconds, replies: waiting.collector.replyCount, needed: faulty + 1))
    }

    fileprivate func received(_ bytes: [UInt8], from member: Int) {
        guard var current = waiting else { return }
        let verdict: ReplyCollector.Verdict?
        switch try? ReplicaRecord(encoded: bytes) {
        case .reply(let reply)? where reply.client == client:
            verdict = current.collector.add(reply, from: member).map { .accepted($0) }
        case .refusal(let refusal)? where refusal.client == client:
            verdict = current.collector.add(refusal, from: member)
        default:
            return
        }
        switch verdict {
        case .accepted(let result)?:
            waiting = nil
            current.continuation.resume(returning: result)
        case .refused(let reason)?:
            waiting = nil
            current.continuation.resume(throwing: Failure.refused(reason))
        case nil:
            waiting = current
        }
    }

    fileprivate func disconnected(_ member: Int, channel: Channel) {
        if channels[member] === channel { channels[member] = nil }
    }

    /// Dials every replica without an open connection, in parallel; failures are left for the next request.
    private func connectMissing() async {
        var attempts: [(Int, EventLoopFuture<Channel>)] = []
        for endpoint in endpoints where channels[endpoint.member]?.isActive != true {
            let member = endpoint.member
            let bootstrap = ClientBootstrap(group: group)
                .connectTimeout(.seconds(1))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { [sslContext] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            try ClientPorts.clientHandler(context: sslContext, pinning: endpoint.identityKey),
                            ByteToMessageHandler(ClientRecordDecoder()),
                            ReplyHandler(client: self, member: member))
                    }
                }
            attempts.append((member, bootstrap.connect(host: endpoint.host, port: endpoint.port)))
        }
        for (member, attempt) in attempts {
            if let channel = try? await attempt.get() {
                channels[member] = channel
            }
        }
    }
}

private final class ReplyHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = [UInt8]

    let client: SintraClient
    let member: Int

    init(client: SintraClient, member: Int) {
        self.client = client
        self.member = member
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let (client, member) = (self.client, self.member)
        Task { await client.received(bytes, from: member) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let (client, member, channel) = (self.client, self.member, context.channel)
        Task { await client.disconnected(member, channel: channel) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
