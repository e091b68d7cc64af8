import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SintraCrypto
import SintraNetwork
import SintraReplica

/// Many clients of a SintraKV cluster sharing one TLS connection per replica.
///
/// Each client (a "slot") is a real client as `SintraClient` is: its own Ed25519 key (`ClientKey`, which
/// signs its requests and from which its identifier derives), its own sequence numbers, one request in
/// flight at a time (closed loop), every request sent to every replica and its result accepted once t + 1
/// replicas sent the same one (`ReplyCollector`). What the slots share is the transport: one TLS
/// connection per replica and one event loop, so thousands of clients cost thousands of small records, not
/// thousands of connections and threads. The replicas route each reply by client
/// identifier (`ClientListener`), and a connection may carry many.
///
/// All state is confined to one event loop; replies are handled on it without hopping to another thread, and
/// the writes of one loop tick are flushed once per connection.
///
/// A slot's request that has no accepted result after `timeoutSeconds` fails with `SintraClient.Failure.timeout`
/// (or, if it was refused for a retryable reason before, with that refusal); one the replicas refused for a
/// final reason (t + 1 for one reason, or too many for a result to come: `ReplyCollector`) fails with
/// `SintraClient.Failure.refused` as soon as they said so. A retryable refusal (queue-full, unavailable,
/// overloaded) makes the slot send the same request again after a jittered, growing pause (`RetryPolicy`),
/// as `SintraClient` does, within the timeout; `retryCount` counts the resends of all slots.
/// Requests go out through a `SendWindow`: once a replica refused one `overloaded` (more unanswered on its
/// connection than it takes), requests beyond the learned window wait here, oldest first, until answers
/// free places, instead of drawing refusals and losing their places to younger requests.
/// A connection that drops is redialed by the periodic sweep, and every request in flight that the replica
/// has not replied to is sent to it again on the new connection (`connectMissing`).
public final class ClientMultiplexer: @unchecked Sendable {
    /// The most slots one multiplexer runs: each has a request in flight on every connection, and a replica
    /// refuses requests over `ClientListener.Options.requestsInFlightMax` (1024) unanswered on one connection
    /// (`overloaded`), so more slots would only draw refusals and retries.
    public static let slotsMax = 1000

    private struct Slot {
        let key: ClientKey
        let client: [UInt8]
        var sequence: UInt64 = 0
        var collector: ReplyCollector?
        var promise: EventLoopPromise<[UInt8]>?
        var startedNanoseconds: UInt64 = 0
        /// The request in flight as encoded, sent again as it is on a retry.
        var record: [UInt8] = []
        /// Sends of the request in flight, the first included.
        var attempts = 0
        /// The resend scheduled after a retryable refusal, if any.
        var retry: Scheduled<Void>?
        /// The reason of the last retryable verdict, the failure if the timeout comes first.
        var lastRefusal: RefusalReason?
        /// Whether the request is out at the replicas (counted in `outstanding`).
        var sent = false
        /// Whether the request waits in `waiting` for a place in the window.
        var queued = false
    }

    public let endpoints: [SintraClient.Endpoint]
    public let faulty: Int
    public let clusterIdentifier: [UInt8]
    public let timeoutSeconds: Double
    /// How requests refused for a retryable reason are sent again.
    public let retry: RetryPolicy
    /// The loop all connections and slots live on.
    public let eventLoop: EventLoop
    private let ownedGroup: MultiThreadedEventLoopGroup?
    private let sslContext: NIOSSLContext

    // Confined to `eventLoop`.
    private var slots: [Slot]
    private var slotByClient: [[UInt8]: Int] = [:]
    private var channels: [Int: Channel] = [:]
    private var dialing: Set<Int> = []
    private var flushScheduled = false
    private var sweep: RepeatedTask?
    private var closed = false
    private var generator = SystemRandomNumberGenerator()
    private let retries = NIOLockedValueBox(0)
    private var window: SendWindow
    /// Slots whose request is out at the replicas.
    private var outstanding = 0
    /// Slots whose request waits for a place in the window, by the time the request started (oldest first).
    private var waiting: [Int] = []
    private let redeliveries = NIOLockedValueBox(0)

