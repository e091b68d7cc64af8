import SintraCore
import SintraCrypto
import Testing

/// Atomic broadcast: total order, agreement, no duplicates, and every submitted request delivered.
@Suite struct AtomicBroadcastTests {
    static let path = InstancePath("abc")

    /// n parties in a `TestNetwork`, which delivers each party's fast-path timer like any message, at a random
    /// point: rounds mix fast-path decisions, fallbacks, and catch-up of parties that stopped late.
    static func network(
        n: Int, t: Int, seed: UInt64, optimistic: Bool = true, limits: AtomicBroadcast.Limits = .init()
    ) throws -> TestNetwork<AtomicBroadcast.Instance> {
        let (configuration, keys) = try TestCluster.keys(n: n, t: t, seed: 4)
        var limits = limits
        limits.optimistic = optimistic
        var nodes = [Int: AtomicBroadcast.Instance]()
        for me in 1...n {
            nodes[me] = AtomicBroadcast.Instance(
                configuration: configuration, keys: keys[me - 1], path: path, random: .seeded(seed &* 77 &+ UInt64(me)),
                limits: limits)
        }
        return TestNetwork(replicas: n, nodes: nodes, seed: seed)
    }

    @Test(arguments: [(4, 1), (7, 2)]) func totalOrderAndNoLoss(n: Int, t: Int) throws {
        for seed in UInt64(1)...3 {
            var network = try Self.network(n: n, t: t, seed: seed)
            let silent = n
            network.crashed = [silent]
            var submitted = Set<[UInt8]>()
            // Each request goes to every replica, as clients do; some to only one (still delivered if
            // that replica is honest, because its queue is eventually in a decided vector or re-proposed).
            for index in 0..<12 {
                let request = Array("request \(index)".utf8)
                submitted.insert(request)
                for me in 1..<n {
                    let (_, effects) = network.nodes[me]!.submit(request)
                    network.absorb(effects, from: me)
                }
            }
            network.run()
            let sequences = (1..<n).map { node in (network.outputs[node] ?? []).flatMap(\.requests) }
            for sequence in sequences {
                #expect(sequence == sequences[0], "seed \(seed): same order everywhere")
                #expect(Set(sequence).count == sequence.count, "no duplicates")
            }
            #expect(Set(sequences[0]) == submitted, "seed \(seed): every request delivered")
            let duplicate = network.nodes[1]!.submit(Array("request 0".utf8)).0
            #expect(duplicate == .duplicate)
        }
    }

    /// A party that falls more rounds behind than the window catches up from t + 1 matching answers and
    /// delivers exactly the same batches (the parties ahead will never resend what it dropped).
    @Test func laggardCatchesUpBeyondTheWindow() throws {
        var network = try Self.network(n: 4, t: 1, seed: 5)
        network.withheld = [4]
        var submitted = [[UInt8]]()
        for index in 0..<8 {
            let request = Array("late \(index)".utf8)
            submitted.append(request)
            for me in 1...3 {
                let (_, effects) = network.nodes[me]!.submit(request)
                network.absorb(effects, from: me)
            }
            network.run()
        }
        #expect(network.nodes[1]!.round > 1 + network.nodes[4]!.limits.futureRoundWindow + 1)
        network.release(4)
        network.run()
        let reference = (network.outputs[1] ?? []).map(\.requests)
        #expect(Set(reference.flatMap { $0 }) == Set(submitted))
        #expect((network.outputs[4] ?? []).map(\.requests) == reference)
        #expect(network.nodes[4]!.caughtUpRoundCount > 0)
        #expect(network.nodes[4]!.round == network.nodes[1]!.round)
        // Batches decided by agreement (node 1) and caught up (node 4) carry their requests' digests.
        for batch in (network.outputs[1] ?? []) + (network.outputs[4] ?? []) {
            #expect(batch.digests == batch.requests.map(AtomicBroadcast.digest))
        }
    }

