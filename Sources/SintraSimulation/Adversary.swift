import SintraCore

/// How a Byzantine node behaves. The generic behaviours work for every protocol; `specific` ones are
/// implemented by the protocol's adapter (`SimulatedProtocol.tamper`, `forge`).
public enum ByzantineBehaviour: Sendable, Hashable, CustomStringConvertible {
    /// Sends nothing, ever.
    case silent
    /// Follows the protocol, then stops sending (and listening) after `afterSends` messages.
    case crash(afterSends: Int)
    /// Follows the protocol and mixes in garbage: random bytes, random bodies, mutated bodies, frames of
    /// another cluster, version, claimed sender or instance.
    case garbage
    /// Sends messages recorded in another instance (another path) as its own, and relays honest
    /// messages of this instance as its own.
    case replay
    /// Follows the protocol and floods: the adapter's well-formed flood (far-future rounds) and garbage.
    case flood
    /// A behaviour of the protocol's adapter, by name (e.g. `equivocate`, `vote-both`).
    case specific(String)

    /// Names of the generic behaviours, as `--adversary` takes them.
    public static let genericNames = ["silent", "crash", "garbage", "replay", "flood"]

    public var name: String {
        switch self {
        case .silent: "silent"
        case .crash: "crash"
        case .garbage: "garbage"
        case .replay: "replay"
        case .flood: "flood"
        case .specific(let name): name
        }
    }

    public var description: String {
        if case .crash(let afterSends) = self { return "crash after \(afterSends) sends" }
        return name
    }

    /// The behaviour called `name`, drawing its parameters (the crash point) from `random`.
    static func named(_ name: String, replicas: Int, random: inout ProtocolRandom) -> ByzantineBehaviour {
        switch name {
        case "silent": return .silent
        case "crash": return .crash(afterSends: Int(random.next() % UInt64(3 * replicas)))
        case "garbage": return .garbage
        case "replay": return .replay
        case "flood": return .flood
        default: return .specific(name)
        }
    }
}

/// How the adversary orders deliveries. In every kind, every message between honest nodes is delivered
/// eventually (asynchrony, not loss).
public enum SchedulerKind: String, Sendable, CaseIterable, Codable {
    /// Random delays, so random reordering; sometimes a long delay; sometimes Byzantine messages rush.
    case random
    /// As `random`, but one honest node's incoming messages are held as long as anything else can be
    /// delivered, then released one at a time.
    case starve
    /// As `random`, plus one to three episodes in which messages across a cut are held until the episode
    /// ends (partitions that heal).
    case partition
    /// The adapter's steering scheduler (ABBA: split and steer against the coin).
    case steer
}

/// Honest nodes that crash, losing everything but what they persisted, and restart from it
/// (`SimulatedProtocol.restart`; docs/DURABILITY.md, "Crash-restart in the simulator").
public enum RestartMode: String, Sendable, Hashable, Codable {
    /// k honest nodes (1 ≤ k ≤ t, from the seed) crash and restart, each one to three times, and only
    /// t − k nodes are Byzantine: at most t nodes are faulty or restarting at any moment, which is what
    /// stage 1 of durability claims to be live with. Every check applies, liveness included.
    case withinBound
    /// t Byzantine nodes, and more than t honest nodes (t + 1 up to all of them) crash at about the same
    /// step, some again later. Safety is checked as always. Liveness is promised only by durability stage 2
    /// (replicas replay their journal, and peers send a restarted one their messages of the rounds it asks
    /// for again); without the journal (`--no-journal`) a round in flight at more than t restarting nodes
    /// may never finish. A required request missing at the end is counted as a stall, reported apart from
    /// the violations, so that the two stages can be compared.
    case beyondBound
}

