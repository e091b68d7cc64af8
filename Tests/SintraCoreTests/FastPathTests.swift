import Crypto
import SintraCore
import SintraCrypto
import Testing

/// The optimistic fast path of atomic-broadcast rounds (`FastPath.swift`): an honest leader's rounds are
/// decided without agreement; a crashed leader's round falls back to agreement and its next rounds are
/// skipped at once; a party that decided fast and parties that stopped later deliver the same vector,
/// carried into the fallback by its lock; forged stops and fallback proposals are refused.
@Suite struct FastPathTests {
    typealias Message = AtomicBroadcast.Message

    static func isTimer(_ message: Message) -> Bool {
        if case .timeout = message { return true }
        return false
    }

    static func isAgreement(_ bytes: [UInt8]) -> Bool {
        if case .agreement = try? Message(encoded: bytes, limits: WireLimits(memberCount: 4)) { return true }
        return false
    }

    /// Submits one request to every member of `members` (all of them by default), as a client sends each
    /// request to every replica, and runs the network: one round delivers it.
    static func round(_ network: inout TestNetwork<AtomicBroadcast.Instance>, _ label: String, members: [Int] = [1, 2, 3, 4]) {
        for me in members {
            let (_, effects) = network.nodes[me]!.submit(Array(label.utf8))
            network.absorb(effects, from: me)
        }
        network.run()
    }

    static func delivered(_ network: TestNetwork<AtomicBroadcast.Instance>, _ member: Int) -> [AtomicBroadcast.Batch] {
        network.outputs[member] ?? []
    }

    @Test func anHonestLeaderDecidesWithoutAgreement() throws {
        var network = try AtomicBroadcastTests.network(n: 4, t: 1, seed: 31)
        network.holding = { _, _, message in Self.isTimer(message) }
        network.recording = Set(1...4)
        for index in 0..<6 { Self.round(&network, "request \(index)") }
        let reference = Self.delivered(network, 1)
        #expect(reference.count == 6)
        for me in 1...4 {
            #expect(network.outputs[me] == reference)
            #expect(network.nodes[me]!.fastRoundCount == reference.count)
            #expect(network.nodes[me]!.agreedRoundCount == 0)
            #expect(!(network.sent[me] ?? []).contains(where: Self.isAgreement), "party \(me) ran an agreement")
        }
        #expect(network.faults.isEmpty)
    }

    /// Member 1 leads rounds 1 and 5 and is down. Round 1 waits for the timers, then agreement decides it;
    /// in round 5 the others suspect member 1 and stop at once, so the round needs no timer.
    @Test func aCrashedLeaderFallsBackAndIsThenSkipped() throws {
        var network = try AtomicBroadcastTests.network(n: 4, t: 1, seed: 32)
        network.crashed = [1]
        network.holding = { _, _, message in Self.isTimer(message) }
        Self.round(&network, "first", members: [2, 3, 4])
        #expect(Self.delivered(network, 2).isEmpty, "nothing is decided before a timer fires")
        network.releaseHeld { _, _, _ in true }
        network.run()
        #expect(Self.delivered(network, 2).count == 1)
        for index in 0..<4 { Self.round(&network, "later \(index)", members: [2, 3, 4]) }
        let reference = Self.delivered(network, 2)
        #expect(reference.count == 5, "rounds 2–4 fast, round 5 by agreement without a timer")
        for me in 2...4 {
            #expect(network.outputs[me] == reference)
            #expect(network.nodes[me]!.fastRoundCount == 3)
            #expect(network.nodes[me]!.agreedRoundCount == 2)
        }
        #expect(network.faults.isEmpty)
    }

