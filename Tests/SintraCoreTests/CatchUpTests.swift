import SintraCore
import SintraCrypto
import Testing

/// Atomic broadcast's catch-up across restarts (docs/DURABILITY.md, "What the simulation found"): answers
/// carry delivered batches, a restarted party answers from the batches on disk, a peer that asks again
/// after its restart is answered again, and a resumed party asks for the rounds whose messages it lost.
@Suite struct CatchUpTests {
    /// Three rounds delivered everywhere by a 4-party network; returns it and party 1's batches.
    static func decidedRounds() throws -> (TestNetwork<AtomicBroadcast.Instance>, [AtomicBroadcast.Batch]) {
        // Without the fast path: a party answers a stop in a round it delivered with its batch, which
        // would use up answers these tests count.
        var network = try AtomicBroadcastTests.network(n: 4, t: 1, seed: 21, optimistic: false)
        for index in 0..<3 {
            for me in 1...4 {
                let (_, effects) = network.nodes[me]!.submit(Array("round \(index) from \(me)".utf8))
                network.absorb(effects, from: me)
            }
            network.run()
        }
        let batches = network.outputs[1] ?? []
        #expect(batches.count >= 3)
        return (network, batches)
    }

    static func answers(_ effects: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>) -> [[[UInt8]]] {
        effects.messages.compactMap {
            if case .catchUpResponse(_, _, let batch) = $0.message { return batch }
            return nil
        }
    }

    /// An honest party asks for a round once per life, so a repeat comes from a peer that restarted before
    /// the answer arrived: it is answered again, up to `catchUpAnswersPerPeerMax` times.
    @Test func aPeerThatAsksAgainIsAnsweredAgainUpToTheCap() throws {
        var (network, batches) = try Self.decidedRounds()
        let cap = network.nodes[1]!.limits.catchUpAnswersPerPeerMax
        var answered = [[[UInt8]]]()
        for _ in 0..<(cap + 2) {
            answered += Self.answers(network.nodes[1]!.handle(.catchUpRequest(round: 1), from: 4))
        }
        #expect(answered.count == cap)
        #expect(answered.allSatisfy { $0 == batches[0].requests })
    }

    /// A peer killed again and again before it could take in the answers uses up the cap; once its shell
    /// reports that it restarted (a new link incarnation), its next life is answered again, and only it.
    @Test func aRestartedPeerIsAnsweredAgainAfterTheCap() throws {
        var (network, batches) = try Self.decidedRounds()
        let cap = network.nodes[1]!.limits.catchUpAnswersPerPeerMax
        for _ in 0..<cap { _ = network.nodes[1]!.handle(.catchUpRequest(round: 1), from: 4) }
        #expect(Self.answers(network.nodes[1]!.handle(.catchUpRequest(round: 1), from: 4)).isEmpty)
        for _ in 0..<cap { _ = network.nodes[1]!.handle(.catchUpRequest(round: 1), from: 3) }
        network.nodes[1]!.peerRestarted(4)
        #expect(Self.answers(network.nodes[1]!.handle(.catchUpRequest(round: 1), from: 4)) == [batches[0].requests])
        #expect(Self.answers(network.nodes[1]!.handle(.catchUpRequest(round: 1), from: 3)).isEmpty)
    }

