import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SintraCrypto
import SintraNetwork
import SintraReplica

/// Asks replicas for their `ReplicaStatus` over their client ports (TLS, each replica's key pinned), for
/// `sintra status`. A query needs no client key: the status is read-only.
public enum StatusProbe {
    /// One replica's answer, or why there is none.
    public struct Answer: Sendable {
        public let member: Int
        /// The status, or nil if the replica was unreachable or did not answer in time.
        public let status: ReplicaStatus?
        /// Why there is no status.
        public let failure: String?
    }

    /// Queries every endpoint in parallel and waits at most `timeoutSeconds` for each; answers are in
    /// endpoint order.
    public static func query(_ endpoints: [SintraClient.Endpoint], timeoutSeconds: Double) async -> [Answer] {
        guard let context = try? ClientPorts.clientContext() else {
            return endpoints.map { Answer(member: $0.member, status: nil, failure: "no TLS context") }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let futures = endpoints.map { query($0, group: group, context: context, timeoutSeconds: timeoutSeconds) }
        var answers = [Answer]()
        for (endpoint, future) in zip(endpoints, futures) {
            do {
                answers.append(Answer(member: endpoint.member, status: try await future.get(), failure: nil))
            } catch {
                answers.append(Answer(member: endpoint.member, status: nil, failure: "\(error)"))
            }
        }
        try? await group.shutdownGracefully()
        return answers
    }

    private static func query(
        _ endpoint: SintraClient.Endpoint, group: EventLoopGroup, context: NIOSSLContext, timeoutSeconds: Double
    ) -> EventLoopFuture<ReplicaStatus> {
        let loop = group.next()
        let promise = loop.makePromise(of: ReplicaStatus.self)
        let timeout = TimeAmount.milliseconds(Int64(timeoutSeconds * 1000))
        let deadline = loop.scheduleTask(in: timeout) { promise.fail(StatusFailure.timeout(seconds: timeoutSeconds)) }
        let connection = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        try ClientPorts.clientHandler(context: context, pinning: endpoint.identityKey),
                        ByteToMessageHandler(ClientRecordDecoder()), StatusHandler(promise: promise))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
        connection.whenSuccess { channel in
            channel.writeAndFlush(
                ClientRecordDecoder.record(ClientRecord.statusQuery.encoded, allocator: channel.allocator),
                promise: nil)
        }
        connection.whenFailure { promise.fail($0) }
        promise.futureResult.whenComplete { _ in
            deadline.cancel()
            connection.whenSuccess { $0.close(promise: nil) }
        }
        return promise.futureResult
    }
}

/// Why a status query failed.
public enum StatusFailure: Error, Sendable, CustomStringConvertible {
    case timeout(seconds: Double)
    case closed
    case malformed

    public var description: String {
        switch self {
        case .timeout(let seconds): "no status within \(seconds) s"
        case .closed: "connection closed before a status arrived"
        case .malformed: "malformed status record"
        }
    }
}

private final class StatusHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = [UInt8]

    let promise: EventLoopPromise<ReplicaStatus>

    init(promise: EventLoopPromise<ReplicaStatus>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .status(let status)? = try? ReplicaRecord(encoded: unwrapInboundIn(data)) {
            promise.succeed(status)
        } else {
            promise.fail(StatusFailure.malformed)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(StatusFailure.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
