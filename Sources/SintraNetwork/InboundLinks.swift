import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import SintraCore

/// A frame received from an authenticated member.
public struct ReceivedFrame: Sendable, Equatable {
    /// The member that sent the frame: the one whose pinned key the connection authenticated, which is
    /// also the frame's `sender`.
    public let sender: Int
    /// The sender's incarnation (`LinkRecord.Hello.incarnation`, random per start of its network): a new
    /// value means the sender restarted and lost its memory, so a budget kept per peer (catch-up answers)
    /// starts again for it.
    public let incarnation: UInt64
    /// The frame, decoded with the cluster identifier checked.
    public let frame: Frame
}

/// The receiving halves of the reliable FIFO links from every peer to the local replica.
///
/// Per sender it remembers the sender's incarnation and the highest sequence number delivered, across
/// connections: a reconnecting sender resends from its oldest unacknowledged message, and what was already
/// delivered is dropped, so each sequence number is delivered once and in order. A sender with a new
/// incarnation (it restarted) begins again at the first sequence number its `hello` names. Only the newest
/// connection of a sender may deliver; an older one is closed.
final class InboundLinks: Sendable {
    private struct Peer {
        var incarnation: UInt64?
        var delivered: UInt64 = 0
        var connection: Channel?
    }

    /// What became of a data record.
    enum Delivery {
        case delivered
        case duplicate
        /// The inbound stream is full; the frame was not delivered (nor will it be acknowledged).
        case overflow
        /// The connection was replaced by a newer one of the same sender; its data no longer counts.
        case stale
    }

    private let peers: [NIOLockedValueBox<Peer>]
    private let continuation: AsyncStream<ReceivedFrame>.Continuation
    private let context: LinkContext
    private let limits: WireLimits

    init(context: LinkContext, continuation: AsyncStream<ReceivedFrame>.Continuation) {
        self.context = context
        self.continuation = continuation
        self.peers = context.members.map { _ in NIOLockedValueBox(Peer()) }
        self.limits = WireLimits(memberCount: context.members.count)
    }

    /// Registers `channel` as the connection of `hello.sender` (closing an older one) and returns the
    /// acknowledgement that tells the sender where to resume.
    func hello(_ hello: LinkRecord.Hello, on channel: Channel) -> LinkRecord {
        let (acknowledgement, replaced) = peers[hello.sender - 1].withLockedValue { peer in
            let replaced = peer.connection.flatMap { $0 === channel ? nil : $0 }
            peer.connection = channel
            if peer.incarnation != hello.incarnation {
                peer.incarnation = hello.incarnation
                peer.delivered = hello.firstSequence - 1
            } else if hello.firstSequence - 1 > peer.delivered {
                // An honest sender drops only acknowledged messages, so this is a gap it made up.
                context.logger.warning(
                    "sender skipped sequence numbers",
                    metadata: ["peer": "\(hello.sender)", "delivered": "\(peer.delivered)",
                               "first": "\(hello.firstSequence)"])
                peer.delivered = hello.firstSequence - 1
            }
            return (LinkRecord.acknowledgement(incarnation: hello.incarnation, delivered: peer.delivered), replaced)
        }
        replaced?.close(promise: nil)
        return acknowledgement
    }

    /// Delivers the frame with `sequence` from `sender` if it is the next one; throws for a gap, a frame that
    /// does not decode, or a frame naming another sender.
    func data(
        sequence: UInt64, frame bytes: ByteBuffer, from sender: Int, on channel: Channel
    ) throws(LinkProtocolError) -> Delivery {
        let frame: Frame
        do {
            // The body is copied out of the receive buffer once (not the frame, then the body out of it).
            let count = bytes.readableBytes
            frame = try Frame(
                encodedCount: count,
                header: bytes.getBytes(at: bytes.readerIndex, length: min(count, Frame.headerBytesMax)) ?? [],
                body: { bytes.getBytes(at: bytes.readerIndex + $0.lowerBound, length: $0.count) ?? [] },
                clusterIdentifier: context.clusterIdentifier, limits: limits)
        } catch {
            throw .violation("undecodable frame: \(error)")
        }
        guard frame.sender == sender else { throw .violation("frame names sender \(frame.sender)") }
        let outcome = peers[sender - 1].withLockedValue { peer -> Result<Delivery, LinkProtocolError> in
            // Bytes still buffered on a connection the sender has already replaced: honest, but superseded.
            guard peer.connection === channel else { return .success(.stale) }
            if sequence <= peer.delivered {
                context.statistics.record(\.duplicateFrames)
                return .success(.duplicate)
            }
            // `delivered` is below `sequence` here, so adding 1 cannot overflow.
            guard sequence == peer.delivered + 1 else {
                return .failure(.violation("sequence \(sequence) after \(peer.delivered)"))
            }
            // Yielding under the lock keeps delivery in sequence order even while connections change.
            switch continuation.yield(ReceivedFrame(sender: sender, incarnation: peer.incarnation ?? 0, frame: frame)) {
            case .enqueued, .terminated:
                peer.delivered = sequence
                return .success(.delivered)
            case .dropped:
                return .success(.overflow)
            @unknown default:
                return .success(.overflow)
            }
        }
        return try outcome.get()
    }

    /// The acknowledgement of everything `sender` had delivered so far.
    func acknowledgement(for sender: Int) -> LinkRecord? {
        peers[sender - 1].withLockedValue { peer in
            peer.incarnation.map { LinkRecord.acknowledgement(incarnation: $0, delivered: peer.delivered) }
        }
    }

