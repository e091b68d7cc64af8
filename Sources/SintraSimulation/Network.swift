import SintraCore

/// A frame on its way from one node to another.
struct Transmission<Message> {
    /// Send order; breaks ties so that the delivery order depends on the seed only.
    let sequence: UInt64
    let deliverAt: UInt64
    let from: Int
    let to: Int
    let bytes: [UInt8]
    /// The message before encoding, kept only for a steering scheduler (nil for garbage).
    let message: Message?
    /// Whether the sender is honest (only honest traffic counts towards the termination bound).
    let fromHonest: Bool
}

/// One partition episode: messages sent in [start, end) between the two sides wait until `end`.
struct PartitionEpisode: Sendable {
    let start: UInt64
    let end: UInt64
    /// `side[node]` for node 1…n (index 0 unused).
    let side: [Bool]
}

/// The adversary's delivery plan for one run, drawn from the seed.
struct NetworkPlan: Sendable {
    let scheduler: SchedulerKind
    /// Ordinary delays are 1…delaySpread time units.
    let delaySpread: UInt64
    /// Byzantine messages arrive after one time unit (a rushing adversary).
    let rushing: Bool
    /// The starved honest node.
    let victim: Int?
    let partitions: [PartitionEpisode]

    /// When the last partition heals (0 if there is none).
    var healTime: UInt64 { partitions.map(\.end).max() ?? 0 }

    /// Draws a plan. Partition sides are arbitrary cuts of all nodes; episodes may overlap.
    static func draw(
        _ scheduler: SchedulerKind, replicas: Int, honest: [Int], random: inout ProtocolRandom
    ) -> NetworkPlan {
        let spread = 1 + random.next() % 24
        let rushing = random.next() % 2 == 0
        var victim: Int?
        var partitions = [PartitionEpisode]()
        switch scheduler {
        case .starve:
            victim = honest[Int(random.next() % UInt64(honest.count))]
        case .partition:
            var start: UInt64 = random.next() % 2 == 0 ? 0 : random.next() % (4 * spread)
            for _ in 0...(random.next() % 3) {
                let length = spread * (2 + random.next() % 24)
                var side = [false] + (1...replicas).map { _ in random.next() % 2 == 0 }
                if !side[1...].contains(true) || !side[1...].contains(false) {
                    side[1 + Int(random.next() % UInt64(replicas))].toggle()
                }
                partitions.append(PartitionEpisode(start: start, end: start + length, side: side))
                start += random.next() % (length + 1) + spread * (random.next() % 8)
            }
        case .random, .steer:
            break
        }
        return NetworkPlan(
            scheduler: scheduler, delaySpread: spread, rushing: rushing, victim: victim, partitions: partitions)
    }

    var summary: String {
        switch scheduler {
        case .random, .steer:
            return "\(scheduler.rawValue) (delays 1…\(delaySpread)\(rushing ? ", rushing" : ""))"
        case .starve:
            return "starve node \(victim!) (delays 1…\(delaySpread))"
        case .partition:
            let episodes = partitions.map { episode in
                let side = (1..<episode.side.count).filter { episode.side[$0] }.map(String.init)
                return "[\(episode.start), \(episode.end)) {\(side.joined(separator: ","))}"
            }
            return "partition \(episodes.joined(separator: " "))"
        }
    }
}

/// The adversary's network: virtual time, a queue ordered by delivery time, a hold for the starved node,
/// and an optional steering scheduler. Deterministic: every choice comes from its own seeded stream.
struct Network<Message> {
    let plan: NetworkPlan
    private var random: ProtocolRandom
    private var steering: (any Steering<Message>)?
    /// A binary min-heap on (deliverAt, sequence).
    private var queue: [Transmission<Message>] = []
    /// Messages to the starved node, delivered only when nothing else is pending.
    private var held: [Transmission<Message>] = []
    private var sequence: UInt64 = 0
    /// Virtual time: the delivery time of the last delivered message.
    private(set) var now: UInt64 = 0
    /// Crashed nodes, not restarted yet.
    private var down: Set<Int> = []
    /// Frames for crashed nodes, delivered after their restart.
    private var parked: [Transmission<Message>] = []
    /// Frames lost in crashes.
    private(set) var lostCount = 0

    init(plan: NetworkPlan, random: ProtocolRandom, steering: (any Steering<Message>)?) {
        self.plan = plan
        self.random = random
        self.steering = steering
    }

    var pendingCount: Int { queue.count + held.count }

