import SintraCore
import SintraCrypto
import Testing

/// Stage 2 of durability (docs/DURABILITY.md): a party that journals its inputs and replays them after a
/// crash sends exactly what it sent before, so even a crash of every party in the middle of a round
/// leaves the cluster live and nobody equivocates.
@Suite struct JournalReplayTests {
    static let path = AtomicBroadcastTests.path

    static func seed(of node: Int) -> [UInt8] { (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ node) } }

    static func cluster(seed: UInt64) throws -> (GroupConfiguration, [LocalKeys], TestNetwork<AtomicBroadcast.Instance>) {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        var nodes = [Int: AtomicBroadcast.Instance]()
        for me in 1...4 {
            nodes[me] = AtomicBroadcast.Instance(
                configuration: configuration, keys: keys[me - 1], path: path, random: .keyed(seed: Self.seed(of: me)),
                journaling: true)
        }
        var network = TestNetwork(replicas: 4, nodes: nodes, seed: seed)
        network.recording = Set(1...4)
        return (configuration, keys, network)
    }

    /// The binding messages (queues, agreement and fast-path messages) among `bytes` that a party resuming
    /// at `nextRound` rebuilds: queues of rounds from `nextRound` on, agreement and fast-path messages of
    /// the rounds whose agreements it keeps.
    static func rebuilt(_ bytes: [[UInt8]], nextRound: UInt64, window: UInt64) throws -> [AtomicBroadcast.Message] {
        let oldest = nextRound > window + 1 ? nextRound - window - 1 : 0
        return try bytes.map { try AtomicBroadcast.Message(encoded: $0, limits: WireLimits(payloadBytesMax: 4 << 20, memberCount: 4)) }
            .filter { message in
                switch message {
                case .queue(let round, _): round >= nextRound
                case .agreement(let round, _), .fast(let round, _): round >= oldest
                case .catchUpRequest, .catchUpResponse, .timeout: false
                }
            }
    }

    /// `messages` without repeats, each where it first appears.
    static func firstOccurrences(_ messages: [AtomicBroadcast.Message]) -> [AtomicBroadcast.Message] {
        var seen = Set<[UInt8]>()
        return messages.filter { seen.insert($0.encoded).inserted }
    }

    /// Every party crashes at once after a seeded number of deliveries (in the middle of a round, with
    /// messages in flight, all lost), restarts from its delivered batches and its journal only, and:
    /// its replay re-sends, byte for byte and in order, the binding messages it had sent; the cluster
    /// then finishes the pending rounds and orders new requests, with no fault recorded (a contradicting
    /// message would be one: `conflicting`), and every party delivers the same batches.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func everyPartyCrashesMidRoundAndReplays(seed: UInt64) throws {
        let (configuration, keys, cluster) = try Self.cluster(seed: seed)
        var network = cluster
        for index in 0..<3 {
            for me in 1...4 {
                let (_, effects) = network.nodes[me]!.submit(Array("before \(index) from \(me)".utf8))
                network.absorb(effects, from: me)
            }
            network.run()
        }
        // A round in flight when everyone crashes.
        for me in 1...4 {
            let (_, effects) = network.nodes[me]!.submit(Array("in flight from \(me)".utf8))
            network.absorb(effects, from: me)
        }
        var cut = ProtocolRandom.seeded(seed)
        network.run(stepsMax: 20 + Int(cut.next() % 200))
        #expect(network.faults.isEmpty)
        let window = network.nodes[1]!.limits.futureRoundWindow
        var replayedAny = false
        // Everything in flight is lost.
        network.queue.removeAll()
        var starts = [Int: Effects<AtomicBroadcast.Message, AtomicBroadcast.Batch>]()
        for me in 1...4 {
            var old = network.nodes[me]!
            let delivered = network.outputs[me] ?? []
            let nextRound = (delivered.last?.round ?? 0) + 1
            var instance = AtomicBroadcast.Instance(
                configuration: configuration, keys: keys[me - 1], path: Self.path,
                random: .keyed(seed: Self.seed(of: me)), journaling: true,
                resuming: .init(nextRound: nextRound, recentBatches: delivered, sendHorizon: 0, journal: old.takeJournal()))
            // A party sends its binding messages of a round again to a peer that asks for the round
            // (`resendOwnMessages`): those copies are not new messages, so each counts once, where first sent.
            let before = Self.firstOccurrences(
                try Self.rebuilt(network.sent[me] ?? [], nextRound: nextRound, window: window))
            let start = instance.start()
            let again = Self.firstOccurrences(
                try Self.rebuilt(start.messages.map { $0.message.encoded }, nextRound: nextRound, window: window))
            #expect(Array(again.prefix(before.count)) == before, "party \(me) replayed what it sent")
            replayedAny = replayedAny || !before.isEmpty
            network.sent[me] = []
            network.outputs[me] = delivered
            network.nodes[me] = instance
            starts[me] = start
        }
        for me in 1...4 { network.absorb(starts[me]!, from: me) }
        #expect(replayedAny)
        network.run()
        // Requests pending when the parties crashed were lost with their memory unless a queue carried
        // them: their clients send them again.
        for me in 1...4 {
            for request in ["in flight from \(me)", "after from \(me)"] {
                let (_, effects) = network.nodes[me]!.submit(Array(request.utf8))
                network.absorb(effects, from: me)
            }
        }
        network.run()
        #expect(network.faults.isEmpty, "no party contradicted itself: \(network.faults.prefix(3))")
        let reference = network.outputs[1] ?? []
        let requests = Set(reference.flatMap(\.requests))
        for me in 1...4 {
            #expect(network.outputs[me] == reference)
            #expect(requests.contains(Array("after from \(me)".utf8)))
            #expect(requests.contains(Array("in flight from \(me)".utf8)))
        }
    }

    /// The journal's encoding round-trips every kind of entry.
    @Test func entriesRoundTrip() throws {
        var (_, _, network) = try Self.cluster(seed: 9)
        for me in 1...4 {
            let (_, effects) = network.nodes[me]!.submit(Array("request \(me)".utf8))
            network.absorb(effects, from: me)
        }
        network.run()
        var entries = network.nodes[2]!.takeJournal()
        // The run journals queues, agreement messages, proposals and fast-path entries; the fast path's kinds
        // are made here too, so each is round-tripped whatever the run's timers did.
        #expect(Set(entries.map { String(describing: $0).prefix(8) }).count >= 5)
        let digest = [UInt8](repeating: 7, count: 32)
        let lock = AtomicBroadcast.FastLock(
            digest: digest, votes: (1...3).map { AtomicBroadcast.FastVote(member: $0, signature: [UInt8](repeating: UInt8($0), count: 64)) })
        entries += [
            .fastProposal(round: 3, vector: [1, 2, 3]), .fastVote(round: 3, digest: digest),
            .fastLock(round: 3, lock: lock, vector: [4, 5]), .fastStop(round: 3),
        ]
        let limits = WireLimits(payloadBytesMax: 4 << 20, memberCount: 4)
        for entry in entries {
            #expect(try AtomicBroadcast.JournalEntry(encoded: entry.encoded, limits: limits) == entry)
        }
        #expect(throws: DecodingError.self) {
            try AtomicBroadcast.JournalEntry(encoded: [9, 0, 0], limits: limits)
        }
    }

    /// A keyed generator is deterministic per seed and label, and `derive` does not depend on draws.
    @Test func keyedGeneratorsReplay() {
        var a = ProtocolRandom.keyed(seed: Self.seed(of: 1))
        var b = ProtocolRandom.keyed(seed: Self.seed(of: 1))
        var c = ProtocolRandom.keyed(seed: Self.seed(of: 2))
        let first = (0..<9).map { _ in a.next() }
        #expect(first == (0..<9).map { _ in b.next() })
        #expect(first != (0..<9).map { _ in c.next() })
        var d1 = a.derive([1, 2])
        _ = b.next()
        var d2 = b.derive([1, 2])
        var d3 = b.derive([1, 3])
        let derived = (0..<5).map { _ in d1.next() }
        #expect(derived == (0..<5).map { _ in d2.next() })
        #expect(derived != (0..<5).map { _ in d3.next() })
        #expect(a.isReplayable && !ProtocolRandom.system().isReplayable)
    }
}
