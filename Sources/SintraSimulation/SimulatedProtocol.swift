import SintraCore
import SintraCrypto

/// What an adapter may read about one run: the group, every member's keys (a Byzantine coalition knows
/// its own members' keys; an honest node's instance must only be given its own), the instance path, the
/// decoder limits and who is Byzantine.
public struct SimulationContext: Sendable {
    public let configuration: GroupConfiguration
    /// Member i's keys at position i − 1.
    public let keys: [LocalKeys]
    /// The path of the instance under test; it contains the seed, so coin names differ between runs.
    public let path: InstancePath
    public let limits: WireLimits
    /// Byzantine members, in increasing order.
    public let byzantine: [Int]
    /// Honest members, in increasing order.
    public let honest: [Int]
    public let seed: UInt64

    public var replicas: Int { configuration.replicas }
    public var faulty: Int { configuration.faulty }

    public func isByzantine(_ node: Int) -> Bool { byzantine.contains(node) }

    /// Member `node`'s keys.
    public func keys(of node: Int) -> LocalKeys { keys[node - 1] }
}

/// What the honest nodes of a run must and must not do, decided by the adapter from the run's inputs.
/// The checkers (`Checkers`) read only this and the outputs, never the protocol's internal state.
public struct Guarantees<Output> {
    /// Every honest node must output (validity for an honest sender; termination for agreement).
    public var allMustOutput: Bool
    /// If one honest node outputs, every honest node must (totality of reliable broadcast).
    public var totality: Bool
    /// Why an honest node must not have produced `output`, or nil if it may have (validity, integrity).
    public var rejects: (Output) -> String?
    /// For ordering protocols, whose nodes output many batches: what the sequences must satisfy. When set,
    /// the checkers compare sequences (`Checkers.order`) instead of expecting one output per node.
    public var order: OrderGuarantees<Output>?

    public init(allMustOutput: Bool, totality: Bool, rejects: @escaping (Output) -> String? = { _ in nil }) {
        self.allMustOutput = allMustOutput
        self.totality = totality
        self.rejects = rejects
    }
}

/// A Byzantine node's view when an adapter tampers with or forges its messages.
public struct ByzantineView<Scenario> {
    /// The Byzantine node.
    public let me: Int
    public let scenario: Scenario
    public let context: SimulationContext

    /// Whether `recipient` is in the upper half of the members, the half an equivocator lies to.
    public func isUpperHalf(_ recipient: Int) -> Bool { recipient > context.replicas / 2 }
}

/// An adversarial delivery order that reads the protocol's messages in flight, e.g. ABBA's "split and
/// steer" scheduler (PROTOCOLS.md §5, binding caution). The network delivers the pending message of
/// lowest rank next (ties: earliest scheduled), so every message is still delivered eventually.
public protocol Steering<Message> {
    associatedtype Message

    /// Sees every message when it is sent (the adversary reads the network).
    mutating func observe(_ message: Message, from sender: Int, to recipient: Int)

    /// The delivery priority of a pending message; lower is delivered first.
    func rank(_ message: Message, from sender: Int, to recipient: Int) -> Int
}

/// Plugs one protocol into the simulator: how node i's instance is made and started, the protocol's own
/// Byzantine behaviours, and what its honest nodes must output. One adapter file per protocol.
public protocol SimulatedProtocol {
    associatedtype Instance: ProtocolInstance
    /// The inputs of one run (sender and payload, proposed bits, ...), drawn from the seed.
    associatedtype Scenario
    /// What a Byzantine node running one of this protocol's behaviours remembers between messages (e.g.
    /// signatures collected for an alternate payload).
    associatedtype ByzantineMemory = Void

    /// The name on the command line (`rbc`, `cbc`, `vcbc`, `abba`).
    var name: String { get }

    /// Draws the run's inputs.
    func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario

    /// Node `node`'s instance. `random` is the node's own stream.
    func makeInstance(node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom)
        -> Instance

    /// Gives node `node` its input (broadcast a payload, propose a bit); may return no effects.
    func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<Instance.Message, Instance.Output>

    /// What honest nodes must do in this run.
    func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<Instance.Output>

    /// The bytes on which honest outputs must agree (e.g. the payload, not the certificate).
    func agreementKey(_ output: Instance.Output) -> [UInt8]

    /// A short description of an output for reports.
    func describe(_ output: Instance.Output) -> String

    /// A short description of a message for traces.
    func describe(message: Instance.Message) -> String

    /// Names of this protocol's own Byzantine behaviours (e.g. `equivocate`, `vote-both`).
    var specificBehaviours: [String] { get }

