import SintraCrypto
import Testing

@testable import SintraCore

// Support for BinaryAgreementTests: keys for a group, any party's messages (tests hold every key), and a
// driver for one instance by hand.

/// Keys for n parties, and helpers that make any party's messages (tests hold every key).
struct BinaryAgreementGroup {
    let configuration: GroupConfiguration
    let keys: [LocalKeys]
    var path = InstancePath("test").child("abba", 7)

    init(n: Int, t: Int, seed: UInt64) throws {
        var random = ProtocolRandom.seeded(seed)
        let dealt = try KeyDealer.deal(replicas: n, faulty: t, using: &random)
        configuration = try GroupConfiguration(
            replicas: n, faulty: t, clusterIdentifier: dealt.clusterIdentifier,
            memberKeys: try dealt.identityKeys.map { try MemberPublicKey(bytes: $0) },
            coinKey: dealt.coinPublicKey, encryptionKey: dealt.encryptionPublicKey)
        keys = try dealt.secrets.map { try LocalKeys(secrets: $0) }
    }

    var n: Int { configuration.replicas }
    var limits: WireLimits { WireLimits(memberCount: n) }

    func instance(_ member: Int, seed: UInt64, bufferCapacity: Int = BinaryAgreement.bufferedMessageCountMax)
        -> BinaryAgreement.Instance
    {
        BinaryAgreement.Instance(
            configuration: configuration, keys: keys[member - 1], path: path, random: .seeded(seed),
            bufferCapacity: bufferCapacity)
    }

    func sign(_ member: Int, _ statement: SignedStatement) -> [UInt8] {
        keys[member - 1].identity.sign(statement)
    }

    func certificate(_ signers: [Int], _ statement: SignedStatement) -> QuorumCertificate {
        QuorumCertificate(signatures: signers.map { .init(member: $0, bytes: sign($0, statement)) })
    }

    func preProcessStatement(value: Bool) -> SignedStatement {
        BinaryAgreement.preProcessStatement(path: path, value: value)
    }

    func preVoteStatement(round: Int, value: Bool) -> SignedStatement {
        BinaryAgreement.preVoteStatement(path: path, round: round, value: value)
    }

    func mainVoteStatement(round: Int, value: Bool?) -> SignedStatement {
        BinaryAgreement.mainVoteStatement(path: path, round: round, value: value)
    }

    /// A round-1 justification for `value`: t + 1 pre-processes (by the lowest or highest members).
    func preProcessed(_ value: Bool) -> BinaryAgreement.PreVoteJustification {
        let t1 = configuration.weakQuorum
        let signers = value ? Array((n - t1 + 1)...n) : Array(1...t1)
        return .preProcessed(certificate(signers, preProcessStatement(value: value)))
    }

    /// A round-r abstain: valid round-1 justifications for both values.
    func abstain(round: Int) -> BinaryAgreement.MainVote {
        precondition(round == 1, "only round-1 abstains are made here")
        return .abstain(forFalse: preProcessed(false), forTrue: preProcessed(true))
    }

    func preProcess(from member: Int, value: Bool) -> BinaryAgreement.Message {
        .preProcess(value: value, signature: sign(member, preProcessStatement(value: value)))
    }

    func preVote(
        from member: Int, round: Int, value: Bool, justification: BinaryAgreement.PreVoteJustification
    ) -> BinaryAgreement.Message {
        .preVote(
            round: round, value: value, justification: justification,
            signature: sign(member, preVoteStatement(round: round, value: value)))
    }

    func mainVote(from member: Int, round: Int, vote: BinaryAgreement.MainVote) -> BinaryAgreement.Message {
        .mainVote(round: round, vote: vote, signature: sign(member, mainVoteStatement(round: round, value: vote.value)))
    }

    func coinShare(from member: Int, round: Int, nonceSeed: UInt64 = 0) -> BinaryAgreement.Message {
        var random = ProtocolRandom.seeded(nonceSeed)
        let name = BinaryAgreement.coinName(path: path, round: round)
        return .coinShare(round: round, share: keys[member - 1].coinShare.coinShare(name: name, using: &random))
    }

    /// coin(round), from the first t + 1 shares.
    func coin(round: Int) throws -> Bool {
        let name = BinaryAgreement.coinName(path: path, round: round)
        let shares = try (1...configuration.weakQuorum).map { member in
            var random = ProtocolRandom.seeded(UInt64(member))
            let share = keys[member - 1].coinShare.coinShare(name: name, using: &random)
            return try configuration.coinKey.verifyCoinShare(share, name: name)
        }
        return try configuration.coinKey.combineCoin(shares, name: name).bit
    }

