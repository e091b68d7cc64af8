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
/// Replicas that refuse a request say why (`ReplicaRecord.refusal`); the refusals decide once t + 1
/// replicas refused for the same reason, or once so many refused that t + 1 matching replies cannot come any
/// more (`ReplyCollector` has the counting). One Byzantine replica's false refusal, or t of them, leave it
/// waiting for the others. A final reason fails the request at once with `Failure.refused(reason)`; a
/// retryable one (queue-full, unavailable, overloaded) makes the client send the same signed request again
/// after a jittered, growing pause (`RetryPolicy`), as long as the request's timeout allows, and fail with
/// the last such refusal only then. `retryCount` counts the resends.
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
        /// retryable reason (`RefusalReason.isRetryable`: queue full, unavailable, overloaded) comes after the
        /// retries the `RetryPolicy` and the timeout allowed, and means the request may still be executed, as
        /// after a timeout; a final one that it will not be. Also thrown as `.tooLarge` before sending a
        /// request longer than any replica reads (`ClientPorts.recordBytesMax`).
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
            case .overloaded:
                "the replicas serve as many requests on this connection, or as many clients, as they take at "
                    + "once; retry later (the request may still be executed)"
            case .tooLarge: "the request is larger than the replicas accept; it was not executed"
            case .invalidSignature:
                "its signature does not verify for this cluster (is cluster.json the cluster's?); it was not executed"
            case .invalidPublicKey: "the client's public key is invalid; it was not executed"
            case .malformed: "the request does not decode at the replicas (another version?); it was not executed"
            case .stale:
                "this client's key already executed a later request (sequence numbers went back: a key file "
                    + "used from two places, or the clock moved back?); it was not executed"
            case .replyNotKept:
                "the request was executed, but its result was longer than the replicas keep for sending again "
                    + "and the first replies were lost (read the state to see its effect)"
            }
        }
    }

    public let endpoints: [Endpoint]
    public let faulty: Int
    /// The time a request has for its result, its retries included.
    public let timeoutSeconds: Double
    /// How requests refused for a retryable reason are sent again.
    public let retry: RetryPolicy
    /// Requests sent again after retryable refusals, since the client started.
    public private(set) var retryCount = 0
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
    private var waiting: Waiting?

    /// The request waiting for its result.
    private struct Waiting {
        var collector: ReplyCollector
        let continuation: CheckedContinuation<[UInt8], Error>
        /// The encoded `ClientRecord`, sent again as it is on a retry.
        let record: [UInt8]
        let deadline: ContinuousClock.Instant
        /// Sends so far, the first included.
        var attempts = 1
        /// A resend is scheduled: further retryable verdicts until it goes out schedule no other.
        var retryScheduled = false
        /// The reason of the last retryable verdict, thrown if the timeout comes first.
        var lastRefusal: RefusalReason?
    }

    /// A client of the cluster in `configuration` (cluster.json), dialing each member's client port and
    /// signing with `key` (by default a fresh key, so a fresh client identity, per client).
    public init(
        configuration: ClusterConfiguration, key: ClientKey = .generate(), timeoutSeconds: Double = 5,
        retry: RetryPolicy = .default
    ) throws {
        try self.init(
            endpoints: configuration.members.map {
                Endpoint(member: $0.index, host: $0.host, port: ClientPorts.port(of: $0), identityKey: $0.identityKey)
            },
            faulty: configuration.faulty, clusterIdentifier: configuration.clusterIdentifier, key: key,
            timeoutSeconds: timeoutSeconds, retry: retry)
    }

    public init(
        endpoints: [Endpoint], faulty: Int, clusterIdentifier: [UInt8], key: ClientKey = .generate(),
        timeoutSeconds: Double = 5, retry: RetryPolicy = .default
    ) throws {
        self.endpoints = endpoints
        self.faulty = faulty
        self.clusterIdentifier = clusterIdentifier
        self.key = key
        self.timeoutSeconds = timeoutSeconds
        self.retry = retry
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
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        return try await withCheckedThrowingContinuation { continuation in
            waiting = Waiting(
                collector: ReplyCollector(faulty: faulty, sequence: current, replicas: endpoints.count),
                continuation: continuation, record: record, deadline: deadline)
            for channel in channels.values {
                channel.writeAndFlush(ClientRecordDecoder.record(record, allocator: channel.allocator), promise: nil)
            }
            Task { [timeoutSeconds] in
                try? await Task.sleep(for: .seconds(timeoutSeconds))
                self.expire(sequence: current)
            }
            Task { await self.redial(whileWaitingFor: current) }
        }
    }

    /// While request `sequence` waits, redials every second the replicas whose connection dropped or could
    /// not be made; `connectMissing` sends the request on each new connection. A replica routes a client's
    /// replies only to connections that sent it the client's request, so without this a replica that
    /// restarted mid-request would execute the request and never answer it (with t + 1 such replicas the
    /// request would time out).
    private func redial(whileWaitingFor sequence: UInt64) async {
        while true {
            try? await Task.sleep(for: .seconds(1))
            guard let current = waiting, current.collector.sequence == sequence else { return }
            await connectMissing()
        }
    }

    /// Sends the waiting request `sequence` again, after a pause, to every replica that has not replied
    /// (redialing dropped connections first: a new connection must carry the request for its replies to
    /// be routed to it). Replicas that refused it for a retryable reason count afresh.
    private func resend(sequence resent: UInt64) async {
        guard let current = waiting, current.collector.sequence == resent else { return }
        let reached = await connectMissing()
        guard var current = waiting, current.collector.sequence == resent else { return }
        current.collector.forgetRetryableRefusals()
        current.attempts += 1
        current.retryScheduled = false
        waiting = current
        retryCount += 1
        for (member, channel) in channels where !current.collector.hasReplied(member) && !reached.contains(member) {
            channel.writeAndFlush(ClientRecordDecoder.record(current.record, allocator: channel.allocator), promise: nil)
        }
    }

    /// Closes every connection.
    public func close() async {
        for channel in channels.values { try? await channel.close() }
        channels = [:]
        try? await group.shutdownGracefully()
    }

    /// Ends the request `expired` at its timeout: with its last retryable refusal if it had one (the
    /// replicas said why), else as a timeout.
    private func expire(sequence expired: UInt64) {
        guard let waiting, waiting.collector.sequence == expired else { return }
        self.waiting = nil
        if let reason = waiting.lastRefusal {
            waiting.continuation.resume(throwing: Failure.refused(reason))
        } else {
            waiting.continuation.resume(
                throwing: Failure.timeout(
                    seconds: timeoutSeconds, replies: waiting.collector.replyCount, needed: faulty + 1))
        }
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
        case .refused(let reason)? where reason.isRetryable:
            waiting = current
            scheduleRetry(after: reason)
        case .refused(let reason)?:
            waiting = nil
            current.continuation.resume(throwing: Failure.refused(reason))
        case nil:
            waiting = current
        }
    }

    /// The waiting request was refused for a retryable `reason`: schedules its resend if the policy and the
    /// timeout allow one and none is scheduled, else fails it with the refusal.
    private func scheduleRetry(after reason: RefusalReason) {
        guard var current = waiting else { return }
        current.lastRefusal = reason
        if current.retryScheduled {
            waiting = current
            return
        }
        let remaining = ContinuousClock.now.duration(to: current.deadline)
        let remainingSeconds = Double(remaining.components.seconds) + Double(remaining.components.attoseconds) / 1e18
        guard let delay = retry.delaySeconds(afterAttempts: current.attempts, remainingSeconds: remainingSeconds)
        else {
            waiting = nil
            current.continuation.resume(throwing: Failure.refused(reason))
            return
        }
        current.retryScheduled = true
        waiting = current
        let sequence = current.collector.sequence
        Task {
            try? await Task.sleep(for: .seconds(delay))
            await self.resend(sequence: sequence)
        }
    }

    fileprivate func disconnected(_ member: Int, channel: Channel) {
        if channels[member] === channel { channels[member] = nil }
    }

    /// Dials every replica without an open connection, in parallel; failures are left for the next request
    /// or redial. A waiting request is sent on each new connection its replica has not answered it on; the
    /// members it was sent to this way are returned.
    @discardableResult
    private func connectMissing() async -> Set<Int> {
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
        var reached = Set<Int>()
        for (member, attempt) in attempts {
            guard let channel = try? await attempt.get() else { continue }
            channels[member] = channel
            if let waiting, !waiting.collector.hasReplied(member) {
                channel.writeAndFlush(ClientRecordDecoder.record(waiting.record, allocator: channel.allocator), promise: nil)
                reached.insert(member)
            }
        }
        return reached
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
