import NIOCore
import SintraClient
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica
import Testing

@testable import SintraServer

/// Overload is answered: requests over a client listener's limits get a retryable `overloaded` refusal on
/// their connection instead of a silent close, only a connection flooding past its allowance is closed, and
/// clients send refused requests again until the replicas take them. Four in-process replicas with client
/// listeners over real TLS; every wait is long (120 s) and ends on an event, not on a clock.
@Suite(.serialized) struct OverloadTests {
    typealias Service = ClientTests.Service

    /// A signed put of a fresh client (so each request is a distinct client and sequence).
    func request(_ service: Service, key: ClientKey = .generate(), sequence: UInt64 = 1) -> ClientRequest {
        key.request(
            clusterIdentifier: service.cluster.configuration.clusterIdentifier, sequence: sequence,
            operation: KeyValueStore.Operation.put(key: [1], value: [1]).encoded)
    }

    /// Requests over `requestsInFlightMax` on one connection are refused `overloaded`, each with its client and
    /// sequence; the same request sent again while it is unanswered takes no second slot and draws no refusal;
    /// and a connection that goes on past its allowance of over-limit requests is closed.
    @Test func requestsOverTheConnectionLimitAreRefusedAndFloodersClosed() async throws {
        var options = ClientListener.Options()
        options.requestsInFlightMax = 2
        options.overloadRefusalBurst = 4
        options.overloadRefusalsPerSecond = 0
        let service = try await Service(options: options)
        // Replicas 3 and 4 stop: replica 1 queues the first two requests and can never order them, so they
        // stay unanswered and hold the connection's two slots for the whole test.
        for node in service.cluster.nodes.suffix(2) { await node.shutdown() }
        let connection = try await RawClientConnection(to: service.endpoints[0])
        let requests = (0..<7).map { _ in request(service) }
        for request in requests.prefix(5) { try await connection.send(.request(request)) }
        try await connection.send(.request(requests[0]))
        try await connection.send(.request(requests[5]))
        func overloaded(_ request: ClientRequest) -> ReplicaRecord {
            .refusal(ClientRefusal(client: request.client, sequence: request.sequence, reason: .overloaded))
        }
        // Records come in the order of the requests they answer (all written on the connection's loop).
        #expect(try await connection.record(0) == overloaded(requests[2]))
        #expect(try await connection.record(1) == overloaded(requests[3]))
        #expect(try await connection.record(2) == overloaded(requests[4]))
        #expect(try await connection.record(3) == overloaded(requests[5]), "the resent request drew no refusal")
        #expect(!(await connection.closedByReplica(within: 0)))
        #expect(service.listeners[0].statistics.overloaded == 0)
        // The allowance (4, not refilled here) is spent: one more over-limit request closes the connection.
        try await connection.send(.request(requests[6]))
        #expect(await connection.closedByReplica())
        let statistics = service.listeners[0].statistics
        #expect(statistics.overloaded == 1)
        #expect(statistics.refusedByReason == [.overloaded: 4])
        #expect(try await connection.record(4, within: 0) == nil, "nothing after the close")
        await connection.close()
        for listener in service.listeners { await listener.shutdown() }
        for node in service.cluster.nodes.prefix(2) { await node.shutdown() }
    }

    /// A connection that writes requests over its limit and never reads its refusals is closed once they
    /// pile up (its channel stops being writable), whatever its allowance: the replica buffers at most a
    /// high-water mark of answers for it (and its socket's send buffer, small here). The requests need no
    /// valid signature: the limit comes first.
    @Test func aFlooderThatDoesNotReadIsClosed() async throws {
        var options = ClientListener.Options()
        options.requestsInFlightMax = 1
        options.overloadRefusalBurst = 1e12
        options.overloadRefusalsPerSecond = 0
        options.sendBufferBytes = 16_384
        let service = try await Service(options: options)
        let connection = try await RawClientConnection(to: service.endpoints[0], receiveBufferBytes: 4096)
        // Reads until the TLS session stands (a status query answered), then no more.
        try await connection.send(.statusQuery)
        guard case .status? = try await connection.record(0) else {
            Issue.record("no status")
            return
        }
        try await connection.stopReading()
        let publicKey = [UInt8](repeating: 9, count: ClientRequest.publicKeyBytes)
        let signature = [UInt8](repeating: 0, count: ClientRequest.signatureBytes)
        var sequence: UInt64 = 0
        var closed = false
        // At most 400,000 requests (about 60 MB): the socket buffers, small here, and the channel's high-water
        // mark (64 KiB) take a few thousand refusals.
        for _ in 0..<400 where !closed {
            let records = (0..<1000).map { _ in
                sequence += 1
                return ClientRecord.request(
                    ClientRequest(publicKey: publicKey, sequence: sequence, operation: [], signature: signature)
                ).encoded
            }
            do {
                try await connection.send(records: records)
            } catch {
                closed = true
            }
            if await connection.closedByReplica(within: 0) { closed = true }
        }
        #expect(await connection.closedByReplica())
        let statistics = service.listeners[0].statistics
        #expect(statistics.overloaded == 1)
        // Refusals were sent until the buffers were full (about 1,900 in one run, after 31,000 requests sent).
        #expect(statistics.refusedByReason[.overloaded, default: 0] > 100)
        await connection.close()
        await service.shutdown()
    }

