import Crypto
import SintraCore
import SintraCrypto

/// One replica of the `abc` simulation: an atomic broadcast instance, the requests clients gave it at the
/// start, and those they give it later (once it has delivered the run's first request, so that they meet
/// rounds already under way).
///
/// Every call into the instance is committed to the node's `SimulatedStore` before its effects leave the
/// node, as `ReplicaNode` commits to its `ReplicaStore`, so that a crash (the `restart` adversaries)
/// leaves exactly what a real replica would find on disk.
public struct AtomicBroadcastNode: ProtocolInstance {
    public typealias Message = AtomicBroadcast.Message
    public typealias Output = AtomicBroadcast.Batch

    public private(set) var broadcast: AtomicBroadcast.Instance
    /// Requests to submit once `trigger` is delivered.
    private var later: [[UInt8]]
    private let trigger: [UInt8]
    /// What survives a crash.
    public private(set) var store: SimulatedStore
    /// Rounds between snapshots (an atomic broadcast node has no state to snapshot: the snapshot only
    /// prunes the log, as at a replica).
    let snapshotInterval: UInt64

    init(
        broadcast: AtomicBroadcast.Instance, later: [[UInt8]], trigger: [UInt8], store: SimulatedStore,
        snapshotInterval: UInt64
    ) {
        self.broadcast = broadcast
        self.later = later
        self.trigger = trigger
        self.store = store
        self.snapshotInterval = snapshotInterval
    }

    public var path: InstancePath { broadcast.path }

    public var isFinished: Bool { broadcast.isFinished && later.isEmpty }

    /// Commits one call's effects and journal entries before they are sent or output, then snapshots if due.
    private mutating func committed(_ effects: Effects<Message, Output>) -> Effects<Message, Output> {
        store.commit(effects, journal: broadcast.takeJournal())
        // Nothing to execute: the snapshot follows the commit at once.
        if let last = effects.outputs.last {
            store.snapshotIfDue(after: last.round, interval: snapshotInterval) { [] }
        }
        return effects
    }

    /// Submits `requests` in order.
    /// `peer` restarted: its catch-up budget here starts again (`AtomicBroadcast.Instance.peerRestarted`).
    mutating func peerRestarted(_ peer: Int) { broadcast.peerRestarted(peer) }

    mutating func submit(_ requests: [[UInt8]]) -> Effects<Message, Output> {
        var effects = Effects<Message, Output>()
        for request in requests { effects.append(committed(broadcast.submit(request).1)) }
        return effects
    }

    /// A restarted node's first call (`AtomicBroadcast.Instance.start`).
    mutating func start() -> Effects<Message, Output> {
        committed(broadcast.start())
    }

    public mutating func handle(_ message: Message, from sender: Int) -> Effects<Message, Output> {
        var effects = committed(broadcast.handle(message, from: sender))
        if !later.isEmpty, effects.outputs.contains(where: { $0.requests.contains(trigger) }) {
            let requests = later
            later = []
            effects.append(submit(requests))
        }
        return effects
    }
}

/// Atomic broadcast (`AtomicBroadcast`, CKPS01 global rounds over validated agreement) in the simulator.
///
/// Scenario: a few client requests; the first goes to every member at the start (twice: a client's
/// retransmission), the others to every member, to t + 1 honest members only, or to a single member, at the
/// start or once the member has delivered the first request; and a request over the size cap goes to every
/// member. Queues are capped at a few requests (the seed draws 1–3 unless fixed), so runs take several
/// rounds.
///
/// Checked (by `Checkers.order`, from the delivered batches only): batches agree round by round; every
/// honest node's request sequence is a prefix of one common sequence (total order); no request twice
/// (integrity); only submitted or Byzantine-made-up requests (validity); every request submitted to t + 1
/// honest members is delivered by every honest node, within the bound after the network heals (no loss).
/// Buffers stay within the future-round window's bound.
///
/// Byzantine behaviours: `AtomicBroadcastAttacks` (invalid-vector, oversized, withhold, equivocate,
/// replay-round) and `honest` (Byzantine nodes that follow the protocol: a cost baseline). The `steer`
/// adversary starves a different honest node in every round (`RotatingStarvation`).
public struct AtomicBroadcastAdapter: SimulatedProtocol {
    public typealias Instance = AtomicBroadcastNode
    public typealias ByzantineMemory = AtomicBroadcastAttacks.Memory

    public struct Scenario: Sendable {
        public struct Request: Sendable {
            public let bytes: [UInt8]
            /// The members it is submitted to.
            public let targets: [Int]
            /// Submitted once the member delivered the first request, rather than at the start.
            public let later: Bool
        }

