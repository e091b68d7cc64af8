import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SintraCrypto

/// What every link of one `ReplicaNetwork` shares.
struct LinkContext: Sendable {
    let localMember: Int
    let clusterIdentifier: [UInt8]
    /// Random per start; see `LinkRecord.Hello.incarnation`.
    let incarnation: UInt64
    let members: [ClusterMember]
    let options: ReplicaNetwork.Options
    let sslContext: NIOSSLContext
    let authentication: PeerAuthentication
    let statistics: NetworkStatisticsBox
    let logger: Logger
}

/// The sending half of the reliable FIFO link from the local replica to one peer.
///
/// Messages get sequence numbers 1, 2, 3, … and stay in a bounded queue until the peer acknowledges them
/// (cumulatively). The link dials the peer, and redials with exponential backoff whenever the connection
/// fails or drops; on every new connection it says `hello` with the oldest sequence number it still holds,
/// the peer answers with how far it has delivered, and the link sends everything after that again. So a
/// dropped connection or a restart of the peer loses nothing the link still holds, and the peer delivers
/// each sequence number once and in order (`InboundLinks`). A restart of the local replica starts a new
/// incarnation with an empty queue: what it had not sent is lost with its memory (durability is the replica
/// layer's concern).
///
/// All state but the queue occupancy is confined to `eventLoop`; `send` reserves room under a lock so that
/// callers learn at once whether the queue is full, then hands the frame to the loop.
final class OutboundLink: @unchecked Sendable {
    /// A frame waiting for its acknowledgement, as the encoded data record that is (re)written.
    private struct Pending {
        let sequence: UInt64
        let record: ByteBuffer
    }

    private struct Occupancy {
        var messages = 0
        var bytes = 0
    }

    private enum State {
        /// Not started yet.
        case idle
        /// Connect attempt `attempt` is in progress (TCP, then TLS).
        case connecting(attempt: Int)
        /// Connected and authenticated; `hello` sent, waiting for the first acknowledgement.
        case greeting(attempt: Int, channel: Channel)
        /// Data flows: every new frame is written at once.
        case established(attempt: Int, channel: Channel)
        /// Waiting out the backoff delay before the next attempt.
        case waiting(Scheduled<Void>)
        /// Shut down for good.
        case stopped
    }

    let peer: ClusterMember
    let eventLoop: EventLoop
    let context: LinkContext
    private let occupancy = NIOLockedValueBox(Occupancy())

    // Confined to `eventLoop`.
    private var nextSequence: UInt64 = 1
    private var unacknowledged = CircularBuffer<Pending>()
    private var state = State.idle
    private var attempts = 0
    private var failuresInARow = 0
    private var flushScheduled = false

    init(peer: ClusterMember, eventLoop: EventLoop, context: LinkContext) {
        self.peer = peer
        self.eventLoop = eventLoop
        self.context = context
    }

    // MARK: Any thread

    /// Queues an encoded frame, or returns false without queueing it when the queue holds
    /// `sendQueueMessagesMax` messages or would exceed `sendQueueBytesMax` bytes.
    func send(_ frame: [UInt8]) -> Bool {
        let options = context.options
        let admitted = occupancy.withLockedValue { occupancy in
            guard occupancy.messages < options.sendQueueMessagesMax,
                occupancy.bytes + frame.count <= options.sendQueueBytesMax
            else { return false }
            occupancy.messages += 1
            occupancy.bytes += frame.count
            return true
        }
        guard admitted else { return false }
        // Tasks run in the order they were submitted, so one caller's frames keep their order.
        eventLoop.execute { self.enqueue(frame) }
        return true
    }

    /// Messages queued and not yet acknowledged.
    var queuedMessages: Int {
        occupancy.withLockedValue { $0.messages }
    }

    func start() {
        eventLoop.execute {
            guard case .idle = self.state else { return }
            self.connect()
        }
    }

    /// Closes the connection and stops redialing; the returned future completes once the channel is closed.
    func stop() -> EventLoopFuture<Void> {
        eventLoop.submit { () -> Channel? in
            let channel = self.channel
            if case .waiting(let scheduled) = self.state { scheduled.cancel() }
            self.state = .stopped
            return channel
        }.flatMap { channel in
            guard let channel else { return self.eventLoop.makeSucceededVoidFuture() }
            return channel.close().recover { _ in }
        }
    }