    /// A new client over `clientsMax` is refused `overloaded` by every replica; its `SintraClient` sends the
    /// same request again with backoff, and once the first client's connections close (its routes with them)
    /// the request is taken and answered. A final refusal is never retried (`RefusalServiceTests`).
    @Test func aClientRefusedForOverloadRetriesUntilItIsServed() async throws {
        var options = ClientListener.Options()
        options.clientsMax = 1
        let service = try await Service(options: options)
        let first = try service.client(timeoutSeconds: 120)
        #expect(try await first.execute(.put(key: [1], value: [1])) == .ok)
        // Every replica routes the first client's replies (the last two once they executed its put).
        #expect(await eventually(within: 120) { service.listeners.allSatisfy { $0.statistics.routedClients == 1 } })
        let second = try service.client(timeoutSeconds: 120)
        let waiting = Task { try await second.execute(.put(key: [2], value: [2])) }
        // Refused by every replica, and sent again at least once meanwhile.
        let refused = await eventually(within: 120) {
            service.listeners.allSatisfy { $0.statistics.refusedByReason[.overloaded, default: 0] >= 1 }
        }
        #expect(refused)
        #expect(await eventually(within: 120) { await second.retryCount >= 1 })
        await first.close()
        #expect(try await waiting.value == .ok)
        #expect(try await second.execute(.get(key: [2])) == .value([2]))
        await second.close()
        await service.shutdown()
    }

    /// A multiplexer with more slots than a replica takes unanswered per connection learns the limit from the
    /// `overloaded` refusals of its first burst and holds requests beyond it instead of sending them: every
    /// request of every slot is answered, and the window stays near the replicas' limit.
    @Test func aMultiplexerOverTheConnectionLimitWaitsInsteadOfDrawingRefusals() async throws {
        var options = ClientListener.Options()
        options.requestsInFlightMax = 4
        let service = try await Service(options: options)
        let multiplexer = try ClientMultiplexer(
            endpoints: service.endpoints, faulty: 1, clusterIdentifier: service.cluster.configuration.clusterIdentifier,
            slots: 24, timeoutSeconds: 120)
        #expect(await multiplexer.connect() == 4)
        for round in UInt8(1)...3 {
            let futures = (0..<24).map { slot in
                multiplexer.execute(
                    slot: slot, operation: KeyValueStore.Operation.put(key: [UInt8(slot)], value: [round]).encoded)
            }
            for future in futures {
                #expect(try KeyValueStore.Result(encoded: try await future.get()) == .ok)
            }
        }
        // The first burst of 24 drew refusals, so the window was learned; answers grow it by one per window.
        #expect(service.listeners.contains { $0.statistics.refusedByReason[.overloaded, default: 0] > 0 })
        let limit = await multiplexer.sendWindowLimit()
        #expect(limit != nil && limit! < 24)
        await multiplexer.close()
        await service.shutdown()
    }

    /// The send window: none until a refusal; a burst of refusals over a limit brings it down to that limit,
    /// one refusal at a time; a window's worth of answers grows it by one, back to none at the slot count;
    /// it never closes completely.
    @Test func theSendWindowShrinksOnRefusalsAndGrowsWithAnswers() {
        var window = SendWindow(ceiling: 1_000)
        #expect(window.limit == nil && window.admits(outstanding: 999))
        // 1,000 out at a replica that takes 256: 744 refused, each withdrawn after its verdict.
        var outstanding = 1_000
        for _ in 0..<744 {
            window.overloaded(outstanding: outstanding)
            outstanding -= 1
        }
        #expect(window.limit == 256)
        #expect(!window.admits(outstanding: 256) && window.admits(outstanding: 255))
        for _ in 0..<255 { window.answered() }
        #expect(window.limit == 256)
        window.answered()
        #expect(window.limit == 257)
        var grown = SendWindow(ceiling: 3)
        grown.overloaded(outstanding: 3)
        #expect(grown.limit == 2)
        grown.answered()
        grown.answered()
        #expect(grown.limit == nil, "grown back to the slot count: no limit")
        var shut = SendWindow(ceiling: 10)
        shut.overloaded(outstanding: 1)
        shut.overloaded(outstanding: 0)
        #expect(shut.limit == 1)
    }

