import SintraCrypto
import Testing

@testable import SintraCore

/// ABBA (Cachin–Kursawe–Shoup 2000, PROTOCOLS.md §5) at the unit level: the paper's properties over whole
/// in-process runs (a seeded message pump; every message goes through its wire codec), and scripted scenarios
/// for the individual rules. The adversarial scheduling of thousands of runs is SintraSimulation's job.
@Suite struct BinaryAgreementTests {
    static let shapes = [(4, 1), (7, 2), (10, 3)]

    // MARK: - Whole runs: agreement, validity, termination

    @Test(arguments: shapes) func agreementValidityAndTerminationWithAllHonest(n: Int, t: Int) throws {
        let group = try BinaryAgreementGroup(n: n, t: t, seed: UInt64(n))
        for (index, inputs) in InputPattern.all(n: n).enumerated() {
            var pump = AgreementPump(group: group, inputs: inputs.values, seed: UInt64(100 + index))
            try pump.run()
            try pump.expectAgreementValidityAndTermination(inputs.values, label: inputs.label)
            #expect(pump.faults.isEmpty, "honest run reported faults: \(pump.faults)")
        }
    }

    @Test(arguments: shapes) func terminationWithSilentNodes(n: Int, t: Int) throws {
        let group = try BinaryAgreementGroup(n: n, t: t, seed: UInt64(n) + 1)
        let silent = Set((n - t + 1)...n)
        for (index, inputs) in InputPattern.all(n: n).enumerated() {
            var pump = AgreementPump(
                group: group, inputs: inputs.values, seed: UInt64(200 + index),
                behaviours: Dictionary(uniqueKeysWithValues: silent.map { ($0, .silent) }))
            try pump.run()
            try pump.expectAgreementValidityAndTermination(inputs.values, label: "\(inputs.label), \(t) silent")
        }
    }

    /// t parties run two honest-looking faces with opposite inputs and show each face to half of the others:
    /// every vote they send is properly justified, yet they equivocate in every step.
    @Test(arguments: shapes) func agreementDespiteTwoFacedVoters(n: Int, t: Int) throws {
        let group = try BinaryAgreementGroup(n: n, t: t, seed: UInt64(n) + 2)
        let faulty = Array(1...t)
        let halfA = Set(stride(from: 1, through: n, by: 2))
        for (index, inputs) in InputPattern.all(n: n).enumerated() {
            var pump = AgreementPump(
                group: group, inputs: inputs.values, seed: UInt64(300 + index),
                behaviours: Dictionary(uniqueKeysWithValues: faulty.map { ($0, .twoFaced(showsFalseTo: halfA)) }))
            try pump.run()
            try pump.expectAgreementValidityAndTermination(inputs.values, label: "\(inputs.label), \(t) two-faced")
            // Every fault names a faulty party.
            #expect(pump.faults.allSatisfy { faulty.contains($0.node) }, "\(pump.faults.filter { $0.node > t })")
        }
    }

    @Test(arguments: shapes) func manySeedsAgreeWithSplitInputs(n: Int, t: Int) throws {
        let group = try BinaryAgreementGroup(n: n, t: t, seed: UInt64(n) + 3)
        let inputs = (1...n).map { $0 % 2 == 0 }
        var rounds = [Int: Int]()
        for seed in UInt64(1)...12 {
            // Another path is another coin.
            var runGroup = group
            runGroup.path = InstancePath("test").child("abba", seed)
            var pump = AgreementPump(group: runGroup, inputs: inputs, seed: 400 + seed)
            try pump.run()
            try pump.expectAgreementValidityAndTermination(inputs, label: "split, seed \(seed)")
            rounds[pump.firstDecisionRound ?? 0, default: 0] += 1
        }
        print("ABBA n=\(n) t=\(t): first decision round over 12 split-input runs: \(rounds.sorted { $0.key < $1.key })")
    }