    /// Closes the current connection (for tests): the link redials and resends what was not acknowledged.
    func dropConnection() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            guard let channel = self.channel else { return self.eventLoop.makeSucceededVoidFuture() }
            return channel.close().recover { _ in }
        }
    }

    // MARK: On the event loop

    private var channel: Channel? {
        switch state {
        case .greeting(_, let channel), .established(_, let channel): channel
        case .idle, .connecting, .waiting, .stopped: nil
        }
    }

    private func enqueue(_ frame: [UInt8]) {
        eventLoop.preconditionInEventLoop()
        if case .stopped = state { return }
        let record = LinkRecord.dataRecord(sequence: nextSequence, frame: frame, allocator: ByteBufferAllocator())
        unacknowledged.append(Pending(sequence: nextSequence, record: record))
        nextSequence += 1
        if case .established(_, let channel) = state {
            channel.write(record, promise: nil)
            scheduleFlush(channel)
        }
    }

    /// Coalesces the flushes of frames queued in one turn of the loop into one.
    private func scheduleFlush(_ channel: Channel) {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute {
            self.flushScheduled = false
            channel.flush()
        }
    }

    private func connect() {
        attempts += 1
        let attempt = attempts
        state = .connecting(attempt: attempt)
        let context = self.context
        let peer = self.peer
        ClientBootstrap(group: eventLoop)
            .connectTimeout(context.options.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let verification = context.authentication.verificationCallback(
                        expected: peer.index, peer: PeerSlot(), statistics: context.statistics,
                        logger: context.logger, remote: "\(peer.host):\(peer.port)")
                    let tls = try NIOSSLClientHandler(
                        context: context.sslContext, serverHostname: nil, customVerificationCallback: verification)
                    try channel.pipeline.syncOperations.addHandlers(
                        tls, ByteToMessageHandler(LinkRecordDecoder()),
                        OutboundConnectionHandler(link: self, attempt: attempt))
                }
            }
            .connect(host: peer.host, port: peer.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.connected(attempt: attempt, channel: channel)
                case .failure(let error):
                    self.context.logger.debug(
                        "connect failed", metadata: ["peer": "\(peer.index)", "error": "\(error)"])
                    self.connectionEnded(attempt: attempt)
                }
            }
    }

    private func connected(attempt: Int, channel: Channel) {
        guard case .connecting(attempt) = state else {
            channel.close(promise: nil)
            return
        }
        // The TLS handshake and the hello exchange must finish in time, or the attempt is abandoned.
        eventLoop.scheduleTask(in: context.options.handshakeTimeout) {
            if case .connecting(attempt) = self.state { channel.close(promise: nil) }
            if case .greeting(attempt, _) = self.state { channel.close(promise: nil) }
        }
    }

    /// TLS is up and the peer is the pinned member: say hello.
    func handshakeCompleted(attempt: Int, channel: Channel) {
        guard case .connecting(attempt) = state else {
            channel.close(promise: nil)
            return
        }
        state = .greeting(attempt: attempt, channel: channel)
        let hello = LinkRecord.Hello(
            clusterIdentifier: context.clusterIdentifier, sender: context.localMember, receiver: peer.index,
            incarnation: context.incarnation, firstSequence: unacknowledged.first?.sequence ?? nextSequence)
        channel.writeAndFlush(LinkRecord.hello(hello).encoded(allocator: channel.allocator), promise: nil)
    }

    /// The peer delivered every message up to `delivered`.
    func acknowledged(attempt: Int, incarnation: UInt64, delivered: UInt64) throws(LinkProtocolError) {
        guard incarnation == context.incarnation else {
            throw .violation("acknowledgement for incarnation \(incarnation)")
        }
        guard delivered < nextSequence else {
            throw .violation("acknowledgement of \(delivered), never sent (next \(nextSequence))")
        }
        var released = Occupancy()
        while let first = unacknowledged.first, first.sequence <= delivered {
            unacknowledged.removeFirst()
            released.messages += 1
            released.bytes += first.record.readableBytes - LinkRecord.lengthBytes - 9
        }
        if released.messages > 0 {
            occupancy.withLockedValue { occupancy in
                occupancy.messages -= released.messages
                occupancy.bytes -= released.bytes
            }
        }
        guard case .greeting(attempt, let channel) = state else { return }
        // The first acknowledgement on a connection: resend all that is still unacknowledged, in order.
        state = .established(attempt: attempt, channel: channel)
        failuresInARow = 0
        context.statistics.record(\.linksEstablished)
        context.statistics.record(\.framesResent, count: unacknowledged.count)
        context.logger.debug(
            "link established",
            metadata: ["peer": "\(peer.index)", "resending": "\(unacknowledged.count)", "delivered": "\(delivered)"])
        for pending in unacknowledged {
            channel.write(pending.record, promise: nil)
        }
        channel.flush()
    }

    /// The connection of `attempt` failed or closed: redial after a backoff delay.
    func connectionEnded(attempt: Int) {
        switch state {
        case .connecting(attempt), .greeting(attempt, _), .established(attempt, _):
            break
        case .idle, .connecting, .greeting, .established, .waiting, .stopped:
            return
        }
        let delay = backoffDelay()
        failuresInARow += 1
        state = .waiting(eventLoop.scheduleTask(in: delay) { self.connect() })
    }

    private func backoffDelay() -> TimeAmount {
        var generator = SystemRandomNumberGenerator()
        return OutboundLink.backoffDelay(
            failuresInARow: failuresInARow, minimum: context.options.reconnectDelayMinimum,
            maximum: context.options.reconnectDelayMaximum, using: &generator)
    }

    /// `minimum · 2^failuresInARow`, at most `maximum`, of which the upper half is drawn at random so that
    /// replicas that lost each other together do not redial in lockstep: a delay in [d/2, d).
    static func backoffDelay(
        failuresInARow: Int, minimum: TimeAmount, maximum: TimeAmount, using generator: inout some RandomNumberGenerator
    ) -> TimeAmount {
        precondition(failuresInARow >= 0 && minimum.nanoseconds > 0 && maximum >= minimum, "invalid backoff")
        let exponent = min(failuresInARow, 30)
        let (scaled, overflow) = minimum.nanoseconds.multipliedReportingOverflow(by: 1 << exponent)
        let delay = overflow ? maximum.nanoseconds : min(maximum.nanoseconds, scaled)
        let half = max(delay / 2, 1)
        return .nanoseconds(half + Int64.random(in: 0..<half, using: &generator))
    }
}

