import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SintraCore
import SintraNetwork
import SintraReplica

/// A replica's listener for clients (`ClientPorts`): TLS with the replica's identity certificate,
/// length-prefixed `ClientRecord`s in (signed requests, status queries), `ReplicaRecord`s out.
///
/// A request is submitted to the replica's atomic broadcast queue once its signature verified
/// (`ReplicaNode.submission(of:verified:)`); its reply goes back on the connection that last sent an
/// authentic request of that client (so a forged request cannot divert another client's replies). Every
/// other outcome is answered at once on the connection the request came on, and only there: a refusal
/// with its reason (`ReplicaRecord.refusal`: queue full, too large, invalid signature or key, malformed,
/// unavailable, stale, overloaded), or, for a request this replica executed before, the cached reply. So a
/// client learns fast why a request will not be executed, and no request holds a slot of its connection for
/// ever. A status query is answered at once with the node's `ReplicaStatus` (unauthenticated, read-only:
/// `sintra status`). A connection that sends a record that does not decode is closed and counted; if the
/// record was a request with at least a key and a sequence number, its refusal (`.malformed`, or
/// `.tooLarge` for an operation over `ClientRequest.operationBytesMax`) is sent first.
///
/// Overload is answered, not hung up on. A request over the listener's limits (`requestsInFlightMax`
/// unanswered requests on its connection, or a new client once `clientsMax` clients have replies routed)
/// is refused at once with `.overloaded`, a retryable reason: the client backs off and sends the same
/// request again (`RetryPolicy` in SintraClient). Before this, such a connection was closed without a word, and
/// its client learned only from the dropped connection, losing its other requests' replies too. Each such
/// refusal costs the replica a decode and a 30-byte write, never a submission, so the memory a connection
/// holds stays bounded by `requestsInFlightMax` requests whatever it sends. Only a connection that floods
/// far past the limits is closed (counted in `Statistics.overloaded`): one that draws more over-limit
/// refusals than `overloadRefusalBurst` plus `overloadRefusalsPerSecond` per second allow (a client that
/// backs off stays far below), or that keeps sending while its refusals pile up unread (the channel is no
/// longer writable: its outbound buffer passed the high-water mark), so the replica never buffers without
/// bound for a client that writes and does not read.
///
/// Before its TLS handshake completes a connection costs the replica a handshake (an X25519 and an
/// Ed25519 signature) and a slot of `connectionsMax`; one source address may hold at most
/// `handshakesPerAddressMax` such connections, and each gets `handshakeTimeout` to finish, so that one
/// host opening connections and never finishing them cannot take every slot. A connection over
/// `connectionsMax` is closed before its handshake: there is no TLS session yet to carry a refusal.
public final class ClientListener: Sendable {
    /// Limits of the listener.
    public struct Options: Sendable {
        /// Requests of one connection submitted and not yet answered (distinct client and sequence: the
        /// same request sent again on its connection takes no second slot). Further ones are refused
        /// `.overloaded`.
        public var requestsInFlightMax = 1024
        /// Over-limit requests (refused `.overloaded`) one connection may send at once before it is closed
        /// as a flooder; the allowance refills at `overloadRefusalsPerSecond`. The pair is generous on
        /// purpose: closing a connection drops the replies of every client on it, and a client library that
        /// runs more requests than the limit on one connection (a `ClientMultiplexer` with more slots, or new
        /// clients over `clientsMax`) draws a refusal per request and retry, several per second for each
        /// new request while its pauses are short. A refusal costs about as much as answering a stale
        /// request (a decode and a write), and a client that writes without waiting for its answers sends
        /// records as fast as the replica reads them, many times this rate, so it is still closed within a
        /// few seconds.
        public var overloadRefusalBurst = 16_384.0
        /// The rate at which the over-limit allowance refills.
        public var overloadRefusalsPerSecond = 8_192.0
        /// Status queries of one connection unanswered at once; one more closes the connection (a status
        /// query carries no identifier a refusal could name, and `StatusProbe` asks once per connection).
        public var statusQueriesInFlightMax = 4
        /// The kernel send buffer of each client connection (`SO_SNDBUF`); nil leaves the kernel's default
        /// and its autotuning (up to `net.ipv4.tcp_wmem`'s maximum, 4 MB on Linux by default). With a client
        /// that stops reading, this plus the channel's 64 KiB high-water mark is what the replica holds for
        /// it before it closes the connection (`refuseOverLimit`).
        public var sendBufferBytes: Int?
        /// Client connections open at once.
        public var connectionsMax = 1024
        /// Connections from one source address whose TLS handshake has not completed, at once (as many as
        /// `sintra demo` opens at its start with its most clients; a quarter of `connectionsMax`).
        public var handshakesPerAddressMax = 256
        /// Time a connection has to complete its TLS handshake.
        public var handshakeTimeout = TimeAmount.seconds(10)
        /// Distinct clients with a routed reply at once (entries are dropped with their connection); a
        /// request of a further client is refused `.overloaded`.
        public var clientsMax = 65_536
        /// The port to listen on; nil uses the member's port plus `ClientPorts.offset`, 0 any free port.
        public var port: Int?
        public var logger = Logger(label: "sintra.clients")
        public init() {}
    }