    /// A party two to `futureRoundWindow` + 1 rounds behind drops nothing (the parties ahead, idle in the
    /// round after the last one they decided, sent nothing beyond its window), so it gets no catch-up: the
    /// parties ahead must still serve its rounds' agreements. It needs their c-ready signatures on its own
    /// commit before it may release its permutation coin share and vote (found by `sintra sim --protocol
    /// abc`: seed 6 of the `honest` adversary, a starved node stuck two rounds behind for ever, and with
    /// `--requests 8 --batch 1` seed 200006, five rounds behind, once two were served).
    @Test(arguments: [2, 5], [false, true])
    func laggardWithinTheWindowFinishesItsRounds(lag: Int, optimistic: Bool) throws {
        var network = try Self.network(n: 4, t: 1, seed: 6, optimistic: optimistic)
        network.withheld = [4]
        for index in 0..<lag {
            let request = Array("slow \(index)".utf8)
            for me in 1...3 {
                let (_, effects) = network.nodes[me]!.submit(request)
                network.absorb(effects, from: me)
            }
            network.run()
        }
        #expect(network.nodes[1]!.round - network.nodes[4]!.round == UInt64(lag))
        #expect(UInt64(lag) <= network.nodes[4]!.limits.futureRoundWindow + 1)
        network.release(4)
        network.run()
        #expect((network.outputs[4] ?? []).map(\.requests) == (network.outputs[1] ?? []).map(\.requests))
        #expect(network.nodes[4]!.round == network.nodes[1]!.round)
        // Without the fast path it finishes every round in the agreements the peers kept. With it, its
        // timers fire and it stops in rounds the others decided fast, and their answers to its stops are
        // catch-up answers: either way is right.
        if !optimistic { #expect(network.nodes[4]!.caughtUpRoundCount == 0) }
    }

    /// A catch-up request for a round nobody has decided yet is remembered and answered once the round is
    /// decided: the laggard asks once per round, so an early request (here provoked by one far-future
    /// message, which a Byzantine party can send at any time) must not use up its only chance.
    @Test func earlyCatchUpRequestIsAnsweredLater() throws {
        var network = try Self.network(n: 4, t: 1, seed: 7)
        let farRound = 1 + 2 * network.nodes[4]!.limits.futureRoundWindow
        network.inject(
            AtomicBroadcast.Message.agreement(round: farRound, .fetch(candidate: 1)).encoded, from: 1, to: 4)
        network.run()
        network.withheld = [4]
        for index in 0..<8 {
            let request = Array("late \(index)".utf8)
            for me in 1...3 {
                let (_, effects) = network.nodes[me]!.submit(request)
                network.absorb(effects, from: me)
            }
            network.run()
        }
        #expect(network.nodes[1]!.round > 1 + network.nodes[4]!.limits.futureRoundWindow + 1)
        network.release(4)
        network.run()
        #expect((network.outputs[4] ?? []).map(\.requests) == (network.outputs[1] ?? []).map(\.requests))
        #expect(network.nodes[4]!.round == network.nodes[1]!.round)
    }

    /// A restarted party (docs/DURABILITY.md) resumes at the round after its last delivered one with a
    /// fresh instance: up to its send horizon it sends no queue and no agreement message (it may have sent
    /// different ones before the restart), delivers those rounds by catch-up exactly as the others decided
    /// them, then takes part again; requests it delivered before the restart are still duplicates.
    @Test func resumedPartyIsSilentUpToItsHorizonThenTakesPartAgain() throws {
        var network = try Self.network(n: 4, t: 1, seed: 9)
        func submitToAll(_ request: [UInt8]) {
            for me in 1...4 {
                let (_, effects) = network.nodes[me]!.submit(request)
                network.absorb(effects, from: me)
            }
        }
        for index in 0..<3 {
            submitToAll(Array("before \(index)".utf8))
            network.run()
        }
        let before = network.outputs[4] ?? []
        let nextRound = network.nodes[4]!.round
        #expect(nextRound > 1)
        let window = network.nodes[4]!.limits.futureRoundWindow
        let horizon = nextRound + window

        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        var resumed = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys[3], path: Self.path, random: .seeded(999),
            resuming: .init(nextRound: nextRound, recentBatches: before, sendHorizon: horizon))
        #expect(resumed.round == nextRound)
        #expect(resumed.silentThrough == horizon)
        let deliveredBefore = try #require(before.flatMap(\.requests).first)
        #expect(resumed.submit(deliveredBefore).0 == .duplicate)
        network.nodes[4] = resumed
        network.recording = [4]
        network.absorb(network.nodes[4]!.start(), from: 4)

        for index in 0..<(Int(window) + 4) {
            submitToAll(Array("after \(index)".utf8))
            network.run()
        }
        let reference = (network.outputs[1] ?? []).filter { $0.round >= nextRound }
        #expect(reference.count > Int(window) + 1)
        #expect(Array((network.outputs[4] ?? []).dropFirst(before.count)) == reference)
        #expect(network.nodes[4]!.caughtUpRoundCount >= Int(horizon - nextRound + 1))

        var tookPartAgain = false
        let limits = WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: 4)
        for bytes in network.sent[4] ?? [] {
            switch try AtomicBroadcast.Message(encoded: bytes, limits: limits) {
            case .queue(let round, _), .agreement(let round, _), .fast(let round, _):
                #expect(round > horizon, "a message of silent round \(round)")
                tookPartAgain = true
            case .catchUpRequest, .catchUpResponse, .timeout:
                break
            }
        }
        #expect(tookPartAgain)
    }

    /// A round's vector (up to n queues) travels in one validated-agreement proposal, which a peer decodes
    /// only up to the wire's payload limit. With 512 KiB queues and 1 MiB payloads, three full queues made
    /// a vector no peer would accept: every proposal was "malformed" and nothing was ever delivered. Queues
    /// are now capped so that n full ones fit `vectorBytesMax`.
    @Test func fullQueuesStillFitOneProposal() throws {
        var network = try Self.network(n: 4, t: 1, seed: 8)
        var submitted = Set<[UInt8]>()
        for me in 1...4 {
            // 8 × 62,000 bytes: a queue of the 7 left after round 1 is 434,000 bytes, under 512 KiB.
            for index in 0..<8 {
                let request = [UInt8(me), UInt8(index)] + [UInt8](repeating: UInt8(index), count: 62_000)
                submitted.insert(request)
                let (result, effects) = network.nodes[me]!.submit(request)
                #expect(result == .accepted)
                network.absorb(effects, from: me)
            }
        }
        network.run()
        #expect(network.faults.count == 0, "\(network.faults.first.map(String.init(describing:)) ?? "")")
        for node in 1...4 {
            let delivered = Set((network.outputs[node] ?? []).flatMap(\.requests))
            let complete = delivered == submitted
            #expect(complete, "node \(node) delivered \(delivered.count) of \(submitted.count) requests")
        }
    }

    /// A batch submission starts the round once, with one queue holding every request of the batch that the
    /// party proposes first (not a queue of the first request alone); a passed-over batch goes into the
    /// queue whole, whoever its first proposers are (a replica that held requests back submits them so).
    @Test func batchSubmissionFillsOneQueue() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        let requests = (0..<40).map { Array("request \($0)".utf8) }
        let proposed = requests.filter {
            AtomicBroadcast.isProposer(1, of: AtomicBroadcast.digest($0), round: 1, configuration: configuration)
        }
        #expect(!proposed.isEmpty && proposed.count < requests.count)
        for passedOver in [false, true] {
            var instance = AtomicBroadcast.Instance(
                configuration: configuration, keys: keys[0], path: Self.path, random: .seeded(1))
            #expect(instance.nextQueueRound == 1)
            let (results, effects) = instance.submit(batch: requests, passedOver: passedOver)
            #expect(results == Array(repeating: .accepted, count: requests.count))
            let queues = effects.messages.compactMap { outgoing -> [[UInt8]]? in
                guard case .queue(round: 1, let queue) = outgoing.message else { return nil }
                return queue.requests
            }
            #expect(queues == [passedOver ? requests : proposed])
            #expect(instance.nextQueueRound == 2)
            #expect(requests.allSatisfy { instance.knows(AtomicBroadcast.digest($0)) })
            #expect(!instance.knows(AtomicBroadcast.digest([1, 2, 3])))
            #expect(instance.submit(batch: [requests[0], [9]]).0 == [.duplicate, .accepted])
        }
    }

    /// A delivered request is flagged as attested when the valid queues of t + 1 distinct members carry it
    /// (at least one honest party submitted it), and only then.
    @Test func requestsQueuedByTPlusOneMembersAreAttested() throws {
        for seed in UInt64(1)...3 {
            var network = try Self.network(n: 4, t: 1, seed: seed)
            let everywhere = (0..<6).map { Array("everywhere \($0)".utf8) }
            let once = (0..<3).map { Array("only at 2, \($0)".utf8) }
            for me in 1...4 {
                let (_, effects) = network.nodes[me]!.submit(batch: everywhere, passedOver: true)
                network.absorb(effects, from: me)
            }
            let (_, effects) = network.nodes[2]!.submit(batch: once, passedOver: true)
            network.absorb(effects, from: 2)
            network.run()
            var flags = [[UInt8]: Bool]()
            for batch in network.outputs[1] ?? [] {
                #expect(batch.attested.count == batch.requests.count, "seed \(seed): decided by agreement, flagged")
                for (request, attested) in zip(batch.requests, batch.attested) { flags[request] = attested }
            }
            #expect(Set(flags.keys) == Set(everywhere + once), "seed \(seed): all delivered")
            // Every vector holds n − t = 3 queues, and every member queued these: at least 2 carry each.
            #expect(everywhere.allSatisfy { flags[$0] == true }, "seed \(seed)")
            #expect(once.allSatisfy { flags[$0] == false }, "seed \(seed): one member's queue only")
            for me in 2...4 {
                for batch in network.outputs[me] ?? [] {
                    for (request, attested) in zip(batch.requests, batch.attested) {
                        #expect(attested == everywhere.contains(request), "seed \(seed) at \(me)")
                    }
                }
            }
        }
    }

    /// Every request has exactly t + 1 first proposers in every round, consecutive members, and the set moves
    /// on by one member per round, so every member proposes it within n rounds.
    @Test(arguments: [(4, 1), (7, 2), (10, 3)]) func eachRequestHasTPlusOneProposersThatRotate(n: Int, t: Int) throws {
        let (configuration, _) = try TestCluster.keys(n: n, t: t, seed: 4)
        for index in 0..<50 {
            let digest = AtomicBroadcast.digest(Array("request \(index)".utf8))
            var proposedBy = Set<Int>()
            for round in UInt64(1)...UInt64(n) {
                let proposers = (1...n).filter {
                    AtomicBroadcast.isProposer($0, of: digest, round: round, configuration: configuration)
                }
                #expect(proposers.count == t + 1)
                let next = (1...n).filter {
                    AtomicBroadcast.isProposer($0, of: digest, round: round + 1, configuration: configuration)
                }
                #expect(Set(next) == Set(proposers.map { $0 % n + 1 }), "the proposers move on by one member")
                proposedBy.formUnion(proposers)
            }
            #expect(proposedBy == Set(1...n))
        }
    }
}