    /// A party restarted from its store (no decided vectors, only batches) answers for rounds it delivered
    /// before the restart with exactly the batch it delivered.
    @Test func aRestartedPartyAnswersForRoundsBeforeItsRestart() throws {
        let (_, batches) = try Self.decidedRounds()
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        var resumed = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys[0], path: AtomicBroadcastTests.path, random: .seeded(5),
            resuming: .init(nextRound: batches.last!.round + 1, recentBatches: batches, sendHorizon: 0))
        for batch in batches {
            let effects = resumed.handle(.catchUpRequest(round: batch.round), from: 3)
            #expect(Self.answers(effects) == [batch.requests])
        }
    }

    /// Rounds 1 to 999 of 1,000-byte requests, one per round, as a store would give them back.
    static func storedRounds(through last: UInt64) -> [AtomicBroadcast.Batch] {
        (1...last).map { round in
            let label = Array("request \(round)".utf8)
            return AtomicBroadcast.Batch(round: round, requests: [label + [UInt8](repeating: 0, count: 1000 - label.count)])
        }
    }

    /// The catch-up memory (`Limits.catchUpRounds`, 256 rounds) outlasts the deduplication memory (64): a
    /// restarted party answers for the last 256 rounds from its stored batches and no older ones, and knows
    /// the digests of the last 64 only. Within a byte budget it forgets the oldest batches early, but never
    /// those of the last 64 rounds.
    @Test func theCatchUpMemoryOutlastsDeduplicationWithinItsByteBudget() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        let batches = Self.storedRounds(through: 999)
        func resumed(bytes: Int) -> AtomicBroadcast.Instance {
            var limits = AtomicBroadcast.Limits()
            limits.catchUpMemoryBytesMax = bytes
            return AtomicBroadcast.Instance(
                configuration: configuration, keys: keys[0], path: AtomicBroadcastTests.path, random: .seeded(5),
                limits: limits, resuming: .init(nextRound: 1000, recentBatches: batches, sendHorizon: 0))
        }
        func answered(_ party: inout AtomicBroadcast.Instance) -> [UInt64] {
            (1...999).filter { round in
                Self.answers(party.handle(.catchUpRequest(round: round), from: 3)) == [batches[Int(round) - 1].requests]
            }
        }
        var party = resumed(bytes: 128 << 20)
        #expect(party.limits.catchUpRounds == 256 && party.limits.deliveredMemoryRounds == 64)
        #expect(answered(&party) == Array(744...999))
        let known = batches.filter { party.knows(AtomicBroadcast.digest($0.requests[0])) }.map(\.round)
        #expect(known == Array(936...999))
        // 100 rounds' bytes: the last 100 rounds are kept; 10 rounds' bytes: the deduplication memory's 64.
        var hundred = resumed(bytes: 100 * 1000)
        #expect(answered(&hundred) == Array(900...999))
        var ten = resumed(bytes: 10 * 1000)
        #expect(answered(&ten) == Array(936...999))
    }

    /// A running party forgets delivered batches as it goes: with a catch-up memory of 4 rounds and a
    /// deduplication memory of 2, after 8 rounds it answers for the last 4 and knows the digests of the
    /// last 2.
    @Test func aRunningPartyKeepsTheCatchUpMemoryItIsGiven() throws {
        var limits = AtomicBroadcast.Limits()
        limits.deliveredMemoryRounds = 2
        limits.catchUpMemoryRounds = 4
        var network = try AtomicBroadcastTests.network(n: 4, t: 1, seed: 22, optimistic: false, limits: limits)
        for index in 0..<8 {
            for me in 1...4 {
                let (_, effects) = network.nodes[me]!.submit(Array("round \(index) from \(me)".utf8))
                network.absorb(effects, from: me)
            }
            network.run()
        }
        let batches = try #require(network.outputs[1])
        let next = network.nodes[1]!.round
        #expect(next >= 9 && batches.count == Int(next - 1))
        var answered = [UInt64]()
        for batch in batches
        where Self.answers(network.nodes[1]!.handle(.catchUpRequest(round: batch.round), from: 4)) == [batch.requests] {
            answered.append(batch.round)
        }
        #expect(answered == Array((next - 4)...(next - 1)))
        let known = batches.filter { batch in
            !batch.requests.isEmpty && batch.requests.allSatisfy { network.nodes[1]!.knows(AtomicBroadcast.digest($0)) }
        }
        #expect(known.map(\.round) == batches.filter { $0.round >= next - 2 && !$0.requests.isEmpty }.map(\.round))
    }

    /// t + 1 equal batches deliver the round; a batch no honest party can have delivered (not in digest
    /// order) is a fault and does not count.
    @Test func equalBatchesFromTPlusOnePeersDeliverAndAnImpossibleOneIsAFault() throws {
        let (_, batches) = try Self.decidedRounds()
        let first = try #require(batches.first { $0.requests.count >= 2 })
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        var laggard = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys[3], path: AtomicBroadcastTests.path, random: .seeded(6),
            resuming: .init(
                nextRound: first.round, recentBatches: batches.filter { $0.round < first.round }, sendHorizon: 0))
        let highest = batches.last!.round
        let reversed = laggard.handle(
            .catchUpResponse(round: first.round, highestRound: highest, batch: first.requests.reversed()), from: 1)
        #expect(reversed.faults.map(\.kind) == [.invalidProof])
        let one = laggard.handle(.catchUpResponse(round: first.round, highestRound: highest, batch: first.requests), from: 2)
        #expect(one.outputs.isEmpty)
        let two = laggard.handle(.catchUpResponse(round: first.round, highestRound: highest, batch: first.requests), from: 3)
        #expect(two.outputs == [first])
        #expect(laggard.caughtUpRoundCount == 1)
        // Still behind: it asks for the next round at once.
        #expect(two.messages.contains { $0.message == .catchUpRequest(round: first.round + 1) })
    }

    /// A resumed party with no silent round still asks for the round it resumes in (and the window after
    /// it) by catch-up: messages of those rounds it held before the crash are lost, and nobody resends them.
    @Test func aResumedPartyAsksForTheRoundsWhoseMessagesItLost() throws {
        let (_, batches) = try Self.decidedRounds()
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        let next = batches.last!.round + 1
        var resumed = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys[1], path: AtomicBroadcastTests.path, random: .seeded(7),
            resuming: .init(nextRound: next, recentBatches: batches, sendHorizon: 0))
        #expect(resumed.silentThrough == 0)
        #expect(resumed.start().messages.map(\.message) == [.catchUpRequest(round: next)])
    }

    /// The answer's batch decodes within the wire's bounds; a count beyond what the bytes can hold is refused.
    @Test func catchUpResponsesDecodeWithinBounds() throws {
        let limits = WireLimits(payloadBytesMax: 1 << 10, memberCount: 4)
        let message = AtomicBroadcast.Message.catchUpResponse(round: 3, highestRound: 5, batch: [[1, 2], [], [3]])
        #expect(try AtomicBroadcast.Message(encoded: message.encoded, limits: limits) == message)
        var writer = ByteWriter()
        writer.write(UInt8(3))
        writer.write(UInt64(3))
        writer.write(UInt64(5))
        writer.write(UInt32(1_000_000))
        #expect(throws: DecodingError.self) { try AtomicBroadcast.Message(encoded: writer.bytes, limits: limits) }
    }
}
