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

/// A named attack: a scheduler and the behaviour of the Byzantine nodes; `nil` means the seed chooses
/// (the scheduler among random, starve, partition and, if the protocol has one, steer; the behaviour per
/// Byzantine node from the whole library).
public struct Adversary: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let scheduler: SchedulerKind?
    public let behaviour: String?

    public init(name: String, scheduler: SchedulerKind?, behaviour: String?) {
        self.name = name
        self.scheduler = scheduler
        self.behaviour = behaviour
    }

    public var description: String { name }

    /// Every adversary for a protocol with these specific behaviours: one per behaviour (with a scheduler
    /// chosen by the seed), then one per adversarial scheduler (with mixed behaviours, except that `steer`
    /// uses the adapter's `steeringBehaviour` if it names one).
    public static func catalogue(
        specificBehaviours: [String], steering: Bool, steeringBehaviour: String? = nil
    ) -> [Adversary] {
        var result = (ByzantineBehaviour.genericNames + specificBehaviours).map {
            Adversary(name: $0, scheduler: nil, behaviour: $0)
        }
        result.append(Adversary(name: "starve", scheduler: .starve, behaviour: nil))
        result.append(Adversary(name: "partition", scheduler: .partition, behaviour: nil))
        if steering { result.append(Adversary(name: "steer", scheduler: .steer, behaviour: steeringBehaviour)) }
        return result
    }

    /// Every adversary for `adapter`.
    public static func catalogue<P: SimulatedProtocol>(for adapter: P) -> [Adversary] {
        catalogue(
            specificBehaviours: adapter.specificBehaviours, steering: adapter.hasSteering,
            steeringBehaviour: adapter.steeringBehaviour)
    }
}