    /// Forgets `channel` if it is still the connection of `sender`.
    func disconnected(_ sender: Int, channel: Channel) {
        peers[sender - 1].withLockedValue { peer in
            if peer.connection === channel { peer.connection = nil }
        }
    }

    /// Closes every inbound connection (for tests and shutdown).
    func closeAll() -> [EventLoopFuture<Void>] {
        peers.compactMap { $0.withLockedValue { $0.connection } }.map { $0.close().recover { _ in } }
    }

    /// Delivers a frame the local replica sent to itself; false when the stream is full.
    func deliverLocally(_ frame: Frame) -> Bool {
        switch continuation.yield(
            ReceivedFrame(sender: context.localMember, incarnation: context.incarnation, frame: frame)) {
        case .enqueued, .terminated: true
        case .dropped: false
        @unknown default: false
        }
    }
}

/// The pipeline end of an accepted connection: checks the first record is a `hello` from the member that TLS
/// authenticated, then hands data records to `InboundLinks` and acknowledges what it delivered: at the latest
/// `acknowledgementDelay` after the first unacknowledged delivery, at once after `acknowledgementFramesMax`.
final class InboundConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = LinkRecord

    private enum State {
        case awaitingHandshake
        case awaitingHello(member: Int)
        case open(member: Int)
        case closed
    }

    private let links: InboundLinks
    private let context: LinkContext
    private let slot: PeerSlot
    private var state = State.awaitingHandshake
    /// Frames delivered since the last acknowledgement.
    private var unacknowledgedFrames = 0
    /// The delayed acknowledgement, while one is scheduled.
    private var acknowledgementTimer: Scheduled<Void>?

    init(links: InboundLinks, context: LinkContext, slot: PeerSlot) {
        self.links = links
        self.context = context
        self.slot = slot
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A peer gets `handshakeTimeout` to authenticate and say hello.
        let channel = context.channel
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let linkContext = self.context
        context.eventLoop.scheduleTask(in: linkContext.options.handshakeTimeout) {
            switch loopBound.value.state {
            case .open, .closed:
                return
            case .awaitingHandshake, .awaitingHello:
                linkContext.statistics.record(\.handshakeTimeouts)
                linkContext.logger.info(
                    "closing connection: no authenticated hello in time",
                    metadata: ["remote": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
                channel.close(promise: nil)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, case .awaitingHandshake = state {
            if let member = slot.member {
                state = .awaitingHello(member: member)
            } else {
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do throws(LinkProtocolError) {
            try handle(unwrapInboundIn(data), context: context)
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    private func handle(_ record: LinkRecord, context: ChannelHandlerContext) throws(LinkProtocolError) {
        switch (state, record) {
        case (.awaitingHello(let member), .hello(let hello)):
            guard hello.clusterIdentifier == self.context.clusterIdentifier else {
                throw .violation("hello for another cluster")
            }
            guard hello.sender == member, hello.receiver == self.context.localMember else {
                throw .violation("hello from \(hello.sender) to \(hello.receiver) on member \(member)'s connection")
            }
            state = .open(member: member)
            context.writeAndFlush(wrapOutbound(links.hello(hello, on: context.channel), context), promise: nil)
        case (.open(let member), .data(let sequence, let frame)):
            switch try links.data(sequence: sequence, frame: frame, from: member, on: context.channel) {
            case .delivered:
                unacknowledgedFrames += 1
            case .duplicate:
                break
            case .overflow:
                self.context.statistics.record(\.inboundOverflows)
                self.context.logger.warning("inbound stream full: closing connection", metadata: ["peer": "\(member)"])
                state = .closed
                context.close(promise: nil)
            case .stale:
                state = .closed
                context.close(promise: nil)
            }
        case (.closed, _):
            break
        default:
            throw .violation("unexpected record \(record.tagName) in state \(state)")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if unacknowledgedFrames > 0 {
            let options = self.context.options
            if unacknowledgedFrames >= options.acknowledgementFramesMax || options.acknowledgementDelay <= .zero {
                acknowledge(context: context)
            } else if acknowledgementTimer == nil {
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                acknowledgementTimer = context.eventLoop.scheduleTask(in: options.acknowledgementDelay) {
                    let (handler, context) = loopBound.value
                    handler.acknowledgementTimer = nil
                    handler.acknowledge(context: context)
                }
            }
        }
        context.fireChannelReadComplete()
    }

    /// Writes the acknowledgement of everything delivered from this connection's member so far.
    private func acknowledge(context: ChannelHandlerContext) {
        acknowledgementTimer?.cancel()
        acknowledgementTimer = nil
        guard unacknowledgedFrames > 0, case .open(let member) = state, let record = links.acknowledgement(for: member)
        else { return }
        unacknowledgedFrames = 0
        context.writeAndFlush(wrapOutbound(record, context), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .closed = state { return }
        recordConnectionError(error, peer: slot.member, direction: "inbound", context: self.context)
        state = .closed
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let member = slot.member { links.disconnected(member, channel: context.channel) }
        state = .closed
        acknowledgementTimer?.cancel()
        acknowledgementTimer = nil
        context.fireChannelInactive()
    }

    private func wrapOutbound(_ record: LinkRecord, _ context: ChannelHandlerContext) -> NIOAny {
        NIOAny(record.encoded(allocator: context.channel.allocator))
    }
}

extension LinkRecord {
    var tagName: String {
        switch self {
        case .hello: "hello"
        case .acknowledgement: "acknowledgement"
        case .data: "data"
        }
    }
}