    /// Two different, decodable but unjustified messages of each round-bound kind.
    func garbage(from member: Int, round: Int) -> [BinaryAgreement.Message] {
        let empty = QuorumCertificate(signatures: [])
        let signature = [UInt8](repeating: UInt8(round % 256), count: 64)
        var random = ProtocolRandom.seeded(UInt64(round))
        let share = keys[member - 1].coinShare.coinShare(name: [UInt8(round % 256)], using: &random)
        return [false, true].flatMap { value -> [BinaryAgreement.Message] in
            [
                .preVote(round: round, value: value, justification: .hard(empty), signature: signature),
                .mainVote(round: round, vote: .value(value, certificate: empty), signature: signature),
                .coinShare(round: round, share: value ? share : keys[member - 1].coinShare.coinShare(
                    name: [UInt8(round % 256), 1], using: &random)),
            ]
        }
    }

    /// One message of every case and variant.
    func sampleMessages() -> [BinaryAgreement.Message] {
        let quorum = Array(1...configuration.quorum)
        let hard = certificate(quorum, preVoteStatement(round: 1, value: true))
        let soft = certificate(quorum, mainVoteStatement(round: 1, value: nil))
        return [
            preProcess(from: 2, value: true),
            preVote(from: 3, round: 1, value: false, justification: preProcessed(false)),
            preVote(from: 3, round: 2, value: true, justification: .hard(hard)),
            preVote(from: 3, round: 2, value: false, justification: .soft(soft)),
            mainVote(
                from: 4, round: 2,
                vote: .value(true, certificate: certificate(quorum, preVoteStatement(round: 2, value: true)))),
            mainVote(from: 4, round: 1, vote: abstain(round: 1)),
            mainVote(from: 4, round: 2, vote: .abstain(forFalse: .soft(soft), forTrue: .hard(hard))),
            coinShare(from: 5, round: 70_000),
            .decided(
                round: 9, value: false, certificate: certificate(quorum, mainVoteStatement(round: 9, value: false))),
        ]
    }
}

/// Drives one instance by hand; its messages to everyone (itself included) are looped back in order.
struct BinaryAgreementScript {
    let group: BinaryAgreementGroup
    let me: Int
    var instance: BinaryAgreement.Instance
    var sent: [BinaryAgreement.Message] = []
    var outputs: [Bool] = []
    var faults: [Fault] = []

    init(group: BinaryAgreementGroup, me: Int, bufferCapacity: Int = BinaryAgreement.bufferedMessageCountMax) {
        self.group = group
        self.me = me
        instance = group.instance(me, seed: 99, bufferCapacity: bufferCapacity)
    }

    var sentPreVotes: [(round: Int, value: Bool)] {
        sent.compactMap {
            if case .preVote(let round, let value, _, _) = $0 { return (round, value) } else { return nil }
        }
    }
    var sentMainVotes: [BinaryAgreement.MainVote] {
        sent.compactMap { if case .mainVote(_, let vote, _) = $0 { return vote } else { return nil } }
    }
    var sentCoinShares: [Int] {
        sent.compactMap { if case .coinShare(let round, _) = $0 { return round } else { return nil } }
    }

    mutating func propose(_ value: Bool) {
        absorb(instance.propose(value))
    }

    mutating func deliver(_ message: BinaryAgreement.Message, from sender: Int) {
        absorb(instance.handle(message, from: sender))
    }

    private mutating func absorb(_ first: Effects<BinaryAgreement.Message, Bool>) {
        var pending = [first]
        while !pending.isEmpty {
            let effects = pending.removeFirst()
            outputs += effects.outputs
            faults += effects.faults
            for outgoing in effects.messages {
                sent.append(outgoing.message)
                switch outgoing.recipient {
                case .all: pending.append(instance.handle(outgoing.message, from: me))
                case .node(let node) where node == me: pending.append(instance.handle(outgoing.message, from: me))
                case .node: break
                }
            }
        }
    }

    /// Party 1 (input 0) sees a split round 1 (pre-votes 0, 1, 0), main-votes abstain with parties 2 and 3,
    /// releases its round-1 coin share and waits in round 2 for coin(1).
    mutating func driveToAllAbstainRoundTwo() throws {
        precondition(me == 1 && group.n == 4)
        propose(false)
        deliver(group.preProcess(from: 2, value: false), from: 2)
        deliver(group.preProcess(from: 3, value: true), from: 3)
        deliver(group.preVote(from: 2, round: 1, value: true, justification: group.preProcessed(true)), from: 2)
        deliver(group.preVote(from: 3, round: 1, value: false, justification: group.preProcessed(false)), from: 3)
        deliver(group.mainVote(from: 2, round: 1, vote: group.abstain(round: 1)), from: 2)
        deliver(group.mainVote(from: 3, round: 1, vote: group.abstain(round: 1)), from: 3)
        #expect(sentCoinShares == [1])
        #expect(faults.isEmpty, "\(faults)")
    }
}