    /// `slots` clients of the cluster reached through `endpoints`, on `eventLoop` (or a thread of its own).
    public init(
        endpoints: [SintraClient.Endpoint], faulty: Int, clusterIdentifier: [UInt8], slots: Int,
        timeoutSeconds: Double = 10, retry: RetryPolicy = .default, eventLoop: EventLoop? = nil
    ) throws {
        precondition((1...ClientMultiplexer.slotsMax).contains(slots), "1…\(ClientMultiplexer.slotsMax) slots")
        self.endpoints = endpoints
        self.faulty = faulty
        self.clusterIdentifier = clusterIdentifier
        self.timeoutSeconds = timeoutSeconds
        self.retry = retry
        if let eventLoop {
            self.eventLoop = eventLoop
            ownedGroup = nil
        } else {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            self.eventLoop = group.next()
            ownedGroup = group
        }
        sslContext = try ClientPorts.clientContext()
        window = SendWindow(ceiling: slots)
        self.slots = (0..<slots).map { _ in
            let key = ClientKey.generate()
            return Slot(key: key, client: key.client)
        }
        for (index, slot) in self.slots.enumerated() { slotByClient[slot.client] = index }
    }

    /// Slots of the cluster in `configuration` (cluster.json), dialing each member's client port.
    public convenience init(
        configuration: ClusterConfiguration, slots: Int, timeoutSeconds: Double = 10, retry: RetryPolicy = .default,
        eventLoop: EventLoop? = nil
    ) throws {
        try self.init(
            endpoints: configuration.members.map {
                SintraClient.Endpoint(
                    member: $0.index, host: $0.host, port: ClientPorts.port(of: $0), identityKey: $0.identityKey)
            },
            faulty: configuration.faulty, clusterIdentifier: configuration.clusterIdentifier, slots: slots,
            timeoutSeconds: timeoutSeconds, retry: retry, eventLoop: eventLoop)
    }

    /// The number of slots.
    public var slotCount: Int { slots.count }

    /// Requests sent again after retryable refusals, all slots together, since the start.
    public var retryCount: Int { retries.withLockedValue { $0 } }

    /// The send window's current limit (nil: none, no `overloaded` refusal came or the window grew back).
    public func sendWindowLimit() async -> Int? {
        (try? await eventLoop.submit { self.window.limit }.get()) ?? nil
    }

    /// Requests in flight sent again to a replica on a new connection (after its connection dropped, or it
    /// could not be reached when they were first sent), since the start.
    public var redeliveryCount: Int { redeliveries.withLockedValue { $0 } }

    /// Dials every replica and waits for the attempts to finish; returns how many connections stand. The
    /// sweep that times out requests and redials dropped connections starts here.
    public func connect() async -> Int {
        let attempts = try? await eventLoop.submit { () -> [EventLoopFuture<Void>] in
            if self.sweep == nil {
                self.sweep = self.eventLoop.scheduleRepeatedTask(
                    initialDelay: .milliseconds(250), delay: .milliseconds(250)
                ) { _ in self.sweepExpired() }
            }
            return self.connectMissing()
        }.get()
        for attempt in attempts ?? [] { try? await attempt.get() }
        return (try? await eventLoop.submit { self.channels.count }.get()) ?? 0
    }

    /// Runs `operation` as slot `slot`'s next request; the future completes on `eventLoop` with the result
    /// t + 1 replicas agree on, or fails with `SintraClient.Failure` (`.busy` if the slot has a request in
    /// flight, `.timeout`).
    public func execute(slot: Int, operation: [UInt8]) -> EventLoopFuture<[UInt8]> {
        guard eventLoop.inEventLoop else {
            return eventLoop.flatSubmit { self.execute(slot: slot, operation: operation) }
        }
        precondition(slots.indices.contains(slot), "slot \(slot) out of range")
        guard slots[slot].promise == nil, !closed else {
            return eventLoop.makeFailedFuture(SintraClient.Failure.busy)
        }
        slots[slot].sequence += 1
        let request = slots[slot].key.request(
            clusterIdentifier: clusterIdentifier, sequence: slots[slot].sequence, operation: operation)
        let promise = eventLoop.makePromise(of: [UInt8].self)
        slots[slot].collector = ReplyCollector(
            faulty: faulty, sequence: slots[slot].sequence, replicas: endpoints.count)
        slots[slot].promise = promise
        slots[slot].startedNanoseconds = NIODeadline.now().uptimeNanoseconds
        slots[slot].attempts = 1
        slots[slot].lastRefusal = nil
        slots[slot].record = ClientRecord.request(request).encoded
        slots[slot].queued = true
        waiting.append(slot)
        sendWaiting()
        return promise.futureResult
    }