    /// A scheduler that keeps deliveries inside two halves, and t two-faced voters feeding each half its own
    /// value, split rounds: some runs need rounds 3 and 4 (hard pre-votes after a main-vote for b, soft ones
    /// after all abstained, the coin of earlier rounds). Agreement and termination still hold in every run.
    @Test func agreementOverSeveralRoundsWithSteeredScheduler() throws {
        let (n, t) = (4, 1)
        let group = try BinaryAgreementGroup(n: n, t: t, seed: 10)
        let halfA = Set(1...(n / 2))
        let inputs = (1...n).map { halfA.contains($0) }
        let twoFaced = Dictionary(uniqueKeysWithValues: ((n - t + 1)...n).map {
            ($0, AgreementPump.Behaviour.twoFaced(showsFalseTo: Set(1...n).subtracting(halfA)))
        })
        var rounds = [Int: Int]()
        for seed in UInt64(1)...40 {
            var runGroup = group
            runGroup.path = InstancePath("test").child("steer", seed)
            var pump = AgreementPump(group: runGroup, inputs: inputs, seed: 800 + seed, behaviours: twoFaced)
            pump.halves = halfA
            try pump.run()
            try pump.expectAgreementValidityAndTermination(inputs, label: "steered, seed \(seed)")
            let last = pump.honestMembers.compactMap { pump.faces[$0 - 1][0].decisionRound }.max() ?? 0
            rounds[last, default: 0] += 1
        }
        print("ABBA n=\(n) t=\(t): last decision round over 40 steered runs: \(rounds.sorted { $0.key < $1.key })")
        #expect(rounds.keys.contains { $0 >= 3 }, "no run needed a third round: \(rounds)")
    }

    // MARK: - Coin release