        public let requests: [Request]
        /// Requests Byzantine members make up for their own queues.
        public let invented: [[UInt8]]
        /// A client request over `requestBytesMax`, submitted to every member: never delivered.
        public let tooLarge: [UInt8]
        public let limits: AtomicBroadcast.Limits
    }

    /// Requests per run (nil: the seed draws 2–4).
    public let requestCount: Int?
    /// The queue cap (nil: the seed draws 1–3).
    public let batchCountMax: Int?
    /// Whether nodes journal and replay (stage 2) or restart silent up to the send horizon (stage 1).
    public let journaling: Bool
    /// Whether rounds try the leader's fast path first (`AtomicBroadcast.Limits.optimistic`).
    public let optimistic: Bool

    public init(requestCount: Int? = nil, batchCountMax: Int? = nil, journaling: Bool = true, optimistic: Bool = true) {
        self.requestCount = requestCount
        self.batchCountMax = batchCountMax
        self.journaling = journaling
        self.optimistic = optimistic
    }

    public var name: String { "abc" }

    public var commandLineOptions: String {
        (requestCount.map { " --requests \($0)" } ?? "") + (batchCountMax.map { " --batch \($0)" } ?? "")
            + (journaling ? "" : " --no-journal") + (optimistic ? "" : " --pessimistic")
    }

    /// Small caps, so that the caps themselves are exercised.
    static func limits(batchCountMax: Int) -> AtomicBroadcast.Limits {
        var limits = AtomicBroadcast.Limits()
        limits.batchCountMax = batchCountMax
        limits.requestBytesMax = 256
        limits.batchBytesMax = 64 * batchCountMax
        return limits
    }