    /// Fails the requests in flight, closes every connection and stops the loop if it is this multiplexer's.
    public func close() async {
        let closing = try? await eventLoop.submit { () -> [EventLoopFuture<Void>] in
            self.closed = true
            self.sweep?.cancel()
            self.sweep = nil
            for index in self.slots.indices { self.finish(index, .failure(SintraClient.Failure.busy)) }
            let closing = self.channels.values.map { $0.close().recover { _ in } }
            self.channels = [:]
            return closing
        }.get()
        for future in closing ?? [] { try? await future.get() }
        try? await ownedGroup?.shutdownGracefully()
    }

    // MARK: On the event loop

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute {
            self.flushScheduled = false
            for channel in self.channels.values { channel.flush() }
        }
    }

    /// Sends the waiting requests, oldest first, while the window has room.
    private func sendWaiting() {
        var sent = 0
        while sent < waiting.count, window.admits(outstanding: outstanding) {
            send(waiting[sent])
            sent += 1
        }
        waiting.removeFirst(sent)
    }

    /// Sends slot `index`'s request to every connected replica that has not answered it yet.
    private func send(_ index: Int) {
        slots[index].queued = false
        slots[index].sent = true
        outstanding += 1
        let record = slots[index].record
        for (member, channel) in channels where slots[index].collector?.hasReplied(member) != true {
            channel.write(ClientRecordDecoder.record(record, allocator: channel.allocator), promise: nil)
        }
        scheduleFlush()
    }

    /// Slot `index`'s request is no longer out at the replicas (answered, refused, failed).
    private func withdraw(_ index: Int) {
        if slots[index].sent {
            slots[index].sent = false
            outstanding -= 1
        }
        if slots[index].queued {
            slots[index].queued = false
            waiting.removeAll { $0 == index }
        }
    }

    private func finish(_ index: Int, _ result: Result<[UInt8], Error>) {
        guard let promise = slots[index].promise else { return }
        withdraw(index)
        if case .success = result { window.answered() }
        slots[index].promise = nil
        slots[index].collector = nil
        slots[index].record = []
        slots[index].retry?.cancel()
        slots[index].retry = nil
        // The promise's callbacks may start the slot's next request at once, so every change to the slot
        // comes before it; the requests waiting for the place it freed go out after.
        promise.completeWith(result)
        if !closed { sendWaiting() }
    }

    /// Slot `index`'s request was refused for a retryable `reason`: schedules its resend if the policy and
    /// the timeout allow one and none is scheduled, else fails it with the refusal.
    private func scheduleRetry(_ index: Int, after reason: RefusalReason) {
        slots[index].lastRefusal = reason
        guard slots[index].retry == nil else { return }
        if reason == .overloaded { window.overloaded(outstanding: outstanding) }
        withdraw(index)
        let elapsed = NIODeadline.now().uptimeNanoseconds - slots[index].startedNanoseconds
        let remainingSeconds = timeoutSeconds - Double(elapsed) / 1e9
        guard
            let delay = retry.delaySeconds(
                afterAttempts: slots[index].attempts, remainingSeconds: remainingSeconds, using: &generator)
        else {
            finish(index, .failure(SintraClient.Failure.refused(reason)))
            return
        }
        let sequence = slots[index].sequence
        slots[index].retry = eventLoop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) {
            self.resend(index, sequence: sequence)
        }
    }

    /// Queues slot `index`'s request `sequence` to be sent again, in the order of the requests' starts, to
    /// every connected replica that has not replied; the replicas that refused it for a retryable reason
    /// count afresh.
    private func resend(_ index: Int, sequence: UInt64) {
        guard slots[index].sequence == sequence, var collector = slots[index].collector else { return }
        slots[index].retry = nil
        collector.forgetRetryableRefusals()
        slots[index].collector = collector
        slots[index].attempts += 1
        retries.withLockedValue { $0 += 1 }
        let started = slots[index].startedNanoseconds
        let position = waiting.firstIndex { slots[$0].startedNanoseconds > started } ?? waiting.endIndex
        waiting.insert(index, at: position)
        slots[index].queued = true
        sendWaiting()
    }

    fileprivate func received(_ bytes: [UInt8], from member: Int) {
        switch try? ReplicaRecord(encoded: bytes) {
        case .reply(let reply)?:
            guard let index = slotByClient[reply.client], var collector = slots[index].collector else { return }
            let accepted = collector.add(reply, from: member)
            slots[index].collector = collector
            if let accepted { finish(index, .success(accepted)) }
        case .refusal(let refusal)?:
            guard let index = slotByClient[refusal.client], var collector = slots[index].collector else { return }
            let verdict = collector.add(refusal, from: member)
            slots[index].collector = collector
            switch verdict {
            case .accepted(let result)?: finish(index, .success(result))
            case .refused(let reason)? where reason.isRetryable: scheduleRetry(index, after: reason)
            case .refused(let reason)?: finish(index, .failure(SintraClient.Failure.refused(reason)))
            case nil: break
            }
        default:
            return
        }
    }

    fileprivate func disconnected(_ member: Int, channel: Channel) {
        if channels[member] === channel { channels[member] = nil }
    }

    private func sweepExpired() {
        let now = NIODeadline.now().uptimeNanoseconds
        let limit = UInt64(timeoutSeconds * 1e9)
        for index in slots.indices where slots[index].promise != nil && now - slots[index].startedNanoseconds > limit {
            let replies = slots[index].collector?.replyCount ?? 0
            let failure =
                slots[index].lastRefusal.map { SintraClient.Failure.refused($0) }
                ?? .timeout(seconds: timeoutSeconds, replies: replies, needed: faulty + 1)
            finish(index, .failure(failure))
        }
        if !closed { _ = connectMissing() }
    }

    /// Sends the requests out at the replicas (not those waiting for a place in the window or for a retry:
    /// they go to every connection when sent) that replica `member` has not replied to on its new `channel`.
    private func redeliver(to member: Int, on channel: Channel) {
        var sent = 0
        for slot in slots where slot.sent && slot.promise != nil && !slot.record.isEmpty {
            guard let collector = slot.collector, !collector.hasReplied(member) else { continue }
            channel.write(ClientRecordDecoder.record(slot.record, allocator: channel.allocator), promise: nil)
            sent += 1
        }
        guard sent > 0 else { return }
        redeliveries.withLockedValue { $0 += sent }
        channel.flush()
    }

    /// Dials the replicas without a connection or an attempt under way, and sends each new connection the
    /// requests in flight its replica has not replied to.
    ///
    /// Why: a replica sends a client's replies only on connections that sent it one of the client's
    /// authentic requests (`ClientListener`), and its routes go with the connection. A request that was in
    /// flight on a connection that closed, or that was sent while the replica could not be reached, is
    /// executed there but never answered; the client used to send it again only after t + 1 retryable
    /// refusals. With t + 1 such replicas (a closed connection each, or one closed and one that refused it
    /// alone as `overloaded`) the request waited for its timeout with one reply: most likely how the bench
    /// lost 30–580 requests per run before 984b6da, when replicas still closed connections at their
    /// in-flight limit. Sent again, a request the replica executed is answered from its executor's cache,
    /// any other is ordered or found pending as usual (the replica deduplicates).
    private func connectMissing() -> [EventLoopFuture<Void>] {
        var attempts = [EventLoopFuture<Void>]()
        for endpoint in endpoints where channels[endpoint.member] == nil && !dialing.contains(endpoint.member) {
            let member = endpoint.member
            dialing.insert(member)
            let bootstrap = ClientBootstrap(group: eventLoop)
                .connectTimeout(.seconds(1))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { [sslContext] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            try ClientPorts.clientHandler(context: sslContext, pinning: endpoint.identityKey),
                            ByteToMessageHandler(ClientRecordDecoder()),
                            MultiplexedReplyHandler(multiplexer: self, member: member))
                    }
                }
            attempts.append(
                bootstrap.connect(host: endpoint.host, port: endpoint.port).map { channel in
                    self.dialing.remove(member)
                    if self.closed {
                        channel.close(promise: nil)
                    } else {
                        self.channels[member] = channel
                        self.redeliver(to: member, on: channel)
                    }
                }.recover { _ in
                    _ = self.dialing.remove(member)
                })
        }
        return attempts
    }
}

/// Hands every reply record of one replica's connection to the multiplexer, on the connection's loop.
private final class MultiplexedReplyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = [UInt8]

    let multiplexer: ClientMultiplexer
    let member: Int

    init(multiplexer: ClientMultiplexer, member: Int) {
        self.multiplexer = multiplexer
        self.member = member
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        multiplexer.received(unwrapInboundIn(data), from: member)
    }

    func channelInactive(context: ChannelHandlerContext) {
        multiplexer.disconnected(member, channel: context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
