import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SintraCore
import SintraCrypto

/// The network of one replica: reliable, authenticated FIFO links to every other member of the cluster.
///
/// Every pair of replicas talks over TCP with mutually authenticated TLS 1.3, each side pinning the other's
/// Ed25519 identity key from cluster.json (`PeerAuthentication`, `IdentityCertificate`). On top, each
/// ordered pair (i → j) has a reliable FIFO link: i dials j, numbers its frames, keeps them until j
/// acknowledges them, and after a dropped connection or a restart of j sends again what j has not
/// delivered; j delivers every frame once and in order (`OutboundLink`, `InboundLinks`). A peer that sends
/// bytes that do not parse, breaks the link protocol, or presents an unknown key is disconnected, counted in
/// `statistics` and logged; nothing it sends can crash the process.
///
/// ```swift
/// let network = try ReplicaNetwork(configuration: cluster, identity: identity)
/// try await network.start()
/// network.broadcast(frame)
/// for await received in network.frames { … }
/// await network.shutdown()
/// ```
///
/// Delivery means the frame was handed to `frames`, and is what the peer acknowledges: a frame delivered just
/// before this process dies is lost with it, as are the frames a sender had queued when it died. Recovering
/// from that is the replica layer's job (persisted votes, state transfer).
///
/// Call `shutdown()` before dropping the network: it owns event loop threads.
public final class ReplicaNetwork: Sendable {
    /// Limits and timings. Every queue has a named maximum (STYLE.md).
    public struct Options: Sendable {
        /// Frames queued per peer and not yet acknowledged; `send` reports `.queueFull` beyond.
        public var sendQueueMessagesMax = 16_384
        /// Bytes of frames queued per peer and not yet acknowledged; `send` reports `.queueFull` beyond.
        public var sendQueueBytesMax = 64 << 20
        /// Frames received and not yet taken from `frames`. When it is full, a connection that has another
        /// frame is closed without delivering it; its sender sends it again after reconnecting.
        public var inboundFramesMax = 65_536
        /// Accepted connections open at once, authenticated or not. Honest peers need n − 1.
        public var inboundConnectionsMax = 256
        /// The first delay before redialing a peer; it doubles with every failure in a row.
        public var reconnectDelayMinimum = TimeAmount.milliseconds(50)
        /// The longest delay before redialing a peer.
        public var reconnectDelayMaximum = TimeAmount.seconds(5)
        /// How long a TCP connect may take.
        public var connectTimeout = TimeAmount.seconds(3)
        /// How long a receiver may wait before acknowledging delivered frames. Acknowledgements only let the
        /// sender drop frames from its queue, so one per burst of reads (a TLS record and a `write` each, about
        /// as many as the data writes themselves) is waste: a receiver acknowledges once this delay after the
        /// first unacknowledged delivery, or at once when `acknowledgementFramesMax` frames wait. The sender's
        /// queue then holds about a delay's worth of frames more; zero acknowledges every read burst.
        public var acknowledgementDelay = TimeAmount.milliseconds(10)
        /// Delivered frames after which a receiver acknowledges without waiting for `acknowledgementDelay`;
        /// far below `sendQueueMessagesMax`, so a sender never stalls on a delayed acknowledgement.
        public var acknowledgementFramesMax = 512
        /// How long TLS plus the hello exchange may take before the connection is closed.
        public var handshakeTimeout = TimeAmount.seconds(5)
        /// Threads of the event loop group.
        public var eventLoopThreads = 1
        /// The address to listen on; nil listens on the member's own host from the configuration.
        public var listenHost: String?
        /// Where the network logs refusals, faults and reconnects.
        public var logger = Logger(label: "sintra.network")

        public init() {}
    }

    /// The result of `send`.
    public enum SendOutcome: Sendable, Equatable {
        /// The frame is queued and will reach the peer once a connection to it stands.
        case queued
        /// The peer's send queue is full (backpressure); the frame was not queued.
        case queueFull
    }

    /// Frames from every member, in per-sender FIFO order, including those this replica sent itself. It has
    /// one consumer; frames wait in it up to `Options.inboundFramesMax`.
    public let frames: AsyncStream<ReceivedFrame>
    /// The local member index.
    public let localMember: Int
    /// The certificate this replica presents.
    public let credentials: IdentityCertificate

    private let context: LinkContext
    private let group: MultiThreadedEventLoopGroup
    private let links: [OutboundLink?]
    private let inbound: InboundLinks
    private let continuation: AsyncStream<ReceivedFrame>.Continuation
    private let server = NIOLockedValueBox<Channel?>(nil)
    private let inboundConnections = NIOLockedValueBox(0)

    /// A network for the member of `identity` in `configuration` (cluster.json).
    public convenience init(
        configuration: ClusterConfiguration, identity: NodeIdentity, options: Options = Options()
    ) throws {
        try self.init(
            members: configuration.members, clusterIdentifier: configuration.clusterIdentifier, identity: identity,
            options: options)
    }