    public func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
        let count = requestCount ?? 2 + Int(random.next() % 3)
        let batch = batchCountMax ?? 1 + Int(random.next() % 3)
        let requests = (0..<count).map { index in
            Scenario.Request(
                bytes: Self.request(index, tag: "abc", random: &random),
                targets: index == 0 ? Array(context.configuration.members) : Self.targets(context, random: &random),
                later: index > 0 && random.next() % 4 == 0)
        }
        let invented = (0..<3).map { Self.request($0, tag: "byz", random: &random) }
        var limits = Self.limits(batchCountMax: batch)
        limits.optimistic = optimistic
        let tooLarge = [UInt8](repeating: 0x4c, count: limits.requestBytesMax + 1)
        return Scenario(requests: requests, invented: invented, tooLarge: tooLarge, limits: limits)
    }

    /// A request: a tag, its index and 4–16 random bytes.
    static func request(_ index: Int, tag: String, random: inout ProtocolRandom) -> [UInt8] {
        Array(tag.utf8) + [UInt8(truncatingIfNeeded: index >> 8), UInt8(truncatingIfNeeded: index)]
            + (0..<(4 + Int(random.next() % 13))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    /// Every member (most requests), t + 1 honest members, or one member.
    static func targets(_ context: SimulationContext, random: inout ProtocolRandom) -> [Int] {
        switch random.next() % 10 {
        case 0...5:
            return Array(context.configuration.members)
        case 6...8:
            var honest = context.honest
            for index in 0..<context.configuration.weakQuorum {
                honest.swapAt(index, index + Int(random.next() % UInt64(honest.count - index)))
            }
            return honest.prefix(context.configuration.weakQuorum).sorted()
        default:
            return [1 + Int(random.next() % UInt64(context.replicas))]
        }
    }

    public func makeInstance(
        node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> Instance {
        let nodeRandom = random.split()
        let broadcast = AtomicBroadcast.Instance(
            configuration: context.configuration, keys: context.keys(of: node), path: context.path,
            random: nodeRandom, limits: scenario.limits, journaling: journaling)
        let later = scenario.requests.filter { $0.later && $0.targets.contains(node) }.map(\.bytes)
        return AtomicBroadcastNode(
            broadcast: broadcast, later: later, trigger: scenario.requests[0].bytes,
            store: Self.store(limits: scenario.limits, journaling: journaling, random: nodeRandom),
            snapshotInterval: Self.snapshotInterval(context))
    }

    /// A node's empty store: the deduplication memory and journal window of `limits`, and the node's generator.
    static func store(limits: AtomicBroadcast.Limits, journaling: Bool, random: ProtocolRandom) -> SimulatedStore {
        SimulatedStore(
            keepRounds: limits.catchUpRounds, journaling: journaling, futureRoundWindow: limits.futureRoundWindow,
            random: random)
    }

    /// What a restarted instance resumed from, for the report.
    static func describeResumption(_ broadcast: AtomicBroadcast.Instance) -> String {
        "at round \(broadcast.round), silent through \(broadcast.silentThrough)"
            + (broadcast.journaling ? ", replayed \(broadcast.replayedEntryCount) journal entries" : "")
    }

    /// Rounds between snapshots: 1–4, from the seed (without drawing from a stream, so runs of the other
    /// adversaries stay as they were).
    static func snapshotInterval(_ context: SimulationContext) -> UInt64 { 1 + (context.seed >> 8) % 4 }

    public var supportsRestart: Bool { true }

    public func describeResumption(_ instance: Instance) -> String { Self.describeResumption(instance.broadcast) }

    public func peerRestarted(_ instance: inout Instance, peer: Int) { instance.peerRestarted(peer) }

    /// A node rebuilt from `crashed.store` only (`ReplicaNode`'s restart): the instance resumes after the
    /// last round on disk with the generator it had, and replays its journal (stage 2; without journaling,
    /// it is silent up to the send horizon instead). Its clients still wait for the requests they gave
    /// it, so they send them again (a client retransmits until t + 1 replicas answered): every request the
    /// scenario gave this node that is not in a batch on disk, and the later ones if their trigger is on
    /// disk (otherwise they wait for it, as at the start).
    public func restart(
        _ crashed: Instance, node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> (Instance, Effects<Instance.Message, Instance.Output>) {
        let store = crashed.store
        let broadcast = AtomicBroadcast.Instance(
            configuration: context.configuration, keys: context.keys(of: node), path: context.path,
            random: store.random, limits: scenario.limits, journaling: journaling, resuming: store.resumption)
        let first = scenario.requests[0].bytes
        let triggered = store.contains(first)
        let later = scenario.requests.filter { $0.later && $0.targets.contains(node) }.map(\.bytes)
        var restarted = AtomicBroadcastNode(
            broadcast: broadcast, later: triggered ? [] : later, trigger: first, store: store,
            snapshotInterval: crashed.snapshotInterval)
        var effects = restarted.start()
        let given = scenario.requests.filter { !$0.later && $0.targets.contains(node) }.map(\.bytes)
            + (triggered ? later : []) + [scenario.tooLarge]
        effects.append(restarted.submit(given.filter { !store.contains($0) }))
        return (restarted, effects)
    }

    public func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<Instance.Message, Instance.Output>
    {
        // The first request twice (a client's retransmission), and one over the size cap.
        let requests = scenario.requests.filter { !$0.later && $0.targets.contains(node) }.map(\.bytes)
        return instance.submit([scenario.requests[0].bytes] + requests + [scenario.tooLarge])
    }

    public func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<Instance.Output> {
        let honest = Set(context.honest)
        let required = scenario.requests.filter { request in
            request.targets.filter(honest.contains).count >= context.configuration.weakQuorum
        }.map(\.bytes)
        let allowed = Set(scenario.requests.map(\.bytes) + scenario.invented)
        let later = Set(scenario.requests.filter(\.later).map(\.bytes))
        let first = scenario.requests[0].bytes
        var guarantees = Guarantees<Instance.Output>(allMustOutput: false, totality: false)
        guarantees.order = OrderGuarantees(
            items: { $0.requests }, required: required,
            rejectsItem: { item in
                if item == scenario.tooLarge { return "a request over the size cap" }
                return allowed.contains(item) ? nil : "a request nobody submitted"
            },
            trigger: { later.contains($0) ? first : nil })
        return guarantees
    }

    public func agreementKey(_ output: AtomicBroadcast.Batch) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(output.round)
        for request in output.requests { writer.writeVariable(request) }
        return writer.bytes
    }

    public func describe(_ output: AtomicBroadcast.Batch) -> String {
        let digests = output.requests.map { Hex.encode(SHA256.hash(data: $0)).prefix(8) }
        return "round \(output.round): [\(digests.joined(separator: " "))]"
    }

    public func describe(message: Instance.Message) -> String {
        Self.describe(message)
    }

    static func describe(_ message: AtomicBroadcast.Message) -> String {
        switch message {
        case .queue(let round, let queue):
            return "a-queue r\(round) of \(queue.member): \(queue.requests.count) requests"
        case .agreement(let round, let inner):
            return "r\(round) " + ValidatedAgreementAdapter().describe(message: inner)
        case .catchUpRequest(let round):
            return "catch-up request r\(round)"
        case .catchUpResponse(let round, let highestRound, let batch):
            return "catch-up response r\(round) (decided up to r\(highestRound)): \(batch.count) requests"
        case .fast(let round, let inner):
            return "r\(round) " + describe(inner)
        case .timeout(let round):
            return "timer r\(round)"
        }
    }

    static func describe(_ message: AtomicBroadcast.FastMessage) -> String {
        func short(_ digest: [UInt8]) -> String { String(Hex.encode(digest).prefix(8)) }
        switch message {
        case .propose(let vector):
            return "a-fast propose \(short(Array(SHA256.hash(data: vector))))"
        case .vote(let digest, _):
            return "a-fast vote \(short(digest))"
        case .commit(let digest):
            return "a-fast commit \(short(digest))"
        case .stop(let stop, _, _):
            return "a-fast stop of \(stop.member)" + (stop.lockedDigest.map { " locked on \(short($0))" } ?? "")
        case .abdicate(let through):
            return "a-fast abdicate through r\(through)"
        }
    }

    public func isTimer(_ message: Instance.Message) -> Bool { Self.isTimer(message) }

    static func isTimer(_ message: AtomicBroadcast.Message) -> Bool {
        if case .timeout = message { return true }
        return false
    }

    public func bufferedMessageCount(_ instance: Instance) -> Int { instance.broadcast.bufferedMessageCount }

    public func bufferedMessageCountMax(context: SimulationContext) -> Int {
        AtomicBroadcastAttacks.bufferedMessageCountMax(replicas: context.replicas, limits: AtomicBroadcast.Limits())
    }

    /// A validated agreement's worth per round (see `ValidatedAgreementAdapter`) plus the queues, for a
    /// round per request, the later wave, and the rounds Byzantine queues can start (the window).
    public func terminationStepsMax(context: SimulationContext) -> Int {
        let rounds = (requestCount ?? 4) + 2 + Int(AtomicBroadcast.Limits().futureRoundWindow)
        let queues = context.replicas * context.replicas
        return rounds * (ValidatedAgreementAdapter().terminationStepsMax(context: context) + queues)
    }

    // MARK: - Byzantine behaviours

    public var specificBehaviours: [String] { AtomicBroadcastAttacks.behaviours + ["honest"] }

    func attacks(_ view: ByzantineView<Scenario>) -> AtomicBroadcastAttacks {
        AtomicBroadcastAttacks(
            context: view.context, me: view.me, limits: view.scenario.limits, invented: view.scenario.invented)
    }

    public func makeByzantineMemory(view: ByzantineView<Scenario>) -> ByzantineMemory { ByzantineMemory() }

    public func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message] {
        attacks(view).tamper(message, to: recipient, behaviour: behaviour, memory: &memory, random: &random)
    }

    public func intercept(
        _ message: Instance.Message, from sender: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Outgoing<Instance.Message>] {
        attacks(view).intercept(message, from: sender, behaviour: behaviour, memory: &memory)
    }

    public func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        attacks(view).flood(count: count, random: &random)
    }

    public var hasSteering: Bool { true }

    public func makeSteering(scenario: Scenario, context: SimulationContext) -> (any Steering<Instance.Message>)? {
        RotatingStarvation(context: context)
    }
}

/// A scheduler that starves a different honest node in every round: messages of round r to the round's
/// victim are delivered only when nothing else is pending (the rank orders what is pending, so every
/// message is still delivered eventually). The victims rotate through the honest nodes from a point the
/// seed chooses, so each honest node falls behind in turn and must catch up from what it was sent.
struct RotatingStarvation: Steering {
    typealias Message = AtomicBroadcast.Message

    let honest: [Int]
    let offset: UInt64

    init(context: SimulationContext) {
        honest = context.honest
        offset = context.seed % UInt64(context.honest.count)
    }

    /// The honest node starved in `round`.
    func victim(of round: UInt64) -> Int {
        honest[Int((round % UInt64(honest.count) + offset) % UInt64(honest.count))]
    }

    mutating func observe(_ message: Message, from sender: Int, to recipient: Int) {}

    func rank(_ message: Message, from sender: Int, to recipient: Int) -> Int {
        let round: UInt64
        switch message {
        case .queue(let messageRound, _), .agreement(let messageRound, _), .catchUpRequest(let messageRound),
            .catchUpResponse(let messageRound, _, _), .fast(let messageRound, _), .timeout(let messageRound):
            round = messageRound
        }
        return recipient == victim(of: round) ? 1 : 0
    }
}