    /// Counters since start.
    public struct Statistics: Sendable, Equatable {
        public var connections = 0
        /// Connections closed for records that do not decode or are too long.
        public var malformedRecords = 0
        /// Connections refused for too many connections (`connectionsMax`), and connections closed for
        /// flooding: over-limit requests past the allowance, or sent while their answers went unread, or
        /// more than `statusQueriesInFlightMax` status queries unanswered. Over-limit requests that were
        /// refused are in `refusedByReason[.overloaded]`.
        public var overloaded = 0
        /// Connections refused because their source address had `handshakesPerAddressMax` unfinished
        /// handshakes, and connections closed for not finishing theirs within `handshakeTimeout`.
        public var handshakesRefused = 0
        public var handshakeTimeouts = 0
        public var requests = 0
        /// Requests refused (a refusal record was sent), in all and by reason.
        public var refused = 0
        public var refusedByReason: [RefusalReason: Int] = [:]
        /// Replies routed to connections after execution.
        public var replies = 0
        /// Requests that came after the replica executed them, answered with the cached reply.
        public var cachedReplies = 0
        /// Status queries answered.
        public var statusQueries = 0
        /// Client connections open now.
        public var openConnections = 0
        /// Distinct clients with replies routed now (at most `clientsMax`).
        public var routedClients = 0
        public init() {}
    }

    private let node: ReplicaNode
    private let options: Options
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let sslContext: NIOSSLContext
    private let server = NIOLockedValueBox<Channel?>(nil)
    private let state = NIOLockedValueBox(RouterState())

    struct RouterState {
        /// Each client's connections that sent one of its authentic requests, newest last, at most
        /// `routesPerClientMax`: replies go to all of them. One route per client (the latest) let a Byzantine
        /// replica that copied a client's signed request here first, on its own connection, take the client's
        /// replies (the client's own copy, a duplicate then, did not move the route back).
        var routes: [[UInt8]: [ConnectionRoute]] = [:]
        var connections = 0
        /// Connections in their TLS handshake, by source address (entries with a count of 0 are removed).
        var handshaking: [String: Int] = [:]
        var statistics = Statistics()
    }

    /// A listener for `node`, which it serves replies from.
    public init(node: ReplicaNode, options: Options = Options()) throws {
        self.node = node
        self.options = options
        self.sslContext = try ClientPorts.serverContext(credentials: node.network.credentials)
    }

    public var statistics: Statistics {
        state.withLockedValue { state in
            var statistics = state.statistics
            statistics.openConnections = state.connections
            statistics.routedClients = state.routes.count
            return statistics
        }
    }

    /// The bound port, once started.
    public var port: Int? { server.withLockedValue { $0?.localAddress?.port } }

