import SintraCore
import SintraCrypto
import Testing

/// A party asked for a round it has not delivered sends the asker its own binding messages of that round
/// again (docs/DURABILITY.md, "Stage 2", restarts beyond t): a peer that crashed lost what was in flight to
/// it, and with more than t parties restarted in one round the others' lost messages are needed.
@Suite struct CatchUpResendTests {
    /// An atomic broadcast party in a `TestNetwork`; with `dropsResends` it throws away the binding messages
    /// it answers a catch-up request with, which is how the instance behaved before the resend (to show that
    /// the liveness test below fails without it).
    struct Party: ProtocolInstance {
        var inner: AtomicBroadcast.Instance
        let dropsResends: Bool

        var path: InstancePath { inner.path }
        var isFinished: Bool { inner.isFinished }

        mutating func handle(_ message: AtomicBroadcast.Message, from node: Int)
            -> Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>
        {
            var effects = inner.handle(message, from: node)
            if dropsResends, case .catchUpRequest = message {
                effects.messages.removeAll { AtomicBroadcast.bindingRound(of: $0.message) != nil }
            }
            return effects
        }
    }

    static let path = AtomicBroadcastTests.path

    static func instance(
        _ me: Int, configuration: GroupConfiguration, keys: [LocalKeys],
        resuming: AtomicBroadcast.Instance.Resumption? = nil
    ) -> AtomicBroadcast.Instance {
        AtomicBroadcast.Instance(
            configuration: configuration, keys: keys[me - 1], path: path, random: .keyed(seed: JournalReplayTests.seed(of: me)),
            journaling: true, resuming: resuming)
    }

    /// A round in flight at party 1 (not delivered there), in a 4-party network.
    static func roundInFlight(seed: UInt64) throws -> (GroupConfiguration, [LocalKeys], TestNetwork<AtomicBroadcast.Instance>) {
        let (configuration, keys, cluster) = try JournalReplayTests.cluster(seed: seed)
        var network = cluster
        for me in 1...4 {
            let (_, effects) = network.nodes[me]!.submit(Array("first from \(me)".utf8))
            network.absorb(effects, from: me)
        }
        network.run(stepsMax: 40)
        return (configuration, keys, network)
    }

    /// What party 1 sends back for a round it has not delivered: only its own binding messages of that
    /// round, each one byte-equal to a message it sent before, all to the asker; nothing for a round it sent
    /// nothing in; and at most `catchUpAnswersPerPeerMax` times per round and peer.
    @Test func resendsItsOwnMessagesOfTheRoundToTheAskerUpToTheCap() throws {
        let (_, _, cluster) = try Self.roundInFlight(seed: 3)
        var network = cluster
        var party = network.nodes[1]!
        let round = party.round
        let sentBefore = Set(network.sent[1] ?? [])
        let first = party.handle(.catchUpRequest(round: round), from: 4)
        let resent = first.messages.filter { AtomicBroadcast.bindingRound(of: $0.message) != nil }
        #expect(!resent.isEmpty)
        for outgoing in resent {
            #expect(outgoing.recipient == .node(4))
            #expect(AtomicBroadcast.bindingRound(of: outgoing.message) == round)
            #expect(sentBefore.contains(outgoing.message.encoded), "only what it sent before")
        }
        #expect(party.resentMessageCount == resent.count)
        var total = resent.count
        for _ in 0..<(party.limits.catchUpAnswersPerPeerMax + 2) {
            total += party.handle(.catchUpRequest(round: round), from: 4).messages.filter {
                AtomicBroadcast.bindingRound(of: $0.message) != nil
            }.count
        }
        #expect(total == resent.count * party.limits.catchUpAnswersPerPeerMax)
        let far = party.handle(.catchUpRequest(round: round + 3), from: 3)
        #expect(far.messages.isEmpty, "nothing sent in that round, nothing to send again")
        network.nodes[1] = party
    }

    /// Parties 1 and 2 (more than t = 1) crash in the middle of a round; every message in flight to them is
    /// lost, and they restart from their delivered batches and journals. Parties 3 and 4 never crash, so
    /// they never send their lost messages on their own. With the resend every seed finishes the round and
    /// orders new requests, with equal batches everywhere and no fault; without it some seeds stall.
    @Test func twoPartiesCrashMidRoundAndTheRoundStillFinishes() throws {
        var stalledWithout = 0
        for seed in UInt64(1)...6 {
            #expect(try Self.crashTwo(seed: seed, dropsResends: false), "seed \(seed) finished")
            if try !Self.crashTwo(seed: seed, dropsResends: true) { stalledWithout += 1 }
        }
        #expect(stalledWithout > 0, "the test exercises the resend")
    }

    /// Runs the scenario; returns whether every party delivered every request, or throws nothing and
    /// returns false if some party stalled. Safety (equal batches, no fault) is expected either way.
    static func crashTwo(seed: UInt64, dropsResends: Bool) throws -> Bool {
        let (configuration, keys, cluster) = try Self.roundInFlight(seed: seed)
        var network = TestNetwork(
            replicas: 4, nodes: cluster.nodes.mapValues { Party(inner: $0, dropsResends: dropsResends) }, seed: seed)
        // The queue is carried over (the messages in flight), then cut: those to 1 and 2 are lost.
        network.queue = cluster.queue.map { .init(from: $0.from, to: $0.to, bytes: $0.bytes) }
        network.outputs = cluster.outputs.mapValues { $0 }
        var cut = ProtocolRandom.seeded(seed &+ 100)
        network.run(stepsMax: 10 + Int(cut.next() % 120))
        network.queue.removeAll { $0.to == 1 || $0.to == 2 }
        var starts = [Int: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>]()
        for me in 1...2 {
            let delivered = network.outputs[me] ?? []
            let resumption = AtomicBroadcast.Instance.Resumption(
                nextRound: (delivered.last?.round ?? 0) + 1, recentBatches: delivered, sendHorizon: 0,
                journal: network.nodes[me]!.inner.takeJournal())
            var restarted = Self.instance(me, configuration: configuration, keys: keys, resuming: resumption)
            starts[me] = restarted.start()
            network.nodes[me] = Party(inner: restarted, dropsResends: dropsResends)
        }
        for me in 1...2 { network.absorb(starts[me]!, from: me) }
        network.run()
        // Requests pending at 1 and 2 were lost with their memory: their clients send them again.
        for me in 1...4 {
            let requests = (me <= 2 ? ["first from \(me)"] : []) + ["after from \(me)"]
            for request in requests {
                let (_, effects) = network.nodes[me]!.inner.submit(Array(request.utf8))
                network.absorb(effects, from: me)
            }
        }
        network.run()
        #expect(network.faults.isEmpty, "seed \(seed): \(network.faults.prefix(3))")
        let longest = (1...4).map { network.outputs[$0] ?? [] }.max { $0.count < $1.count }!
        for me in 1...4 {
            let mine = network.outputs[me] ?? []
            #expect(Array(longest.prefix(mine.count)) == mine, "seed \(seed): party \(me) agrees")
        }
        return (1...4).allSatisfy { me in
            let requests = Set((network.outputs[me] ?? []).flatMap(\.requests))
            return (1...4).allSatisfy {
                requests.contains(Array("first from \($0)".utf8)) && requests.contains(Array("after from \($0)".utf8))
            }
        }
    }
}
