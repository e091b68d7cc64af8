import SintraCore
import SintraCrypto
import Testing

@testable import SintraSimulation

/// The checkers of ordering protocols fail when they should: fed divergent, duplicated, lost, late or
/// made-up deliveries.
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
}