    /// Binds the listener and routes the node's replies to connections.
    public func start(host: String, memberPort: Int) async throws {
        await node.setReplyHandler { [self] replies in self.route(replies) }
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in self.initialize(channel) }
            .bind(host: host, port: options.port ?? (memberPort + ClientPorts.offset))
            .get()
        server.withLockedValue { $0 = channel }
        options.logger.info("listening for clients", metadata: ["port": "\(channel.localAddress?.port ?? 0)"])
    }

    public func shutdown() async {
        if let channel = server.withLockedValue({ $0 }) { try? await channel.close() }
        try? await group.shutdownGracefully()
    }

    private func initialize(_ channel: Channel) -> EventLoopFuture<Void> {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let admitted = state.withLockedValue { state in
            guard state.connections < options.connectionsMax else {
                state.statistics.overloaded += 1
                return false
            }
            guard state.handshaking[address, default: 0] < options.handshakesPerAddressMax else {
                state.statistics.handshakesRefused += 1
                return false
            }
            state.handshaking[address, default: 0] += 1
            state.connections += 1
            state.statistics.connections += 1
            return true
        }
        guard admitted else { return channel.close() }
        let route = ConnectionRoute(channel: channel)
        let handshake = HandshakeGate(listener: self, address: address)
        channel.closeFuture.whenComplete { [self] _ in
            handshake.finish()
            self.state.withLockedValue { state in
                state.connections -= 1
                for client in route.clients.withLockedValue({ $0 }) {
                    guard var routes = state.routes[client] else { continue }
                    routes.removeAll { $0 === route }
                    state.routes[client] = routes.isEmpty ? nil : routes
                }
            }
        }
        channel.eventLoop.scheduleTask(in: options.handshakeTimeout) { [self] in
            guard handshake.finish() else { return }
            self.state.withLockedValue { $0.statistics.handshakeTimeouts += 1 }
            channel.close(promise: nil)
        }
        return channel.eventLoop.makeCompletedFuture {
            if let bytes = options.sendBufferBytes {
                try channel.syncOptions?.setOption(.socketOption(.so_sndbuf), value: SocketOptionValue(bytes))
            }
            try channel.pipeline.syncOperations.addHandlers(
                NIOSSLServerHandler(context: sslContext), handshake, ByteToMessageHandler(ClientRecordDecoder()),
                ClientConnectionHandler(listener: self, route: route))
        }
    }

    /// A connection from `address` finished its handshake, or closed or timed out before.
    fileprivate func handshakeEnded(from address: String) {
        state.withLockedValue { state in
            let remaining = state.handshaking[address, default: 1] - 1
            state.handshaking[address] = remaining > 0 ? remaining : nil
        }
    }

    /// A record arrived on `route`; returns false if the connection must close.
    func received(_ bytes: [UInt8], on route: ConnectionRoute) -> Bool {
        let request: ClientRequest
        switch try? ClientRecord(encoded: bytes) {
        case .request(let decoded)?:
            request = decoded
        case .statusQuery?:
            return answerStatusQuery(on: route)
        case nil:
            let refusal = bytes.first == 1 ? ClientRefusal(undecodableRequest: bytes.dropFirst()) : nil
            state.withLockedValue { state in
                state.statistics.malformedRecords += 1
                if let refusal {
                    state.statistics.refused += 1
                    state.statistics.refusedByReason[refusal.reason, default: 0] += 1
                }
            }
            if let refusal {
                // Written before the caller closes the connection (on the connection's loop, in order).
                let channel = route.channel
                channel.writeAndFlush(
                    ClientRecordDecoder.record(ReplicaRecord.refusal(refusal).encoded, allocator: channel.allocator),
                    promise: nil)
            }
            return false
        }
        switch admit(request, on: route) {
        case .admitted, .resubmit:
            break
        case .submitting:
            return true
        case .overLimit:
            return refuseOverLimit(request, on: route)
        }
        let node = self.node
        Task {
            let outcome = await node.submission(of: request) { self.setRoute(of: request.client, to: route) }
            switch outcome {
            case .queued:
                route.pending.withLockedValue { $0.submitted(client: request.client, sequence: request.sequence) }
            case .answered(let reply):
                self.state.withLockedValue { $0.statistics.cachedReplies += 1 }
                route.pending.withLockedValue { $0.answered(client: reply.client, through: reply.sequence) }
                self.answer(.reply(reply), on: route)
            case .refused(let reason):
                self.state.withLockedValue { state in
                    state.statistics.refused += 1
                    state.statistics.refusedByReason[reason, default: 0] += 1
                }
                route.pending.withLockedValue { $0.refused(client: request.client, sequence: request.sequence) }
                let refusal = ClientRefusal(client: request.client, sequence: request.sequence, reason: reason)
                self.answer(.refusal(refusal), on: route)
            }
        }
        return true
    }

    /// Whether `request` may be submitted: it takes a slot of its connection (`.admitted`), already holds one
    /// (sent again on the same connection, as a retrying client does: `.resubmit`, which answers it from the
    /// executor's cache if it was executed meanwhile, or `.submitting`, nothing to do while its submission
    /// is under way), or is over a limit.
    private func admit(_ request: ClientRequest, on route: ConnectionRoute) -> PendingRequests.Admission {
        state.withLockedValue { state in
            guard state.routes.count < options.clientsMax || state.routes[request.client] != nil else {
                return .overLimit
            }
            let admission = route.pending.withLockedValue {
                $0.admit(client: request.client, sequence: request.sequence, limit: options.requestsInFlightMax)
            }
            if admission != .overLimit, admission != .submitting { state.statistics.requests += 1 }
            return admission
        }
    }

    /// Refuses a request over the limits with `.overloaded`, on its connection; returns false (close the
    /// connection) instead if the connection floods: its allowance of over-limit requests is spent, or its
    /// answers are not read (the channel is not writable: the refusal would only grow its outbound buffer).
    /// Runs on the connection's event loop (from `channelRead`), so the write keeps the record order.
    private func refuseOverLimit(_ request: ClientRequest, on route: ConnectionRoute) -> Bool {
        let channel = route.channel
        let allowed =
            channel.isWritable
            && route.overloadAllowance.withLockedValue {
                $0.take(
                    at: NIODeadline.now(), burst: options.overloadRefusalBurst,
                    perSecond: options.overloadRefusalsPerSecond)
            }
        state.withLockedValue { state in
            if allowed {
                state.statistics.refused += 1
                state.statistics.refusedByReason[.overloaded, default: 0] += 1
            } else {
                state.statistics.overloaded += 1
            }
        }
        guard allowed else {
            options.logger.notice(
                "closing a client connection that floods past its limits",
                metadata: ["address": "\(channel.remoteAddress?.description ?? "unknown")"])
            return false
        }
        let refusal = ClientRefusal(client: request.client, sequence: request.sequence, reason: .overloaded)
        channel.writeAndFlush(
            ClientRecordDecoder.record(ReplicaRecord.refusal(refusal).encoded, allocator: channel.allocator),
            promise: nil)
        return true
    }

    /// Answers a request at once on the connection it came on (never on a connection found by client
    /// identifier: a forged request must not reach another client's connection).
    private func answer(_ record: ReplicaRecord, on route: ConnectionRoute) {
        let channel = route.channel
        channel.writeAndFlush(ClientRecordDecoder.record(record.encoded, allocator: channel.allocator), promise: nil)
    }

    /// Answers a status query; more than `statusQueriesInFlightMax` unanswered on one connection close it
    /// (returns false): a status query has no identifier a refusal could name.
    private func answerStatusQuery(on route: ConnectionRoute) -> Bool {
        let admitted = route.statusQueries.withLockedValue { unanswered in
            guard unanswered < options.statusQueriesInFlightMax else { return false }
            unanswered += 1
            return true
        }
        guard admitted else {
            state.withLockedValue { $0.statistics.overloaded += 1 }
            return false
        }
        state.withLockedValue { $0.statistics.statusQueries += 1 }
        let node = self.node
        Task {
            let status = await node.status
            route.statusQueries.withLockedValue { $0 = max(0, $0 - 1) }
            let channel = route.channel
            channel.writeAndFlush(
                ClientRecordDecoder.record(ReplicaRecord.status(status).encoded, allocator: channel.allocator),
                promise: nil)
        }
        return true
    }

    /// Connections a client's replies go to at most (`RouterState.routes`).
    static let routesPerClientMax = 4

    /// Routes `client`'s replies to `route` too (a connection that sent one of its authentic requests); the
    /// oldest of more than `routesPerClientMax` routes is dropped.
    private func setRoute(of client: [UInt8], to route: ConnectionRoute) {
        guard route.channel.isActive else { return }
        state.withLockedValue { state in
            var routes = state.routes[client] ?? []
            guard !routes.contains(where: { $0 === route }) else { return }
            guard state.routes.count < options.clientsMax || !routes.isEmpty else { return }
            routes.append(route)
            if routes.count > Self.routesPerClientMax { routes.removeFirst() }
            state.routes[client] = routes
            route.clients.withLockedValue { $0.append(client) }
        }
    }

    /// Sends one delivered batch's replies: each connection gets its replies in one buffer, written and
    /// flushed once (one task on its event loop, one run of TLS records, one syscall) instead of once per reply.
    private func route(_ replies: [ClientReply]) {
        var groups: [ObjectIdentifier: (route: ConnectionRoute, replies: [ClientReply])] = [:]
        state.withLockedValue { state in
            for reply in replies {
                guard let routes = state.routes[reply.client] else { continue }
                state.statistics.replies += 1
                for route in routes { groups[ObjectIdentifier(route), default: (route, [])].replies.append(reply) }
            }
        }
        for (route, replies) in groups.values {
            route.pending.withLockedValue { pending in
                for reply in replies { pending.answered(client: reply.client, through: reply.sequence) }
            }
            let channel = route.channel
            channel.eventLoop.execute {
                let records = replies.map { ReplicaRecord.reply($0).encoded }
                var buffer = channel.allocator.buffer(capacity: records.reduce(0) { $0 + 4 + $1.count })
                for record in records {
                    buffer.writeInteger(UInt32(record.count))
                    buffer.writeBytes(record)
                }
                channel.writeAndFlush(buffer, promise: nil)
            }
        }
    }
}