    /// A network for the member of `identity` among `members` (member i at position i − 1).
    ///
    /// - Throws: `IdentityCertificateError` if the identity does not match its member's key, or TLS refuses
    ///   the configuration.
    public init(
        members: [ClusterMember], clusterIdentifier: [UInt8], identity: NodeIdentity, options: Options = Options()
    ) throws {
        precondition(clusterIdentifier.count == 16, "cluster identifiers are 16 bytes")
        precondition(members.enumerated().allSatisfy { $0.offset + 1 == $0.element.index }, "members out of order")
        guard (1...members.count).contains(identity.index),
            members[identity.index - 1].identityKey == identity.publicKey.bytes
        else {
            throw IdentityCertificateError("identity \(identity.index) does not hold its member's key")
        }
        let credentials = try IdentityCertificate(identity: identity, clusterIdentifier: clusterIdentifier)
        let sslContext = try NIOSSLContext(configuration: PeerAuthentication.configuration(credentials: credentials))
        var logger = options.logger
        logger[metadataKey: "member"] = "\(identity.index)"
        let context = LinkContext(
            localMember: identity.index, clusterIdentifier: clusterIdentifier,
            incarnation: UInt64.random(in: 1...UInt64.max), members: members, options: options,
            sslContext: sslContext,
            authentication: PeerAuthentication(members: members, localMember: identity.index),
            statistics: NetworkStatisticsBox(), logger: logger)
        let (frames, continuation) = AsyncStream<ReceivedFrame>.makeStream(
            bufferingPolicy: .bufferingOldest(options.inboundFramesMax))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.eventLoopThreads))
        self.frames = frames
        self.continuation = continuation
        self.localMember = identity.index
        self.credentials = credentials
        self.context = context
        self.group = group
        self.links = members.map { member in
            member.index == identity.index ? nil : OutboundLink(peer: member, eventLoop: group.next(), context: context)
        }
        self.inbound = InboundLinks(context: context, continuation: continuation)
    }

    /// Counters of refusals, faults and reconnects since start.
    public var statistics: NetworkStatistics { context.statistics.snapshot }

    /// The port the listener is bound to, once started.
    public var listeningPort: Int? {
        server.withLockedValue { $0?.localAddress?.port }
    }

    /// Binds the listener at the member's address and starts dialing every peer.
    public func start() async throws {
        let me = context.members[localMember - 1]
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                self.initializeAccepted(channel)
            }
            .bind(host: context.options.listenHost ?? me.host, port: me.port)
            .get()
        server.withLockedValue { $0 = channel }
        context.logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        for link in links {
            link?.start()
        }
    }

    private func initializeAccepted(_ channel: Channel) -> EventLoopFuture<Void> {
        let context = self.context
        let inbound = self.inbound
        let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
        let admitted = inboundConnections.withLockedValue { count in
            guard count < context.options.inboundConnectionsMax else { return false }
            count += 1
            return true
        }
        guard admitted else {
            context.statistics.record(\.refusedConnections)
            context.logger.warning("refusing connection: too many open", metadata: ["remote": "\(remote)"])
            return channel.close()
        }
        channel.closeFuture.whenComplete { [inboundConnections] _ in
            inboundConnections.withLockedValue { $0 -= 1 }
        }
        return channel.eventLoop.makeCompletedFuture {
            let slot = PeerSlot()
            let verification = context.authentication.verificationCallback(
                expected: nil, peer: slot, statistics: context.statistics, logger: context.logger, remote: remote)
            let tls = NIOSSLServerHandler(context: context.sslContext, customVerificationCallback: verification)
            try channel.pipeline.syncOperations.addHandlers(
                tls, ByteToMessageHandler(LinkRecordDecoder()),
                InboundConnectionHandler(links: inbound, context: context, slot: slot))
        }
    }

    /// Queues `frame` for `member`, or delivers it to `frames` at once when `member` is the local replica.
    ///
    /// The frame must come from this replica (its `sender` is `localMember`), carry this cluster's
    /// identifier and encode to at most `Frame.frameBytesMax` bytes; anything else is
    /// a local bug and traps. Frames to one member arrive in the order of the `send` calls of one task or thread.
    @discardableResult
    public func send(_ frame: Frame, to member: Int) -> SendOutcome {
        precondition(frame.sender == localMember, "frames are sent by the local member")
        precondition(frame.clusterIdentifier == context.clusterIdentifier, "frame of another cluster")
        precondition((1...context.members.count).contains(member), "member \(member) out of range")
        guard let link = links[member - 1] else {
            return inbound.deliverLocally(frame) ? .queued : .queueFull
        }
        let encoded = frame.encoded
        precondition(encoded.count <= Frame.frameBytesMax, "frame exceeds Frame.frameBytesMax")
        return link.send(encoded) ? .queued : .queueFull
    }

    /// Sends `frame` to every member, the local one included; returns the members whose queue was full.
    @discardableResult
    public func broadcast(_ frame: Frame) -> [Int] {
        precondition(frame.sender == localMember, "frames are sent by the local member")
        precondition(frame.clusterIdentifier == context.clusterIdentifier, "frame of another cluster")
        let encoded = frame.encoded
        precondition(encoded.count <= Frame.frameBytesMax, "frame exceeds Frame.frameBytesMax")
        var refused = [Int]()
        for member in 1...context.members.count {
            let accepted =
                if let link = links[member - 1] { link.send(encoded) } else { inbound.deliverLocally(frame) }
            if !accepted { refused.append(member) }
        }
        return refused
    }

    /// Frames queued for `member` and not yet acknowledged.
    public func queuedFrames(to member: Int) -> Int {
        links[member - 1]?.queuedMessages ?? 0
    }

    /// Closes every connection (not the listener); links redial and resend what was not acknowledged. For
    /// tests of lost connections.
    func dropConnections() async {
        var closing = links.compactMap { $0?.dropConnection() }
        closing += inbound.closeAll()
        for future in closing {
            try? await future.get()
        }
    }

    /// Stops dialing, closes the listener and every connection, finishes `frames` and stops the threads.
    public func shutdown() async {
        var closing = links.compactMap { $0?.stop() }
        if let server = server.withLockedValue({ $0 }) {
            closing.append(server.close().recover { _ in })
        }
        closing += inbound.closeAll()
        for future in closing {
            try? await future.get()
        }
        continuation.finish()
        try? await group.shutdownGracefully()
    }
}