    /// A connection's slots count distinct requests: a copy holds no second slot and is submitted again only
    /// once the last submission returned; a refusal frees its own slot, a reply its request's and the
    /// client's older ones (which will never be answered: stale); at the limit, a client's later request takes
    /// over the slot of an earlier one whose submission returned, and a new client is refused.
    @Test func pendingRequestsCountDistinctRequestsAndReplySettlesOlderOnes() {
        var pending = PendingRequests()
        let a = [UInt8](repeating: 1, count: 16), b = [UInt8](repeating: 2, count: 16)
        func admit(_ client: [UInt8], _ sequence: UInt64, limit: Int = 3) -> PendingRequests.Admission {
            pending.admit(client: client, sequence: sequence, limit: limit)
        }
        #expect(admit(a, 1) == .admitted)
        #expect(admit(a, 1) == .submitting)
        pending.submitted(client: a, sequence: 1)
        #expect(admit(a, 1) == .resubmit)
        #expect(admit(a, 1) == .submitting)
        #expect(admit(a, 2) == .admitted)
        #expect(admit(b, 7) == .admitted)
        let c = [UInt8](repeating: 3, count: 16)
        #expect(admit(c, 1) == .overLimit, "a new client at the limit")
        #expect(admit(b, 8) == .overLimit, "b's earlier request is still being submitted: no takeover")
        #expect(admit(b, 7) == .submitting, "held already: no slot needed")
        pending.submitted(client: b, sequence: 7)
        #expect(admit(b, 8) == .admitted, "b moved on: 8 takes over the slot of 7")
        #expect(admit(b, 9) == .overLimit, "8 is being submitted")
        #expect(pending.count == 3)
        pending.refused(client: b, sequence: 7)
        #expect(pending.count == 3, "7 holds no slot any more")
        pending.refused(client: b, sequence: 8)
        pending.refused(client: b, sequence: 8)
        #expect(pending.count == 2)
        pending.answered(client: a, through: 2)
        #expect(pending.count == 0)
        pending.answered(client: a, through: 9)
        #expect(pending.count == 0)
        #expect(admit(b, 8, limit: 1) == .admitted)
    }

    /// The over-limit allowance: a full bucket of `burst`, then nothing until it refills at the given rate.
    @Test func theOverloadAllowanceIsATokenBucket() {
        var allowance = OverloadAllowance()
        func takes(at now: NIODeadline) -> Bool { allowance.take(at: now, burst: 3, perSecond: 2) }
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let first = (0..<4).map { _ in takes(at: start) }
        #expect(first == [true, true, true, false])
        // Half a second at 2 per second: one more.
        let later = start + .milliseconds(500)
        let second = (0..<2).map { _ in takes(at: later) }
        #expect(second == [true, false])
        // A long pause refills to the burst, no further.
        let much = later + .seconds(100)
        let third = (0..<4).map { _ in takes(at: much) }
        #expect(third == [true, true, true, false])
    }

    /// Pauses grow by the multiplier up to the cap, each in the upper half of its bound; none after
    /// `attemptsMax` sends, none that would end past the timeout.
    @Test func retryPausesGrowWithJitterWithinTheTimeout() {
        var generator = SplitMix(seed: 42)
        func delay(_ policy: RetryPolicy, after attempts: Int, remaining: Double = 100) -> Double? {
            policy.delaySeconds(afterAttempts: attempts, remainingSeconds: remaining, using: &generator)
        }
        let policy = RetryPolicy(attemptsMax: 6, initialDelaySeconds: 0.1, multiplier: 2, delayMaxSeconds: 0.5)
        let bounds = [0.1, 0.2, 0.4, 0.5, 0.5]
        for (index, bound) in bounds.enumerated() {
            for _ in 0..<50 {
                let drawn = delay(policy, after: index + 1)
                #expect(drawn.map { $0 >= bound / 2 && $0 <= bound } == true, "after \(index + 1) sends: \(drawn ?? -1)")
            }
        }
        let afterTheLast = delay(policy, after: 6)
        let pastTheTimeout = delay(policy, after: 1, remaining: 0.04)
        let never = delay(.never, after: 1)
        #expect(afterTheLast == nil && pastTheTimeout == nil && never == nil)
        // Jitter: the pauses drawn for one bound differ.
        let draws = Set((0..<20).compactMap { _ in delay(.default, after: 3) })
        #expect(draws.count > 10)
    }
}

/// A seeded generator (SplitMix64), so a failing draw replays.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
