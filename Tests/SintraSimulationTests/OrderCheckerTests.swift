import SintraCore
import SintraCrypto
import Testing

@testable import SintraSimulation

/// The checkers of ordering protocols fail when they should: fed divergent, duplicated, lost, late or
/// made-up deliveries (as observations, and through the simulator with a deliberately broken replica).
@Suite struct OrderCheckerTests {
    static func batch(_ items: [[UInt8]], step: Int = 1, afterHeal: Int = 0) -> OrderObservation.Batch {
        OrderObservation.Batch(
            step: step, honestDeliveriesAfterHeal: afterHeal, key: items.flatMap { $0 + [0xff] }, text: "\(items)",
            items: items)
    }

    static func observation(_ batches: [[OrderObservation.Batch]], required: [[UInt8]]) -> Observation {
        Observation(
            honest: Array(1...batches.count), outputs: [], allMustOutput: false, totality: false,
            terminationStepsMax: 100, quiescent: true, bufferMaxima: batches.map { _ in 0 }, bufferBound: 0,
            falseAccusations: [], order: OrderObservation(batches: batches, required: required))
    }

    @Test func agreeingPrefixesPass() {
        let full = [Self.batch([[1], [2]]), Self.batch([[3]])]
        // A node that is one batch behind is fine, as long as nothing was required of it beyond.
        let observation = Self.observation([full, Array(full.prefix(1)), full], required: [[1], [2]])
        #expect(Checkers.check(observation).isEmpty)
    }

    @Test func divergentBatchesBreakAgreementAndTotalOrder() {
        let observation = Self.observation(
            [[Self.batch([[1], [2]]), Self.batch([[3]])], [Self.batch([[2], [1]]), Self.batch([[3]])]], required: [])
        #expect(Checkers.check(observation).map(\.kind) == [.agreement, .totalOrder])
    }

    @Test func differentBatchBoundariesBreakAgreementOnly() {
        // The same items in the same order, cut into batches differently: the batches disagree.
        let observation = Self.observation(
            [[Self.batch([[1], [2]]), Self.batch([[3]])], [Self.batch([[1]]), Self.batch([[2], [3]])]], required: [])
        #expect(Checkers.check(observation).map(\.kind) == [.agreement])
    }

    @Test func aRepeatedItemBreaksIntegrity() {
        let batches = [Self.batch([[1], [2]]), Self.batch([[1]])]
        let observation = Self.observation([batches, batches], required: [])
        #expect(Checkers.check(observation).map(\.kind) == [.integrity, .integrity])
    }

    @Test func aMissingRequiredItemIsLost() {
        let observation = Self.observation([[Self.batch([[1], [2]])], [Self.batch([[1], [2]])]], required: [[1], [9]])
        let findings = Checkers.check(observation)
        #expect(findings.map(\.kind) == [.lostRequest, .lostRequest])
        #expect(findings[0].detail.contains("node 1 never delivered 1 of the 2"))
    }

    @Test func aLateRequiredItemBreaksTermination() {
        let late = [Self.batch([[1]]), Self.batch([[2]], afterHeal: 101)]
        let observation = Self.observation([late, late], required: [[1], [2]])
        #expect(Checkers.check(observation).map(\.kind) == [.termination, .termination])
        // Late batches with nothing required in them are fine.
        let idle = [Self.batch([[1], [2]]), Self.batch([], afterHeal: 500)]
        #expect(Checkers.check(Self.observation([idle, idle], required: [[1], [2]])).isEmpty)
    }

    @Test func madeUpItemsAndAdapterFindingsAreReported() {
        var observation = Self.observation([[Self.batch([[1]])]], required: [])
        observation.order!.itemRejections = ["node 1 delivered a request nobody submitted"]
        observation.order!.runFindings = [Checkers.Finding(kind: .validity, detail: "replies differ")]
        #expect(Checkers.check(observation).map(\.kind) == [.validity, .validity])
    }

    /// A deliberately broken replica: node 1 outputs its first two batches in the wrong order. The
    /// simulator's checkers catch it with the seed and a replay command.
    @Test func aDivergentReplicaIsCaught() throws {
        let simulation = Simulation(
            adapter: SwappingAdapter(), cluster: try SimulationCluster.deal(replicas: 4, faulty: 1))
        let adversary = Adversary(name: "silent", scheduler: .random, behaviour: "silent")
        var caught = 0
        for seed in UInt64(1)...6 {
            let result = simulation.run(seed: seed, adversary: adversary)
            guard !result.byzantine.contains(1), (result.order?.batchesMax ?? 0) >= 2 else { continue }
            let kinds = Set(result.violations.map(\.kind))
            #expect(kinds.isSuperset(of: [.agreement, .totalOrder]), "seed \(seed): \(result.violations)")
            #expect(result.violations.allSatisfy { $0.seed == seed && $0.replay.contains("--seed \(seed)") })
            caught += 1
        }
        #expect(caught > 0)
    }
}

/// `abc` with a faulty node 1 that outputs its second batch before its first.
struct SwappingAdapter: SimulatedProtocol {
    typealias Instance = Swapping
    typealias Scenario = AtomicBroadcastAdapter.Scenario

    struct Swapping: ProtocolInstance {
        var inner: AtomicBroadcastNode
        let me: Int
        var held: AtomicBroadcast.Batch?

        var path: InstancePath { inner.path }
        var isFinished: Bool { inner.isFinished }

        mutating func handle(_ message: AtomicBroadcast.Message, from sender: Int)
            -> Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>
        {
            swapped(inner.handle(message, from: sender))
        }

        mutating func swapped(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>)
            -> Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>
        {
            guard me == 1 else { return effects }
            var result = effects
            result.outputs = []
            for batch in effects.outputs {
                if batch.round == 1 {
                    held = batch
                } else if let first = held {
                    result.outputs += [batch, first]
                    held = nil
                } else {
                    result.outputs.append(batch)
                }
            }
            return result
        }
    }

    let base = AtomicBroadcastAdapter(requestCount: 4, batchCountMax: 1)

    var name: String { "abc-swapping" }

    func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
        base.makeScenario(context: context, random: &random)
    }

    func makeInstance(node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom)
        -> Instance
    {
        Swapping(inner: base.makeInstance(node: node, scenario: scenario, context: context, random: &random), me: node)
    }

    func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>
    {
        instance.swapped(base.start(&instance.inner, node: node, scenario: scenario, context: context))
    }

    func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<AtomicBroadcast.Batch> {
        base.guarantees(scenario: scenario, context: context)
    }

    func agreementKey(_ output: AtomicBroadcast.Batch) -> [UInt8] { base.agreementKey(output) }
    func describe(_ output: AtomicBroadcast.Batch) -> String { base.describe(output) }
    func terminationStepsMax(context: SimulationContext) -> Int { base.terminationStepsMax(context: context) }
}