/// The pipeline end of an outbound connection: reports the handshake, acknowledgements and the end of the
/// connection to its `OutboundLink`, and closes the connection on any peer fault.
final class OutboundConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = LinkRecord

    private let link: OutboundLink
    private let attempt: Int
    private var closing = false

    init(link: OutboundLink, attempt: Int) {
        self.link = link
        self.attempt = attempt
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            link.handshakeCompleted(attempt: attempt, channel: context.channel)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do throws(LinkProtocolError) {
            switch unwrapInboundIn(data) {
            case .acknowledgement(let incarnation, let delivered):
                try link.acknowledged(attempt: attempt, incarnation: incarnation, delivered: delivered)
            case .hello, .data:
                throw .violation("a receiver sent a record other than an acknowledgement")
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !closing else { return }
        closing = true
        recordConnectionError(error, peer: link.peer.index, direction: "outbound", context: link.context)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.connectionEnded(attempt: attempt)
        context.fireChannelInactive()
    }
}

/// Counts and logs an error that closes a connection, by kind: malformed input, a protocol violation, or
/// anything else (TLS, I/O).
func recordConnectionError(_ error: Error, peer: Int?, direction: String, context: LinkContext) {
    let metadata: Logger.Metadata = [
        "peer": "\(peer.map(String.init) ?? "unknown")", "direction": "\(direction)", "error": "\(error)",
    ]
    switch error {
    case LinkProtocolError.oversizedRecord, LinkProtocolError.malformedRecord:
        context.statistics.record(\.malformedRecords)
        context.logger.warning("closing connection: peer sent a malformed record", metadata: metadata)
    case LinkProtocolError.violation:
        context.statistics.record(\.protocolViolations)
        context.logger.warning("closing connection: peer broke the link protocol", metadata: metadata)
    default:
        context.statistics.record(\.connectionErrors)
        context.logger.debug("closing connection", metadata: metadata)
    }
}