    /// What a Byzantine node running `behaviour` actually sends to `recipient` instead of `message`,
    /// which its honest shadow instance wanted to send (empty: drop it).
    func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message]

    /// A Byzantine node's memory when the run starts.
    func makeByzantineMemory(view: ByzantineView<Scenario>) -> ByzantineMemory

    /// What a Byzantine node running `behaviour` sends in reaction to receiving `message` from `sender`,
    /// besides what its shadow instance sends. Called before the shadow sees the message, so `memory` can
    /// already serve the shadow's answer in `tamper`.
    func intercept(
        _ message: Instance.Message, from sender: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Outgoing<Instance.Message>]

    /// Messages a Byzantine node running `behaviour` sends on its own when the run starts.
    func forge(behaviour: String, view: ByzantineView<Scenario>, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]

    /// Well-formed messages for flooding (e.g. far-future rounds); the simulator adds garbage frames.
    func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom) -> [Outgoing<Instance.Message>]

    /// How many messages the instance holds for later (future rounds); checked after every delivery.
    func bufferedMessageCount(_ instance: Instance) -> Int

    /// Whether `message`, sent by a node to itself, is a timer: the network delivers it after a delay of
    /// its choosing (`Network.sendTimer`) instead of handing it back at once.
    func isTimer(_ message: Instance.Message) -> Bool

    /// The bound on `bufferedMessageCount` that the protocol promises.
    func bufferedMessageCountMax(context: SimulationContext) -> Int

    /// The round in which the instance decided (binary agreement), if any.
    func decisionRound(_ instance: Instance) -> Int?

    /// The most deliveries of honest messages after the network heals before every honest node that must
    /// output has output (the simulator adds the Byzantine nodes' message budget).
    func terminationStepsMax(context: SimulationContext) -> Int

    /// Whether `makeSteering` returns a scheduler (then the `steer` adversary exists for this protocol).
    var hasSteering: Bool { get }

    /// The Byzantine behaviour the `steer` adversary pairs with the steering scheduler (nil: mixed).
    var steeringBehaviour: String? { get }

    /// An adversarial scheduler that reads this protocol's messages, if the protocol has one.
    func makeSteering(scenario: Scenario, context: SimulationContext) -> (any Steering<Instance.Message>)?

    /// Command-line options that shape this adapter's scenarios (e.g. ` --requests 2`), for replay commands.
    var commandLineOptions: String { get }

    /// Whether honest nodes can crash and restart from what they persisted (then the `restart` adversaries
    /// exist for this protocol).
    var supportsRestart: Bool { get }

    /// Node `node` after a crash: a new instance built only from what `crashed` had persisted (all its
    /// volatile state is lost), and the effects of starting it. `random` is a fresh stream for the node.
    func restart(
        _ crashed: Instance, node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> (Instance, Effects<Instance.Message, Instance.Output>)

    /// Where a restarted instance resumed, for the report (e.g. the round and the silent rounds).
    func describeResumption(_ instance: Instance) -> String

    /// Tells `instance` that `peer` restarted, as a replica learns it from the peer's new link
    /// incarnation (`ReceivedFrame.incarnation`); called on every other live node at each restart.
    func peerRestarted(_ instance: inout Instance, peer: Int)
}

extension SimulatedProtocol {
    public func describe(message: Instance.Message) -> String {
        let text = String(describing: message)
        return text.count > 100 ? String(text.prefix(100)) + "…" : text
    }

    public var specificBehaviours: [String] { [] }

    public func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message] { [message] }

    public func forge(behaviour: String, view: ByzantineView<Scenario>, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    { [] }

    public func intercept(
        _ message: Instance.Message, from sender: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Outgoing<Instance.Message>] { [] }

    public func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    { [] }

    public func bufferedMessageCount(_ instance: Instance) -> Int { 0 }

    public func isTimer(_ message: Instance.Message) -> Bool { false }

    public func bufferedMessageCountMax(context: SimulationContext) -> Int { 0 }

    public func decisionRound(_ instance: Instance) -> Int? { nil }

    public var hasSteering: Bool { false }

    public var steeringBehaviour: String? { nil }

    public func makeSteering(scenario: Scenario, context: SimulationContext) -> (any Steering<Instance.Message>)? {
        nil
    }

    public var commandLineOptions: String { "" }

    public var supportsRestart: Bool { false }

    public func restart(
        _ crashed: Instance, node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> (Instance, Effects<Instance.Message, Instance.Output>) {
        preconditionFailure("\(name) does not support crash-restart")
    }

    public func describeResumption(_ instance: Instance) -> String { "" }

    public func peerRestarted(_ instance: inout Instance, peer: Int) {}
}

extension SimulatedProtocol where ByzantineMemory == Void {
    public func makeByzantineMemory(view: ByzantineView<Scenario>) {}
}