    /// The round-r coin share goes out only after this party main-voted in round r and counted n − t round-r
    /// main-votes (PROTOCOLS.md §5, pitfalls): checked at every release in whole runs, and step by step here.
    @Test func coinIsNotReleasedBeforeMainVotes() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 21)
        var script = BinaryAgreementScript(group: group, me: 1)
        script.propose(false)
        script.deliver(group.preProcess(from: 2, value: false), from: 2)
        script.deliver(group.preProcess(from: 3, value: true), from: 3)
        #expect(script.instance.countedPreVotes == 1)
        script.deliver(group.preVote(from: 2, round: 1, value: true, justification: group.preProcessed(true)), from: 2)
        #expect(script.sentMainVotes.isEmpty)
        script.deliver(
            group.preVote(from: 3, round: 1, value: false, justification: group.preProcessed(false)), from: 3)
        // The first n − t pre-votes are split: abstain.
        #expect(script.sentMainVotes.map(\.value) == [nil])
        let abstain = group.abstain(round: 1)
        script.deliver(group.mainVote(from: 2, round: 1, vote: abstain), from: 2)
        #expect(script.instance.countedMainVotes == 2)
        #expect(script.sentCoinShares.isEmpty, "coin share released with fewer than n − t main-votes")
        script.deliver(group.mainVote(from: 3, round: 1, vote: abstain), from: 3)
        #expect(script.sentCoinShares == [1])
        #expect(script.instance.round == 2)

        // And in whole runs, at every release.
        for seed in UInt64(1)...4 {
            var pump = AgreementPump(group: group, inputs: [false, true, false, true], seed: 500 + seed)
            try pump.run()
            #expect(pump.earlyCoinReleases.isEmpty, "\(pump.earlyCoinReleases)")
            #expect(pump.coinReleases > 0)
        }
    }

    /// Round r > 1 after an all-abstain round: the soft pre-vote is coin(r − 1), a soft pre-vote for the other
    /// value is unjustified, and a soft pre-vote that arrives before the coin waits for it.
    @Test func softPreVoteFollowsTheCoin() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 22)
        var script = BinaryAgreementScript(group: group, me: 1)
        try script.driveToAllAbstainRoundTwo()
        #expect(script.instance.round == 2)
        #expect(script.sentPreVotes.filter { $0.round == 2 }.isEmpty, "soft pre-vote before the coin is known")
        let coin = try group.coin(round: 1)

        // A soft pre-vote for the wrong value, before the coin is known: parked, then rejected.
        let softCertificate = group.certificate([2, 3, 4], group.mainVoteStatement(round: 1, value: nil))
        script.deliver(group.preVote(from: 4, round: 2, value: !coin, justification: .soft(softCertificate)), from: 4)
        #expect(script.instance.bufferedMessageCount == 1)
        script.deliver(group.coinShare(from: 2, round: 1), from: 2)
        #expect(script.instance.bufferedMessageCount == 0)
        #expect(script.faults.map(\.node) == [4] && script.faults.map(\.kind) == [.unjustified])
        let ownSoft = try #require(script.sentPreVotes.first { $0.round == 2 })
        #expect(ownSoft.value == coin)
        #expect(script.instance.countedPreVotes == 1)

        // The right value counts.
        script.deliver(group.preVote(from: 3, round: 2, value: coin, justification: .soft(softCertificate)), from: 3)
        #expect(script.instance.countedPreVotes == 2)
        // A hard pre-vote needs a round-1 pre-vote certificate, not a main-vote one.
        script.deliver(group.preVote(from: 2, round: 2, value: coin, justification: .hard(softCertificate)), from: 2)
        #expect(script.faults.last?.kind == .unjustified && script.faults.last?.node == 2)
        #expect(script.instance.countedPreVotes == 2)
    }

    // MARK: - Certificates and equivocation

    /// QC_q("pre-vote", r, 0) and QC_q("pre-vote", r, 1) cannot both verify: even if the t faulty parties sign
    /// both values, the honest ones sign one, and two (n − t)-sets share an honest party.
    @Test(arguments: shapes) func conflictingPreVoteCertificatesCannotExist(n: Int, t: Int) throws {
        let group = try BinaryAgreementGroup(n: n, t: t, seed: UInt64(n) + 4)
        let faulty = Array((n - t + 1)...n)
        let honest = Array(1...(n - t))
        for splitAt in 0...honest.count {
            let forFalse = Array(honest.prefix(splitAt)) + faulty
            let forTrue = Array(honest.dropFirst(splitAt)) + faulty
            let verified = [(false, forFalse), (true, forTrue)].filter { value, signers in
                let statement = group.preVoteStatement(round: 3, value: value)
                let certificate = group.certificate(signers, statement)
                return (try? certificate.verify(
                    statement, members: group.configuration.memberKeys, threshold: group.configuration.quorum)) != nil
            }
            #expect(verified.count <= 1, "split at \(splitAt): both values certified")
        }
        // In whole runs (with two-faced voters), main-votes of one round never certify two values.
        var pump = AgreementPump(
            group: group, inputs: (1...n).map { $0 % 2 == 1 }, seed: 600 + UInt64(n),
            behaviours: Dictionary(
                uniqueKeysWithValues: faulty.map { ($0, .twoFaced(showsFalseTo: Set(1...(n / 2)))) }))
        try pump.run()
        #expect(pump.certifiedPreVoteValues.values.allSatisfy { $0.count == 1 }, "\(pump.certifiedPreVoteValues)")
    }

    @Test func equivocatingVoterIsReportedAndCountedOnce() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 23)
        var script = BinaryAgreementScript(group: group, me: 1)
        // Pre-process: first counts, a repeat is ignored, a different one is equivocation.
        script.deliver(group.preProcess(from: 4, value: false), from: 4)
        script.deliver(group.preProcess(from: 4, value: false), from: 4)
        #expect(script.faults.isEmpty)
        script.deliver(group.preProcess(from: 4, value: true), from: 4)
        #expect(script.faults.map(\.kind) == [.equivocation] && script.faults.map(\.node) == [4])
        #expect(script.instance.countedPreProcesses == 1)

        // Pre-vote: both values properly justified (the certificates exist), only the first counts.
        let first = group.preVote(from: 4, round: 1, value: false, justification: group.preProcessed(false))
        let second = group.preVote(from: 4, round: 1, value: true, justification: group.preProcessed(true))
        script.deliver(first, from: 4)
        script.deliver(second, from: 4)
        script.deliver(first, from: 4)
        #expect(script.instance.countedPreVotes == 1)
        #expect(script.faults.map(\.kind) == [.equivocation, .equivocation])

        // Main-vote, and coin share (two valid shares with different proof nonces).
        script.deliver(group.mainVote(from: 4, round: 1, vote: group.abstain(round: 1)), from: 4)
        let certificate = group.certificate([1, 2, 3], group.preVoteStatement(round: 1, value: true))
        script.deliver(group.mainVote(from: 4, round: 1, vote: .value(true, certificate: certificate)), from: 4)
        #expect(script.instance.countedMainVotes == 1)
        script.deliver(group.coinShare(from: 4, round: 1, nonceSeed: 1), from: 4)
        script.deliver(group.coinShare(from: 4, round: 1, nonceSeed: 2), from: 4)
        #expect(script.faults.map(\.kind) == Array(repeating: .equivocation, count: 4))
        #expect(script.faults.allSatisfy { $0.node == 4 })
        #expect(script.sent.isEmpty, "nothing is sent without an input")
    }

    @Test func duplicateSignersInJustificationAreRejected() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 24)
        var script = BinaryAgreementScript(group: group, me: 1)
        // t + 1 = 2 "signers" that are one member twice.
        let statement = group.preProcessStatement(value: true)
        let signature = group.sign(3, statement)
        let doubled = QuorumCertificate(signatures: [
            .init(member: 3, bytes: signature), .init(member: 3, bytes: signature),
        ])
        let vote = group.preVote(from: 2, round: 1, value: true, justification: .preProcessed(doubled))
        script.deliver(vote, from: 2)
        #expect(script.instance.countedPreVotes == 0)
        #expect(script.faults.map(\.kind) == [.unjustified])
        // Such a certificate does not even decode.
        #expect(throws: DecodingError.self) { try BinaryAgreement.Message(encoded: vote.encoded, limits: group.limits) }

        // A decided certificate with n − t = 3 entries from 2 members does not decide.
        let decidedStatement = group.mainVoteStatement(round: 1, value: true)
        let second = group.sign(2, decidedStatement)
        let padded = QuorumCertificate(signatures: [
            .init(member: 2, bytes: second), .init(member: 2, bytes: second),
            .init(member: 3, bytes: group.sign(3, decidedStatement)),
        ])
        script.deliver(.decided(round: 1, value: true, certificate: padded), from: 2)
        #expect(script.instance.decision == nil)
        #expect(script.faults.last?.kind == .invalidProof)
    }

    /// Signatures already verified (as votes) are not verified again inside certificates, but a certificate
    /// entry whose bytes differ from the verified signature is checked, and rejected if invalid.
    @Test func certificateWithOneBadSignatureIsRejected() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 30)
        var script = BinaryAgreementScript(group: group, me: 1)
        script.deliver(group.preProcess(from: 2, value: true), from: 2)
        script.deliver(group.preProcess(from: 3, value: true), from: 3)
        #expect(script.instance.countedPreProcesses == 2)
        let statement = group.preProcessStatement(value: true)
        var forged = group.sign(3, statement)
        forged[10] ^= 1
        let bad = QuorumCertificate(signatures: [
            .init(member: 2, bytes: group.sign(2, statement)), .init(member: 3, bytes: forged),
        ])
        script.deliver(group.preVote(from: 4, round: 1, value: true, justification: .preProcessed(bad)), from: 4)
        #expect(script.instance.countedPreVotes == 0)
        #expect(script.faults.map(\.kind) == [.unjustified] && script.faults.map(\.node) == [4])
        let good = group.certificate([2, 3], statement)
        script.deliver(group.preVote(from: 4, round: 1, value: true, justification: .preProcessed(good)), from: 4)
        #expect(script.instance.countedPreVotes == 1)
    }

    @Test func decidedCertificateDecidesAtOnceAndIsForwardedOnce() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 25)
        var script = BinaryAgreementScript(group: group, me: 1)
        // Too few signers, or the wrong value: no decision.
        let statement = group.mainVoteStatement(round: 3, value: true)
        script.deliver(.decided(round: 3, value: true, certificate: group.certificate([2, 3], statement)), from: 2)
        script.deliver(.decided(round: 3, value: false, certificate: group.certificate([2, 3, 4], statement)), from: 2)
        #expect(script.instance.decision == nil)
        #expect(script.faults.map(\.kind) == [.invalidProof, .invalidProof])

        let decided = BinaryAgreement.Message.decided(
            round: 3, value: true, certificate: group.certificate([2, 3, 4], statement))
        script.deliver(decided, from: 2)
        #expect(script.outputs == [true])
        #expect(script.instance.decision == true && script.instance.decisionRound == 3)
        #expect(script.instance.isFinished)
        #expect(script.sent == [decided])
        // Finished: nothing more goes out, not even after an input.
        script.deliver(decided, from: 3)
        script.propose(false)
        #expect(script.sent == [decided] && script.outputs == [true])
    }

    // MARK: - Bounded buffers

    @Test func farFutureRoundsAreDroppedAndBufferBounded() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 26)
        let window = BinaryAgreement.futureRoundWindow
        var script = BinaryAgreementScript(group: group, me: 1)
        script.propose(true)
        // Parties 2, 3 and 4 flood every kind of message for rounds 2…200, each twice with a different body.
        for round in 2...200 {
            for sender in 2...4 {
                for message in group.garbage(from: sender, round: round) {
                    script.deliver(message, from: sender)
                }
            }
        }
        // One slot per (round, kind, sender) within the window; everything else dropped.
        #expect(script.instance.bufferedMessageCount == 3 * 3 * window)
        #expect(script.instance.bufferedMessageCount <= BinaryAgreement.bufferedMessageCountMax)
        #expect(script.faults.filter { $0.kind == .outOfWindow }.count == 3 * 6 * (200 - 1 - window))
        #expect(script.faults.filter { $0.kind == .equivocation }.count == 3 * 3 * window)

        // A smaller cap holds: the nearest rounds stay, the farthest go.
        var small = BinaryAgreementScript(group: group, me: 1, bufferCapacity: 10)
        for round in stride(from: window + 1, through: 2, by: -1) {
            for message in group.garbage(from: 4, round: round) { small.deliver(message, from: 4) }
            #expect(small.instance.bufferedMessageCount <= 10)
        }
        #expect(small.instance.bufferedMessageCount == 10)
    }

    @Test(arguments: shapes) func floodingPartyDoesNotPreventTermination(n: Int, t: Int) throws {
        let group = try BinaryAgreementGroup(n: n, t: t, seed: UInt64(n) + 5)
        let flooders = Set(1...t)
        let inputs = (1...n).map { $0 % 3 == 0 }
        var pump = AgreementPump(
            group: group, inputs: inputs, seed: 700 + UInt64(n),
            behaviours: Dictionary(uniqueKeysWithValues: flooders.map { ($0, .flooder) }))
        try pump.run()
        try pump.expectAgreementValidityAndTermination(inputs, label: "\(t) flooders")
        let bound = min(BinaryAgreement.bufferedMessageCountMax, 3 * n * (BinaryAgreement.futureRoundWindow + 1))
        #expect(pump.largestBuffer > 0 && pump.largestBuffer <= bound)
    }

    // MARK: - Wire format

    @Test func everyMessageRoundTripsThroughItsWireEncoding() throws {
        let group = try BinaryAgreementGroup(n: 7, t: 2, seed: 27)
        let messages = group.sampleMessages()
        #expect(messages.count == 9)
        for message in messages {
            let decoded = try BinaryAgreement.Message(encoded: message.encoded, limits: group.limits)
            #expect(decoded == message)
            #expect(decoded.encoded == message.encoded)
        }
    }

    @Test func decodingGarbageThrowsAndNeverTraps() throws {
        let group = try BinaryAgreementGroup(n: 7, t: 2, seed: 28)
        let limits = group.limits
        func decodes(_ bytes: [UInt8]) -> Bool {
            (try? BinaryAgreement.Message(encoded: bytes, limits: limits)) != nil
        }
        var random = ProtocolRandom.seeded(29)
        for message in group.sampleMessages() {
            let bytes = message.encoded
            // Every truncation fails, and so does a trailing byte.
            for length in 0..<bytes.count { #expect(!decodes(Array(bytes.prefix(length)))) }
            #expect(!decodes(bytes + [0]))
            // Random byte changes either fail or give a message that re-encodes to exactly those bytes.
            for _ in 0..<64 {
                var mutated = bytes
                mutated[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                if let decoded = try? BinaryAgreement.Message(encoded: mutated, limits: limits) {
                    #expect(decoded.encoded == mutated)
                }
            }
        }
        for _ in 0..<2000 {
            let length = Int.random(in: 0...300, using: &random)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if let decoded = try? BinaryAgreement.Message(encoded: bytes, limits: limits) {
                #expect(decoded.encoded == bytes)
            }
        }
        // Specific malformations.
        let signature = [UInt8](repeating: 0, count: 64)
        #expect(!decodes([5]))  // unknown tag
        #expect(!decodes([0, 2] + signature))  // value 2 in a pre-process
        #expect(!decodes([2, 0, 0, 0, 0, 2, 0, 0, 0, 0] + signature))  // round 0
        #expect(!decodes([4, 0, 0, 0, 1, 1, 0, 8]))  // a certificate with more signers than members
        #expect(decodes([0, 1] + signature))
    }

    @Test func coinNamesBindPathAndRound() {
        let path = InstancePath("abc").child("abba", 1)
        let names = [
            BinaryAgreement.coinName(path: path, round: 1), BinaryAgreement.coinName(path: path, round: 2),
            BinaryAgreement.coinName(path: InstancePath("abc").child("abba", 2), round: 1),
        ]
        #expect(Set(names).count == 3)
    }
}

// MARK: - Test support

/// Input assignments: unanimous 0, unanimous 1, split.
private struct InputPattern {
    let label: String
    let values: [Bool]

    static func all(n: Int) -> [InputPattern] {
        [
            InputPattern(label: "all false", values: Array(repeating: false, count: n)),
            InputPattern(label: "all true", values: Array(repeating: true, count: n)),
            InputPattern(label: "split", values: (1...n).map { $0 % 2 == 0 }),
        ]
    }
}

/// n parties in-process: a queue of (from, to, encoded message), delivered in a seeded random order, each
/// decoded through the wire codec before it is handled.
private struct AgreementPump {
    enum Behaviour {
        case honest
        /// Sends nothing, receives nothing.
        case silent
        /// Two honest faces, with inputs 0 and 1; the 0-face's messages go to `showsFalseTo`, the 1-face's to the
        /// others; both faces receive everything sent to the party.
        case twoFaced(showsFalseTo: Set<Int>)
        /// At the start, sends garbage for every round in and beyond the window to everyone, then stays silent.
        case flooder
    }

    struct Delivery {
        let from: Int
        let to: Int
        /// For a two-faced party: the only face that receives it (its own message looped back).
        let face: Int?
        let bytes: [UInt8]
    }

    let group: BinaryAgreementGroup
    let behaviours: [Int: Behaviour]
    /// If set, nine deliveries in ten stay inside one of two halves (this set and the rest) while any such is
    /// queued: each half then tends to see its own votes first, which splits rounds more often.
    var halves: Set<Int>?
    var faces: [[BinaryAgreement.Instance]]
    var queue: [Delivery] = []
    var random: ProtocolRandom
    var deliveries = 0
    var outputs: [Int: [Bool]] = [:]
    var faults: [Fault] = []
    var largestBuffer = 0
    var coinReleases = 0
    var earlyCoinReleases: [String] = []
    /// Values certified by a pre-vote certificate (in a main-vote or a hard pre-vote), per round.
    var certifiedPreVoteValues: [Int: Set<Bool>] = [:]
    /// Per party and round: the senders of the main-votes delivered to it, and whether it main-voted.
    private var mainVotesDelivered: [Int: [Int: Set<Int>]] = [:]
    private var mainVoted: Set<[Int]> = []

    init(group: BinaryAgreementGroup, inputs: [Bool], seed: UInt64, behaviours: [Int: Behaviour] = [:]) {
        self.group = group
        self.behaviours = behaviours
        self.random = .seeded(seed)
        faces = (1...group.n).map { member in
            switch behaviours[member] ?? .honest {
            case .honest: return [group.instance(member, seed: seed &* 1000 &+ UInt64(member))]
            case .twoFaced:
                return [0, 1].map { group.instance(member, seed: seed &* 1000 &+ UInt64(member * 10 + $0)) }
            case .silent, .flooder: return []
            }
        }
        for member in 1...group.n {
            switch behaviours[member] ?? .honest {
            case .honest: enqueue(faces[member - 1][0].propose(inputs[member - 1]), from: member, face: 0)
            case .twoFaced:
                enqueue(faces[member - 1][0].propose(false), from: member, face: 0)
                enqueue(faces[member - 1][1].propose(true), from: member, face: 1)
            case .flooder:
                for round in 2...(BinaryAgreement.futureRoundWindow + 4) {
                    for message in group.garbage(from: member, round: round) {
                        var effects = Effects<BinaryAgreement.Message, Bool>()
                        effects.broadcast(message)
                        enqueue(effects, from: member, face: 0)
                    }
                }
            case .silent: break
            }
        }
    }

    var honestMembers: [Int] {
        (1...group.n).filter { if case .honest = behaviours[$0] ?? .honest { return true } else { return false } }
    }

    /// The smallest decision round among honest parties.
    var firstDecisionRound: Int? {
        honestMembers.compactMap { faces[$0 - 1][0].decisionRound }.min()
    }

    /// Delivers until the queue is empty; at most 200 n² deliveries (a round costs about 4 n²).
    mutating func run() throws {
        let budget = 200 * group.n * group.n
        while !queue.isEmpty {
            deliveries += 1
            guard deliveries <= budget else { break }
            let delivery = queue.remove(at: nextDelivery())
            let message = try BinaryAgreement.Message(encoded: delivery.bytes, limits: group.limits)
            let targets = delivery.face.map { [$0] } ?? Array(faces[delivery.to - 1].indices)
            for face in targets {
                observeDelivery(message, from: delivery.from, to: delivery.to)
                let effects = faces[delivery.to - 1][face].handle(message, from: delivery.from)
                largestBuffer = max(largestBuffer, faces[delivery.to - 1][face].bufferedMessageCount)
                enqueue(effects, from: delivery.to, face: face)
            }
        }
    }

    private mutating func nextDelivery() -> Int {
        if let halves, Int.random(in: 0..<10, using: &random) < 9 {
            let inside = queue.indices.filter { halves.contains(queue[$0].from) == halves.contains(queue[$0].to) }
            if let index = inside.randomElement(using: &random) { return index }
        }
        return Int.random(in: 0..<queue.count, using: &random)
    }

    private mutating func enqueue(_ effects: Effects<BinaryAgreement.Message, Bool>, from member: Int, face: Int) {
        if case .honest = behaviours[member] ?? .honest {
            outputs[member, default: []] += effects.outputs
            faults += effects.faults
        }
        for outgoing in effects.messages {
            observeSend(outgoing.message, from: member)
            let bytes = outgoing.message.encoded
            let recipients: [Int]
            switch outgoing.recipient {
            case .all: recipients = Array(1...group.n)
            case .node(let node): recipients = [node]
            }
            for recipient in recipients where !faces[recipient - 1].isEmpty {
                if case .twoFaced(let showsFalseTo) = behaviours[member] ?? .honest {
                    if recipient == member {
                        queue.append(Delivery(from: member, to: recipient, face: face, bytes: bytes))
                    } else if (face == 0) == showsFalseTo.contains(recipient) {
                        queue.append(Delivery(from: member, to: recipient, face: nil, bytes: bytes))
                    }
                } else {
                    queue.append(Delivery(from: member, to: recipient, face: nil, bytes: bytes))
                }
            }
        }
    }

    private mutating func observeDelivery(_ message: BinaryAgreement.Message, from sender: Int, to member: Int) {
        if case .mainVote(let round, _, _) = message {
            mainVotesDelivered[member, default: [:]][round, default: []].insert(sender)
        }
    }

    private mutating func observeSend(_ message: BinaryAgreement.Message, from member: Int) {
        switch message {
        case .mainVote(let round, let vote, _):
            mainVoted.insert([member, round])
            if let value = vote.value { certifiedPreVoteValues[round, default: []].insert(value) }
        case .preVote(let round, let value, .hard, _):
            certifiedPreVoteValues[round - 1, default: []].insert(value)
        case .coinShare(let round, _):
            guard case .honest = behaviours[member] ?? .honest else { return }
            coinReleases += 1
            let delivered = mainVotesDelivered[member]?[round]?.count ?? 0
            if delivered < group.configuration.quorum || !mainVoted.contains([member, round]) {
                earlyCoinReleases.append("party \(member), round \(round): \(delivered) main-votes")
            }
        default:
            break
        }
    }

    /// Every honest party decided exactly once, all the same value, and that value was an honest input when
    /// the honest inputs were unanimous; every honest instance is finished and the queue drained.
    func expectAgreementValidityAndTermination(_ inputs: [Bool], label: String) throws {
        let honest = honestMembers
        #expect(queue.isEmpty, "\(label): still \(queue.count) messages after \(deliveries) deliveries")
        var decisions = Set<Bool>()
        for member in honest {
            let instance = faces[member - 1][0]
            #expect(instance.isFinished, "\(label): party \(member) did not finish (round \(instance.round))")
            #expect(outputs[member]?.count == 1, "\(label): party \(member) output \(outputs[member] ?? [])")
            if let decision = instance.decision { decisions.insert(decision) }
            #expect(instance.bufferedMessageCount == 0)
        }
        #expect(decisions.count == 1, "\(label): decisions \(decisions)")
        let honestInputs = Set(honest.map { inputs[$0 - 1] })
        if honestInputs.count == 1 {
            #expect(decisions == honestInputs, "\(label): validity violated")
        }
        let rounds = honest.compactMap { faces[$0 - 1][0].decisionRound }
        print("ABBA n=\(group.n) t=\(group.configuration.faulty) [\(label)]: decision rounds \(rounds), "
            + "\(deliveries) deliveries")
    }
}