/// `VerifiedQueueSignatures`: a proposal's queue whose signature this party verified on the same statement is
/// not checked again, and nothing else is taken on trust.
@Suite struct VerifiedQueueSignatureTests {
    let path = InstancePath("abc")

    func queue(_ member: Int, _ requests: [[UInt8]], round: UInt64, keys: [LocalKeys]) -> AtomicBroadcast.SignedQueue {
        let statement = AtomicBroadcast.queueStatement(path: path, round: round, requests: requests)
        return AtomicBroadcast.SignedQueue(
            member: member, requests: requests, signature: keys[member - 1].identity.sign(statement))
    }

    func holds(_ verified: AtomicBroadcast.VerifiedQueueSignatures, _ queue: AtomicBroadcast.SignedQueue, round: UInt64)
        -> Bool
    {
        AtomicBroadcast.encodeRequests(queue.requests).withUnsafeBytes {
            verified.contains(member: queue.member, signature: queue.signature, requests: $0, round: round, path: path)
        }
    }

    @Test func verifiedSignaturesAreRememberedAndOnlyExactEntriesSkipTheCheck() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        let limits = AtomicBroadcast.Limits()
        let queues = (1...3).map { queue($0, [[UInt8($0)], [9, 9]], round: 5, keys: keys) }
        let vector = AtomicBroadcast.encodeVector(queues)
        let verified = AtomicBroadcast.VerifiedQueueSignatures(path: path)
        func valid(_ bytes: [UInt8], round: UInt64 = 5) -> Bool {
            AtomicBroadcast.validVector(
                bytes, round: round, path: path, configuration: configuration, limits: limits, verified: verified) != nil
        }
        // Received directly: remembered after its check.
        #expect(
            AtomicBroadcast.isValid(
                queues[0], round: 5, path: path, configuration: configuration, limits: limits, verified: verified))
        #expect(holds(verified, queues[0], round: 5))
        #expect(!holds(verified, queues[0], round: 6))
        #expect(!holds(verified, AtomicBroadcast.SignedQueue(member: 1, requests: [[1], [9, 8]], signature: queues[0].signature), round: 5))
        #expect(!AtomicBroadcast.encodeRequests(queues[0].requests).withUnsafeBytes {
            verified.contains(
                member: 1, signature: queues[0].signature, requests: $0, round: 5, path: InstancePath("other"))
        })
        // A vector passes and adds its other two.
        #expect(valid(vector))
        #expect(verified.count == 3)
        // The same signatures do not vouch for other requests, another round, or another member's key.
        var other = queues
        other[1] = AtomicBroadcast.SignedQueue(member: 2, requests: [[7]], signature: queues[1].signature)
        #expect(!valid(AtomicBroadcast.encodeVector(other)))
        #expect(!valid(vector, round: 6))
        let stolen = AtomicBroadcast.SignedQueue(member: 4, requests: queues[2].requests, signature: queues[2].signature)
        #expect(!valid(AtomicBroadcast.encodeVector([queues[0], queues[1], stolen])))
        // A remembered entry is what skips the check: planted for a forged signature, it is believed (the
        // record is trusted exactly as far as its entries were verified before they went in).
        let forged = AtomicBroadcast.SignedQueue(member: 4, requests: [[1]], signature: [UInt8](repeating: 3, count: 64))
        let withForgery = AtomicBroadcast.encodeVector([queues[0], queues[1], forged])
        #expect(!valid(withForgery))
        verified.insert(
            member: 4, signature: forged.signature, requests: AtomicBroadcast.encodeRequests(forged.requests), round: 5,
            path: path)
        #expect(valid(withForgery))
        verified.forget(below: 6)
        #expect(verified.count == 0)
        #expect(!valid(withForgery))
    }
}
