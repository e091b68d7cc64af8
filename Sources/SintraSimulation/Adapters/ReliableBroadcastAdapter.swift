import Crypto
import SintraCore
import SintraCrypto

/// Bracha reliable broadcast (`ReliableBroadcast`) in the simulator: one sender, drawn from all members
/// (so sometimes Byzantine), broadcasts a random payload.
///
/// Expectations (PROTOCOLS.md §3): honest outputs agree; with an honest sender every honest node
/// delivers exactly its payload (validity, integrity); with a Byzantine sender, if one honest node
/// delivers then all do (totality).
///
/// Byzantine behaviours of its own:
/// - `equivocate`: the upper half of the members hear about an alternate payload — its r-send, echoes,
///   readies and answers — and the lower half about the real one;
/// - `lie`: everyone hears about the alternate payload only, and a premature r-ready for it goes out at once.
public struct ReliableBroadcastAdapter: SimulatedProtocol {
    public typealias Instance = ReliableBroadcast.Instance

    public struct Scenario: Sendable {
        public let sender: Int
        public let payload: [UInt8]
        /// What equivocating and lying Byzantine nodes push instead.
        public let alternate: [UInt8]
    }

    public init() {}

    public var name: String { "rbc" }

    public func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
        let sender = 1 + Int(random.next() % UInt64(context.replicas))
        let payload = (0..<Int(random.next() % 48)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        return Scenario(sender: sender, payload: payload, alternate: payload + [UInt8(truncatingIfNeeded: random.next())])
    }

    public func makeInstance(
        node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> Instance {
        Instance(configuration: context.configuration, path: context.path, sender: scenario.sender, me: node)
    }

    public func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<Instance.Message, Instance.Output>
    {
        node == scenario.sender ? instance.broadcast(scenario.payload) : Effects()
    }

    public func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<[UInt8]> {
        guard !context.isByzantine(scenario.sender) else {
            return Guarantees(allMustOutput: false, totality: true)
        }
        return Guarantees(allMustOutput: true, totality: true) { output in
            output == scenario.payload ? nil : "the honest sender \(scenario.sender) broadcast another payload"
        }
    }

    public func agreementKey(_ output: [UInt8]) -> [UInt8] { output }

    public func describe(_ output: [UInt8]) -> String {
        "\(output.count) bytes \(Hex.encode(SHA256.hash(data: output)).prefix(12))"
    }

    public func describe(message: Instance.Message) -> String {
        func short(_ bytes: [UInt8]) -> String { String(Hex.encode(bytes).prefix(12)) }
        func payload(_ bytes: [UInt8]) -> String { "\(bytes.count) bytes \(short(Array(SHA256.hash(data: bytes))))" }
        switch message {
        case .send(let bytes): return "r-send \(payload(bytes))"
        case .echo(let digest): return "r-echo \(short(digest))"
        case .ready(let digest): return "r-ready \(short(digest))"
        case .request: return "r-request"
        case .answer(let bytes): return "r-answer \(payload(bytes))"
        }
    }

    public var specificBehaviours: [String] { ["equivocate", "lie"] }

    public func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message] {
        let lieToThisOne = behaviour == "lie" || view.isUpperHalf(recipient)
        guard lieToThisOne else { return [message] }
        return [swapped(message, scenario: view.scenario)]
    }

    public func forge(behaviour: String, view: ByzantineView<Scenario>, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        guard behaviour == "lie" else { return [] }
        return [Outgoing(.ready(digest: Array(SHA256.hash(data: view.scenario.alternate))), to: .all)]
    }

    public func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        (0..<count).map { index in
            let digest = (0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let message: Instance.Message
            switch index % 4 {
            case 0: message = .echo(digest: digest)
            case 1: message = .ready(digest: digest)
            case 2: message = .request
            default: message = .answer(payload: digest)
            }
            return Outgoing(message, to: .node(1 + Int(random.next() % UInt64(view.context.replicas))))
        }
    }

    /// The message about the other payload: the real one becomes the alternate and vice versa; digests of
    /// neither become the alternate's.
    private func swapped(_ message: Instance.Message, scenario: Scenario) -> Instance.Message {
        let real = Array(SHA256.hash(data: scenario.payload))
        let alternate = Array(SHA256.hash(data: scenario.alternate))
        func other(_ digest: [UInt8]) -> [UInt8] { digest == alternate ? real : alternate }
        switch message {
        case .send(let payload): return .send(payload: payload == scenario.alternate ? scenario.payload : scenario.alternate)
        case .echo(let digest): return .echo(digest: other(digest))
        case .ready(let digest): return .ready(digest: other(digest))
        case .request: return .request
        case .answer(let payload): return .answer(payload: payload == scenario.alternate ? scenario.payload : scenario.alternate)
        }
    }

    public func terminationStepsMax(context: SimulationContext) -> Int {
        // Honest traffic is at most r-send, r-echo, r-ready, r-request and r-answer per pair.
        5 * context.replicas * context.replicas
    }
}