    /// Puts a frame on the wire; the plan decides when it arrives. A frame for a crashed node waits for
    /// its restart (the sender's link keeps it until the peer acknowledges it).
    mutating func send(from: Int, to: Int, bytes: [UInt8], message: Message?, fromHonest: Bool) {
        if down.contains(to) {
            sequence += 1
            parked.append(
                Transmission(
                    sequence: sequence, deliverAt: now, from: from, to: to, bytes: bytes, message: message,
                    fromHonest: fromHonest))
            return
        }
        var delay = 1 + random.next() % plan.delaySpread
        if random.next() % 32 == 0 { delay += random.next() % (16 * plan.delaySpread) }
        if plan.rushing && !fromHonest { delay = 1 }
        var deliverAt = now + delay
        for episode in plan.partitions
        where episode.start <= now && now < episode.end && episode.side[from] != episode.side[to] {
            deliverAt = max(deliverAt, episode.end + 1 + random.next() % plan.delaySpread)
        }
        sequence += 1
        let transmission = Transmission(
            sequence: sequence, deliverAt: deliverAt, from: from, to: to, bytes: bytes, message: message,
            fromHonest: fromHonest)
        if let message { steering?.observe(message, from: from, to: to) }
        if to == plan.victim && from != to {
            held.append(transmission)
        } else {
            push(transmission)
        }
    }

    /// Arms a node's own timer (`SimulatedProtocol.isTimer`): it fires as a frame from the node to itself,
    /// usually after several message delays (4–20 times the spread), one time in eight after about one, so
    /// that protocols meet both timers that fire late (their fast paths finish) and timers that fire early
    /// (a timer changes speed, never safety). The scheduler may still reorder it like any frame.
    mutating func sendTimer(to node: Int, bytes: [UInt8], message: Message?) {
        let delay = random.next() % 8 == 0
            ? 1 + random.next() % plan.delaySpread : (4 + random.next() % 17) * plan.delaySpread
        sequence += 1
        let transmission = Transmission(
            sequence: sequence, deliverAt: now + delay, from: node, to: node, bytes: bytes, message: message,
            fromHonest: true)
        if down.contains(node) {
            parked.append(transmission)
        } else {
            push(transmission)
        }
    }

    /// `node` crashes: of the frames in flight to or from it, `lossPercent` per cent (drawn frame by frame)
    /// are lost; the others from it still arrive, the others to it wait for its restart.
    mutating func crash(_ node: Int, lossPercent: UInt64) {
        down.insert(node)
        let affected = queue.filter { $0.to == node || $0.from == node } + held.filter { $0.to == node || $0.from == node }
        queue.removeAll { $0.to == node || $0.from == node }
        held.removeAll { $0.to == node || $0.from == node }
        for parent in stride(from: queue.count / 2 - 1, through: 0, by: -1) { siftDown(parent) }
        for transmission in affected {
            if random.next() % 100 < lossPercent {
                lostCount += 1
            } else if transmission.to == node {
                parked.append(transmission)
            } else if transmission.to == plan.victim {
                held.append(transmission)
            } else {
                push(transmission)
            }
        }
    }

    /// `node` is up again: the frames that waited for it are sent now, in their order.
    mutating func restart(_ node: Int) {
        down.remove(node)
        let waiting = parked.filter { $0.to == node }
        parked.removeAll { $0.to == node }
        for transmission in waiting {
            send(
                from: transmission.from, to: node, bytes: transmission.bytes, message: transmission.message,
                fromHonest: transmission.fromHonest)
        }
    }

    /// The next delivery, or nil when nothing is pending.
    mutating func next() -> Transmission<Message>? {
        if !queue.isEmpty {
            let index = steering == nil ? 0 : steeredIndex()
            let transmission = remove(at: index)
            now = max(now, transmission.deliverAt)
            return transmission
        }
        guard !held.isEmpty else { return nil }
        // Nothing else can move: release one held message, chosen at random (so still reordered).
        let index = Int(random.next() % UInt64(held.count))
        held.swapAt(index, held.count - 1)
        now += 1
        return held.removeLast()
    }

    /// The pending message the steering scheduler wants next: lowest rank, then earliest.
    private func steeredIndex() -> Int {
        guard let steering else { return 0 }
        var best = 0
        var bestKey = (Int.max, UInt64.max, UInt64.max)
        for (index, transmission) in queue.enumerated() {
            let rank = transmission.message.map { steering.rank($0, from: transmission.from, to: transmission.to) }
            let key = (rank ?? Int.max, transmission.deliverAt, transmission.sequence)
            if key < bestKey {
                bestKey = key
                best = index
            }
        }
        return best
    }

    private static func precedes(_ a: Transmission<Message>, _ b: Transmission<Message>) -> Bool {
        (a.deliverAt, a.sequence) < (b.deliverAt, b.sequence)
    }

    private mutating func push(_ transmission: Transmission<Message>) {
        queue.append(transmission)
        siftUp(queue.count - 1)
    }

    private mutating func remove(at index: Int) -> Transmission<Message> {
        queue.swapAt(index, queue.count - 1)
        let removed = queue.removeLast()
        if index < queue.count {
            siftDown(index)
            siftUp(index)
        }
        return removed
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard Network.precedes(queue[child], queue[parent]) else { return }
            queue.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < queue.count && Network.precedes(queue[left], queue[smallest]) { smallest = left }
            if right < queue.count && Network.precedes(queue[right], queue[smallest]) { smallest = right }
            if smallest == parent { return }
            queue.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
