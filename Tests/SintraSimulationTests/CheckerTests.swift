import SintraCore
import SintraCrypto
import SintraSimulation
import Testing

/// A deliberately broken one-shot broadcast: the sender sends its value, every node delivers what it
/// gets — with one flaw per checker, so that each checker is shown to fail when it should.
enum ToyBroadcast {
    enum Flaw: String, CaseIterable, Sendable {
        /// Delivers the first value from the sender, with no echo phase: an equivocating sender splits it.
        case trustFirst
        case deliverTwice
        case corrupt
        case neverDeliver
        case accuseSender
        case hoard
    }

    enum Message: WireMessage {
        case value([UInt8])

        func encode(into writer: inout ByteWriter) {
            writer.write(UInt8(0))
            writer.writeVariable(Array(payload))
        }

        private var payload: [UInt8] {
            switch self { case .value(let bytes): bytes }
        }

        init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            _ = try reader.readTag(below: 1)
            self = .value(try reader.readVariable(maximum: limits.payloadBytesMax))
        }
    }

    struct Instance: ProtocolInstance {
        typealias Output = [UInt8]
        let path: InstancePath
        let me: Int
        let sender: Int
        let flaw: Flaw
        var delivered = false
        var received = 0

        var isFinished: Bool { delivered }

        mutating func handle(_ message: Message, from node: Int) -> Effects<Message, [UInt8]> {
            var effects = Effects<Message, [UInt8]>()
            received += 1
            guard case .value(let value) = message, node == sender, !delivered else { return effects }
            switch flaw {
            case .trustFirst, .hoard:
                delivered = true
                effects.output(value)
            case .deliverTwice:
                delivered = true
                effects.output(value)
                effects.output(value)
            case .corrupt:
                delivered = true
                effects.output(value + [1])
            case .neverDeliver:
                break
            case .accuseSender:
                delivered = true
                effects.output(value)
                effects.fault(node, path, .equivocation, "made-up accusation")
            }
            return effects
        }
    }

    struct Adapter: SimulatedProtocol {
        let flaw: Flaw

        struct Scenario {
            let sender: Int
            let value: [UInt8]
        }

        var name: String { "toy-\(flaw.rawValue)" }

        func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
            // The equivocation flaw needs a Byzantine sender; every other flaw an honest one.
            let sender = flaw == .trustFirst ? context.byzantine[0] : context.honest[0]
            return Scenario(sender: sender, value: [UInt8(truncatingIfNeeded: random.next())])
        }

        func makeInstance(node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom)
            -> Instance
        { Instance(path: context.path, me: node, sender: scenario.sender, flaw: flaw) }

        func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
            -> Effects<Message, [UInt8]>
        {
            var effects = Effects<Message, [UInt8]>()
            if node == scenario.sender {
                effects.broadcast(.value(scenario.value))
                if flaw == .hoard { effects.broadcast(.value(scenario.value)) }
            }
            return effects
        }

        func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<[UInt8]> {
            Guarantees(allMustOutput: !context.isByzantine(scenario.sender), totality: false) {
                $0 == scenario.value || context.isByzantine(scenario.sender) ? nil : "not the sender's value"
            }
        }

        func agreementKey(_ output: [UInt8]) -> [UInt8] { output }
        func describe(_ output: [UInt8]) -> String { "\(output)" }

        var specificBehaviours: [String] { ["equivocate"] }

        func tamper(
            _ message: Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
            memory: inout ByzantineMemory, random: inout ProtocolRandom
        ) -> [Message] {
            guard view.isUpperHalf(recipient), case .value(let value) = message else { return [message] }
            return [.value(value + [0xee])]
        }

        func bufferedMessageCount(_ instance: Instance) -> Int { flaw == .hoard ? instance.received : 0 }
        func bufferedMessageCountMax(context: SimulationContext) -> Int { 1 }
        func terminationStepsMax(context: SimulationContext) -> Int { context.replicas * context.replicas }
    }
}

/// Each checker reports the flaw it exists for, with the seed and the command that replays the run.
@Suite struct CheckerTests {
    static let expected: [(ToyBroadcast.Flaw, String, Violation.Kind)] = [
        (.trustFirst, "equivocate", .agreement),
        (.deliverTwice, "silent", .integrity),
        (.corrupt, "silent", .validity),
        (.neverDeliver, "silent", .termination),
        (.accuseSender, "silent", .falseAccusation),
        (.hoard, "silent", .bufferBound),
    ]

    @Test(arguments: 0..<expected.count)
    func checkerCatchesItsFlaw(index: Int) throws {
        let (flaw, behaviour, kind) = Self.expected[index]
        let simulation = Simulation(
            adapter: ToyBroadcast.Adapter(flaw: flaw), cluster: try SimulationCluster.deal(replicas: 4, faulty: 1))
        let adversary = Adversary(name: behaviour, scheduler: .random, behaviour: behaviour)
        let result = simulation.run(seed: 5, adversary: adversary)
        let violation = try #require(result.violations.first { $0.kind == kind }, "\(result.violations)")
        #expect(violation.seed == 5)
        #expect(violation.replay.hasSuffix("--adversary \(behaviour) --seed 5 --seeds 1"))
        #expect(violation.description.contains("seed 5"))
        // The violation replays.
        #expect(simulation.run(seed: 5, adversary: adversary).violations == result.violations)
    }

    @Test func flawsThatDoNotShowPassEveryChecker() throws {
        // The no-echo toy is fine as long as its Byzantine sender does not equivocate.
        let simulation = Simulation(
            adapter: ToyBroadcast.Adapter(flaw: .trustFirst), cluster: try SimulationCluster.deal(replicas: 4, faulty: 1))
        for behaviour in ["silent", "crash", "replay"] {
            let result = simulation.run(
                seed: 5, adversary: Adversary(name: behaviour, scheduler: .random, behaviour: behaviour))
            #expect(result.violations.isEmpty, "\(behaviour): \(result.violations)")
        }
    }

    @Test func injectedDivergentOutputBreaksAgreement() {
        func output(_ node: Int, _ key: [UInt8]) -> Observation.Output {
            Observation.Output(node: node, step: node, honestDeliveriesAfterHeal: 0, key: key, text: "\(key)", rejection: nil)
        }
        var observation = Observation(
            honest: [1, 2, 3], outputs: [output(1, [7]), output(2, [7]), output(3, [7])], allMustOutput: true,
            totality: false, terminationStepsMax: 10, quiescent: true, bufferMaxima: [0, 0, 0], bufferBound: 0,
            falseAccusations: [])
        #expect(Checkers.check(observation).isEmpty)
        observation.outputs[2] = output(3, [8])
        #expect(Checkers.check(observation).map(\.kind) == [.agreement])
        observation.outputs.removeLast()
        #expect(Checkers.check(observation).map(\.kind) == [.termination])
        observation.allMustOutput = false
        observation.totality = true
        #expect(Checkers.check(observation).map(\.kind) == [.totality])
        observation.outputs = [output(1, [7]), output(2, [7]), output(3, [7])]
        observation.outputs[1] = Observation.Output(
            node: 2, step: 2, honestDeliveriesAfterHeal: 11, key: [7], text: "late", rejection: nil)
        #expect(Checkers.check(observation).map(\.kind) == [.termination])
    }
}