    /// Party 1 decides round 1 on the fast path (the commits reach only it); the others' timers fire, they
    /// stop with their locks, party 1 joins them, and agreement decides: the locked vector, so everyone
    /// delivers what party 1 delivered (the commits stay held, so nobody else can decide fast).
    @Test func aLockCarriesTheFastDecisionIntoTheFallback() throws {
        var network = try AtomicBroadcastTests.network(n: 4, t: 1, seed: 33)
        network.holding = { _, to, message in
            if Self.isTimer(message) { return true }
            if case .fast(_, .commit) = message { return to != 1 }
            return false
        }
        Self.round(&network, "locked")
        let decided = Self.delivered(network, 1)
        #expect(decided.count == 1)
        #expect(network.nodes[1]!.fastRoundCount == 1)
        for me in 2...4 { #expect(Self.delivered(network, me).isEmpty) }
        network.holding = { _, to, message in
            if case .fast(_, .commit) = message { return to != 1 }
            return false
        }
        network.releaseHeld { _, to, message in Self.isTimer(message) && to != 1 }
        network.run()
        // Each decides by agreement, or by catch-up once t + 1 parties that delivered answered its stop.
        for me in 2...4 {
            #expect(network.outputs[me] == decided)
            #expect(network.nodes[me]!.agreedRoundCount + network.nodes[me]!.caughtUpRoundCount == 1)
        }
        #expect((2...4).contains { network.nodes[$0]!.agreedRoundCount == 1 })
        #expect(network.faults.isEmpty)
    }

    /// A leader that sends two proposals for one round is recorded, and a party that sees both leaves the
    /// fast path at once.
    @Test func anEquivocatingLeaderIsCaught() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        var party = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys[1], path: AtomicBroadcastTests.path, random: .seeded(5))
        _ = party.submit(Array("something".utf8))
        let first = Self.vector(configuration: configuration, keys: keys, label: "a")
        let second = Self.vector(configuration: configuration, keys: keys, label: "b")
        _ = party.handle(.fast(round: 1, .propose(vector: first)), from: 1)
        let effects = party.handle(.fast(round: 1, .propose(vector: second)), from: 1)
        #expect(effects.faults.map(\.kind) == [.equivocation])
        #expect(effects.messages.contains { if case .fast(1, .stop) = $0.message { true } else { false } })
        // Only the round's leader may propose.
        let other = party.handle(.fast(round: 1, .propose(vector: first)), from: 3)
        #expect(other.faults.map(\.kind) == [.notAllowed])
    }

    /// A valid round-1 vector of the first three members' signed queues.
    static func vector(configuration: GroupConfiguration, keys: [LocalKeys], label: String) -> [UInt8] {
        let queues = (1...3).map { member in
            let requests = [Array("\(label) \(member)".utf8)]
            let statement = AtomicBroadcast.queueStatement(path: AtomicBroadcastTests.path, round: 1, requests: requests)
            return AtomicBroadcast.SignedQueue(member: member, requests: requests, signature: keys[member - 1].identity.sign(statement))
        }
        return AtomicBroadcast.encodeVector(queues)
    }

    static func stop(_ member: Int, locked digest: [UInt8]?, keys: [LocalKeys]) -> AtomicBroadcast.FastStop {
        let statement = AtomicBroadcast.fastStopStatement(path: AtomicBroadcastTests.path, round: 1, lockedDigest: digest)
        return AtomicBroadcast.FastStop(member: member, lockedDigest: digest, signature: keys[member - 1].identity.sign(statement))
    }

    static func lock(_ digest: [UInt8], voters: [Int], keys: [LocalKeys]) -> AtomicBroadcast.FastLock {
        let statement = AtomicBroadcast.fastVoteStatement(path: AtomicBroadcastTests.path, round: 1, digest: digest)
        return AtomicBroadcast.FastLock(
            digest: digest,
            votes: voters.map { AtomicBroadcast.FastVote(member: $0, signature: keys[$0 - 1].identity.sign(statement)) })
    }

    /// The fallback's predicate: n − t validly signed stops of distinct members; a claimed lock certified by
    /// n − t valid votes; under a lock, only the locked vector.
    @Test func fallbackProposalsAreCheckedAgainstStopsAndLocks() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        let limits = AtomicBroadcast.Limits()
        let locked = Self.vector(configuration: configuration, keys: keys, label: "locked")
        let other = Self.vector(configuration: configuration, keys: keys, label: "other")
        let digest = Array(SHA256.hash(data: locked))
        func valid(_ proposal: AtomicBroadcast.FallbackProposal) -> Bool {
            AtomicBroadcast.validFallback(
                proposal.encoded, round: 1, path: AtomicBroadcastTests.path, configuration: configuration, limits: limits)
                != nil
        }
        let plain = (1...3).map { Self.stop($0, locked: nil, keys: keys) }
        let withLock = [Self.stop(1, locked: digest, keys: keys)] + (2...3).map { Self.stop($0, locked: nil, keys: keys) }
        let certificate = Self.lock(digest, voters: [1, 2, 4], keys: keys)
        #expect(valid(.init(stops: plain, lock: nil, vector: other)))
        #expect(valid(.init(stops: withLock, lock: certificate, vector: locked)))
        // Under a lock, another vector is refused; so is a claimed lock without its certificate.
        #expect(!valid(.init(stops: withLock, lock: certificate, vector: other)))
        #expect(!valid(.init(stops: withLock, lock: nil, vector: locked)))
        // Too few stops, a repeated member, a stop signed for another lock, a certificate of t + 1 votes.
        #expect(!valid(.init(stops: Array(plain.prefix(2)), lock: nil, vector: other)))
        #expect(!valid(.init(stops: [plain[0], plain[0], plain[1]], lock: nil, vector: other)))
        let relabelled = AtomicBroadcast.FastStop(member: 2, lockedDigest: digest, signature: plain[1].signature)
        #expect(!valid(.init(stops: [withLock[0], relabelled, plain[2]], lock: certificate, vector: locked)))
        #expect(!valid(.init(stops: withLock, lock: Self.lock(digest, voters: [1, 2], keys: keys), vector: locked)))
        // A vote certificate with one forged signature.
        var forged = certificate.votes
        forged[2] = AtomicBroadcast.FastVote(member: 4, signature: forged[1].signature)
        let forgedLock = AtomicBroadcast.FastLock(digest: digest, votes: forged)
        #expect(!valid(AtomicBroadcast.FallbackProposal(stops: withLock, lock: forgedLock, vector: locked)))
    }

    /// A stop whose lock does not verify is a fault and does not count towards the n − t stops.
    @Test func aStopWithAForgedLockIsAFault() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        var party = AtomicBroadcast.Instance(
            configuration: configuration, keys: keys[1], path: AtomicBroadcastTests.path, random: .seeded(6))
        let vector = Self.vector(configuration: configuration, keys: keys, label: "x")
        let digest = Array(SHA256.hash(data: vector))
        let short = Self.lock(digest, voters: [3, 4], keys: keys)
        let forged = party.handle(
            .fast(round: 1, .stop(Self.stop(3, locked: digest, keys: keys), lock: short, vector: vector)), from: 3)
        #expect(forged.faults.map(\.kind) == [.invalidProof])
        let misattributed = party.handle(.fast(round: 1, .stop(Self.stop(3, locked: nil, keys: keys), lock: nil, vector: nil)), from: 4)
        #expect(misattributed.faults.map(\.kind) == [.notAllowed])
        // The same stop from its signer is fine, and t + 1 = 2 valid stops make this party stop too.
        let first = party.handle(.fast(round: 1, .stop(Self.stop(3, locked: nil, keys: keys), lock: nil, vector: nil)), from: 3)
        #expect(first.faults.isEmpty && first.messages.isEmpty)
        let certified = Self.lock(digest, voters: [1, 3, 4], keys: keys)
        let second = party.handle(
            .fast(round: 1, .stop(Self.stop(4, locked: digest, keys: keys), lock: certified, vector: vector)), from: 4)
        #expect(second.faults.isEmpty)
        #expect(second.messages.contains { if case .fast(1, .stop) = $0.message { true } else { false } })
    }

    /// A leader that gives its round up (`abdicate`, before a long write) hands it to its substitute, the
    /// next member: the round is decided on the fast path, without any timer and without agreement, and
    /// the leader (which no longer votes) delivers the same batch.
    @Test func anAbdicatingLeaderHandsItsRoundToItsSubstitute() throws {
        let network = try Self.abdicated(through: 1, seed: 34)
        let reference = Self.delivered(network, 1)
        #expect(reference.count == 1)
        for me in 1...4 { #expect(network.outputs[me] == reference) }
    }

    /// A 4-party network whose member 1 abdicates through `lastRound`, run that many rounds with every timer
    /// held; checks that each member delivered each round on the fast path, with no agreement and no fault.
    static func abdicated(through lastRound: UInt64, seed: UInt64) throws -> TestNetwork<AtomicBroadcast.Instance> {
        var network = try AtomicBroadcastTests.network(n: 4, t: 1, seed: seed)
        network.holding = { _, _, message in Self.isTimer(message) }
        network.absorb(network.nodes[1]!.abdicate(through: lastRound), from: 1)
        for index in 0..<lastRound { Self.round(&network, "wave \(index)") }
        for me in 1...4 {
            #expect(network.outputs[me]?.count == Int(lastRound))
            #expect(network.nodes[me]!.agreedRoundCount == 0)
            #expect(network.nodes[me]!.fastRoundCount == Int(lastRound))
        }
        #expect(network.faults.isEmpty)
        return network
    }

    /// An abdication far ahead (a write that outlasts the rounds peers keep messages for): every round the
    /// leader leads up to there (1, 5, 9, 13) goes to its substitute on the fast path, with no timer and no
    /// agreement.
    @Test func anAbdicationCoversRoundsBeyondTheWindow() throws {
        _ = try Self.abdicated(through: 13, seed: 36)
    }

    /// The substitute's proposal counts only after the leader's abdication: sent without one by a Byzantine
    /// substitute, even an invalid one is held unchecked, nobody votes on it, and the leader's round decides
    /// as usual.
    @Test func aSubstitutesProposalWaitsForTheLeadersAbdication() throws {
        var network = try AtomicBroadcastTests.network(n: 4, t: 1, seed: 35)
        network.holding = { _, _, message in Self.isTimer(message) }
        // Member 2 (round 1's substitute) proposes an empty vector before anything else happens.
        let early = Message.fast(round: 1, .propose(vector: AtomicBroadcast.encodeVector([])))
        for me in [1, 3, 4] { network.absorb(network.nodes[me]!.handle(early, from: 2), from: me) }
        Self.round(&network, "early")
        let reference = Self.delivered(network, 1)
        #expect(reference.count == 1)
        for me in 1...4 {
            #expect(network.outputs[me] == reference)
            #expect(network.nodes[me]!.fastRoundCount == 1)
        }
        #expect(network.faults.isEmpty)
    }
}