/// A named attack: a scheduler and the behaviour of the Byzantine nodes; `nil` means the seed chooses
/// (the scheduler among random, starve, partition and, if the protocol has one, steer; the behaviour per
/// Byzantine node from the whole library). `restarts` adds honest nodes that crash and restart.
public struct Adversary: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let scheduler: SchedulerKind?
    public let behaviour: String?
    public let restarts: RestartMode?

    public init(name: String, scheduler: SchedulerKind?, behaviour: String?, restarts: RestartMode? = nil) {
        self.name = name
        self.scheduler = scheduler
        self.behaviour = behaviour
        self.restarts = restarts
    }

    public var description: String { name }

    /// Every adversary for a protocol with these specific behaviours: one per behaviour (with a scheduler
    /// chosen by the seed), then one per adversarial scheduler (with mixed behaviours, except that `steer`
    /// uses the adapter's `steeringBehaviour` if it names one).
    /// With `restarts`, also `restart` (within the bound) and `restart-many` (beyond it), with schedulers
    /// and behaviours chosen by the seed.
    public static func catalogue(
        specificBehaviours: [String], steering: Bool, steeringBehaviour: String? = nil, restarts: Bool = false
    ) -> [Adversary] {
        var result = (ByzantineBehaviour.genericNames + specificBehaviours).map {
            Adversary(name: $0, scheduler: nil, behaviour: $0)
        }
        result.append(Adversary(name: "starve", scheduler: .starve, behaviour: nil))
        result.append(Adversary(name: "partition", scheduler: .partition, behaviour: nil))
        if steering { result.append(Adversary(name: "steer", scheduler: .steer, behaviour: steeringBehaviour)) }
        if restarts {
            result.append(Adversary(name: "restart", scheduler: nil, behaviour: nil, restarts: .withinBound))
            result.append(Adversary(name: "restart-many", scheduler: nil, behaviour: nil, restarts: .beyondBound))
        }
        return result
    }

    /// Every adversary for `adapter`.
    public static func catalogue<P: SimulatedProtocol>(for adapter: P) -> [Adversary] {
        catalogue(
            specificBehaviours: adapter.specificBehaviours, steering: adapter.hasSteering,
            steeringBehaviour: adapter.steeringBehaviour, restarts: adapter.supportsRestart)
    }
}

/// One crash of an honest node and its restart, drawn from the seed.
struct CrashEvent: Sendable {
    let node: Int
    /// The delivery from which the crash is due (if the network runs dry first, it happens then).
    let step: Int
    /// Deliveries while the node is down (it restarts earlier if nothing else can be delivered).
    let downSteps: Int
    /// nil: the node crashes between two calls. Otherwise it crashes inside its next call at or after
    /// `step`: after the call's commit, with only this many of the call's frames sent.
    let sendsBeforeCrash: Int?
    /// Per cent of the frames in flight to or from the node at the crash that are lost (acknowledged by
    /// the link but not yet handled, or not yet sent from the crashed sender's queue); the others arrive,
    /// those to the node after its restart. Frames sent to it while it is down wait for its restart (the
    /// sender's link holds them until acknowledged).
    let lossPercent: UInt64

    /// The crashes of a run: for `withinBound`, one to three per crashing node, spread over `window`
    /// deliveries; for `beyondBound`, every crashing node once near one common step, then some again.
    static func draw(
        _ mode: RestartMode, crashers: [Int], replicas: Int, window: Int, random: inout ProtocolRandom
    ) -> [CrashEvent] {
        let loss: UInt64 = [0, 50, 100][Int(random.next() % 3)]
        let window = max(window, 8)
        func event(_ node: Int, at step: Int) -> CrashEvent {
            CrashEvent(
                node: node, step: step, downSteps: Int(random.next() % UInt64(window / 2)),
                sendsBeforeCrash: random.next() % 2 == 0 ? nil : Int(random.next() % UInt64(2 * replicas)),
                lossPercent: loss)
        }
        var events = [CrashEvent]()
        switch mode {
        case .withinBound:
            for node in crashers {
                var step = 0
                for _ in 0...(random.next() % 3) {
                    step += 1 + Int(random.next() % UInt64(window))
                    events.append(event(node, at: step))
                }
            }
        case .beyondBound:
            let common = 1 + Int(random.next() % UInt64(window))
            for node in crashers {
                events.append(event(node, at: common + Int(random.next() % UInt64(2 * replicas))))
                if random.next() % 2 == 0 {
                    events.append(event(node, at: common + 1 + Int(random.next() % UInt64(window))))
                }
            }
        }
        return events.sorted { ($0.step, $0.node) < ($1.step, $1.node) }
    }
}