/// One client connection: its channel, the clients whose replies it carries, its unanswered requests and
/// status queries, and its allowance of over-limit requests.
final class ConnectionRoute: Sendable {
    let channel: Channel
    let clients = NIOLockedValueBox<[[UInt8]]>([])
    let pending = NIOLockedValueBox(PendingRequests())
    let statusQueries = NIOLockedValueBox(0)
    let overloadAllowance = NIOLockedValueBox(OverloadAllowance())

    init(channel: Channel) {
        self.channel = channel
    }
}

/// The requests of one connection that this replica has not answered yet, by client and sequence number:
/// what `ClientListener.Options.requestsInFlightMax` bounds.
///
/// Counted by (client, sequence), not by record, so that a client sending the same request again (a retry
/// after other replicas refused it, while this one holds it) takes no second slot: a counter per record
/// grew by one for every such resend and was taken back once, by the one reply, until the connection sat
/// at its limit for good. A copy is submitted again only once the previous submission of the request
/// returned (so a connection has at most `requestsInFlightMax` submissions under way, however many copies
/// it sends). A reply to a client's request also settles its older ones on the connection (the executor
/// will never reply to those: they are stale), so a client that moved on leaves nothing behind; and at the
/// limit, a client's later request takes over the slot of its oldest earlier one (`admit`).
struct PendingRequests {
    enum Admission: Equatable {
        /// Took a slot: submit it.
        case admitted
        /// Held a slot already, and its last submission returned (it is queued): submit the copy.
        case resubmit
        /// Held a slot already, and its submission is under way: nothing to do.
        case submitting
        /// The connection holds its limit of unanswered requests.
        case overLimit
    }

    private struct Entry {
        let sequence: UInt64
        var submitting: Bool
    }

    /// Unanswered requests in all.
    private(set) var count = 0
    /// Each client's unanswered requests (a closed-loop client has one).
    private var entries: [[UInt8]: [Entry]] = [:]

    mutating func admit(client: [UInt8], sequence: UInt64, limit: Int) -> Admission {
        if var list = entries[client], let index = list.firstIndex(where: { $0.sequence == sequence }) {
            guard !list[index].submitting else { return .submitting }
            list[index].submitting = true
            entries[client] = list
            return .resubmit
        }
        guard count < limit else {
            // A client that moved on to a later request takes over the slot of its oldest earlier one whose
            // submission returned, instead of being refused: under a replica that lags, a connection of
            // 1,000 closed-loop clients held a client's last request (not yet executed there) and its next
            // one, passed 1,024 and drew `overloaded` refusals and retries (300–600 per 10 s in the bench).
            // Only a returned submission is taken over, so at most `limit` submissions are ever under way.
            guard var list = entries[client],
                let oldest = list.indices.filter({ !list[$0].submitting && list[$0].sequence < sequence })
                    .min(by: { list[$0].sequence < list[$1].sequence })
            else { return .overLimit }
            list[oldest] = Entry(sequence: sequence, submitting: true)
            entries[client] = list
            return .admitted
        }
        entries[client, default: []].append(Entry(sequence: sequence, submitting: true))
        count += 1
        return .admitted
    }

    /// The request's submission returned without an answer (it is queued): a copy may be submitted again.
    mutating func submitted(client: [UInt8], sequence: UInt64) {
        guard var list = entries[client], let index = list.firstIndex(where: { $0.sequence == sequence }) else {
            return
        }
        list[index].submitting = false
        entries[client] = list
    }

    /// The request was refused: its slot is free.
    mutating func refused(client: [UInt8], sequence: UInt64) {
        guard var list = entries[client], let index = list.firstIndex(where: { $0.sequence == sequence }) else {
            return
        }
        list.remove(at: index)
        count -= 1
        entries[client] = list.isEmpty ? nil : list
    }

    /// The client's request `sequence` was answered: its slot and those of the client's older requests are free.
    mutating func answered(client: [UInt8], through sequence: UInt64) {
        guard let list = entries[client] else { return }
        let kept = list.filter { $0.sequence > sequence }
        count -= list.count - kept.count
        entries[client] = kept.isEmpty ? nil : kept
    }
}

/// A connection's allowance of over-limit requests: a token bucket, full at `burst`, refilled at
/// `perSecond`. Spent, it marks a flooder (`ClientListener.refuseOverLimit`).
struct OverloadAllowance {
    private var tokens: Double?
    private var last = NIODeadline.uptimeNanoseconds(0)

    /// Takes one token at `now`; false if none is left.
    mutating func take(at now: NIODeadline, burst: Double, perSecond: Double) -> Bool {
        let elapsedSeconds = Double(max(0, (now - last).nanoseconds)) / 1e9
        var available = tokens.map { min(burst, $0 + elapsedSeconds * perSecond) } ?? burst
        last = now
        defer { tokens = available }
        guard available >= 1 else { return false }
        available -= 1
        return true
    }
}

/// Counts a connection as handshaking until its TLS handshake completes, it closes, or it times out,
/// whichever comes first (`finish` acts once).
private final class HandshakeGate: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let listener: ClientListener
    let address: String
    private let finished = NIOLockedValueBox(false)

    init(listener: ClientListener, address: String) {
        self.listener = listener
        self.address = address
    }

    /// Ends the handshake count; returns false if it had ended already.
    @discardableResult
    func finish() -> Bool {
        let first = finished.withLockedValue { finished in
            defer { finished = true }
            return !finished
        }
        if first { listener.handshakeEnded(from: address) }
        return first
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { finish() }
        context.fireUserInboundEventTriggered(event)
    }
}

private final class ClientConnectionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = [UInt8]

    let listener: ClientListener
    let route: ConnectionRoute
    /// Set once the connection is being closed: the records its decoder still holds are dropped, not
    /// answered or counted again (a flooder's buffer can hold thousands).
    private let closing = NIOLockedValueBox(false)

    init(listener: ClientListener, route: ConnectionRoute) {
        self.listener = listener
        self.route = route
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing.withLockedValue({ $0 }) else { return }
        if !listener.received(unwrapInboundIn(data), on: route) {
            closing.withLockedValue { $0 = true }
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is ClientRecordError {
            listener.countMalformed()
        }
        context.close(promise: nil)
    }
}

extension ClientListener {
    func countMalformed() {
        state.withLockedValue { $0.statistics.malformedRecords += 1 }
    }
}
