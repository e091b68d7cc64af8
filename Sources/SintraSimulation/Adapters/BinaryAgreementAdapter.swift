import SintraCore
import SintraCrypto

/// Binary agreement (`BinaryAgreement`, Cachin–Kursawe–Shoup ABBA) in the simulator: every node proposes
/// a bit — all honest nodes the same bit, random bits, or the honest nodes split in half, as the seed says.
///
/// Guarantees (PROTOCOLS.md §5): agreement; validity (if every honest node proposed b, only b is decided);
/// every honest node decides (termination, within a generous number of rounds' worth of honest messages
/// after the network heals), once; future-round buffers stay within their bound. The decision round of
/// each honest node is reported.
///
/// Byzantine behaviours of its own:
/// - `equivocate`: the upper half of the members get every vote the other way (freshly signed; justified
///   when an honest vote showed a justification for it, e.g. a hard pre-vote from a main-vote certificate,
///   or abstain from one justification per value) and the lower half the real one;
/// - `vote-both`: everyone gets both the real vote and the other one, and every vote that an honest
///   node's justification newly supports, as soon as the Byzantine node sees that justification;
/// - `bad-coin`: coin shares with a random value, for another round, or naming another member;
/// - `forge-certificate`: justifications and `decided` certificates with a repeated signer, too few signers
///   or made-up signatures of honest members, and a forged `decided` for a random value at the start;
/// - flood: pre-votes, main-votes and (valid) coin shares for rounds up to just past the future-round
///   window and far beyond it.
/// The `steer` adversary is `BinaryAgreementSteering` (split and steer against the coin).
public struct BinaryAgreementAdapter: SimulatedProtocol {
    public typealias Instance = BinaryAgreement.Instance

    public struct Scenario: Sendable {
        /// Member i's input at position i − 1 (Byzantine shadows propose theirs too).
        public let inputs: [Bool]
    }

    /// What a Byzantine node learns from honest votes: justifications it can reuse to vote both ways with
    /// votes that verify.
    public struct ByzantineMemory {
        struct Key: Hashable {
            let round: Int
            let value: Bool
        }

        /// A valid justification for a pre-vote of (round, value), from honest pre-votes and main-votes.
        var preVoteJustifications: [Key: BinaryAgreement.PreVoteJustification] = [:]
        /// QC_q("pre-vote", round, value), from honest main-votes, to main-vote that value.
        var mainVoteCertificates: [Key: QuorumCertificate] = [:]

        /// Records the justifications in an honest message; returns the (round, value) pairs it newly
        /// justifies for pre-votes and for main-votes.
        mutating func learn(from message: BinaryAgreement.Message) -> (preVotes: [Key], mainVotes: [Key]) {
            var preVotes = [Key]()
            var mainVotes = [Key]()
            func justify(_ key: Key, _ justification: BinaryAgreement.PreVoteJustification) {
                guard preVoteJustifications[key] == nil else { return }
                preVoteJustifications[key] = justification
                preVotes.append(key)
            }
            switch message {
            case .preVote(let round, let value, let justification, _):
                justify(Key(round: round, value: value), justification)
            case .mainVote(let round, .value(let value, let certificate), _):
                if mainVoteCertificates[Key(round: round, value: value)] == nil {
                    mainVoteCertificates[Key(round: round, value: value)] = certificate
                    mainVotes.append(Key(round: round, value: value))
                }
                justify(Key(round: round + 1, value: value), .hard(certificate))
            case .mainVote(let round, .abstain(let forFalse, let forTrue), _):
                justify(Key(round: round, value: false), forFalse)
                justify(Key(round: round, value: true), forTrue)
            case .preProcess, .coinShare, .decided:
                break
            }
            return (preVotes, mainVotes)
        }
    }

    public init() {}

    public var name: String { "abba" }

    public func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
        let unanimous = random.next() % 2 == 0
        let inputs: [Bool]
        switch random.next() % 3 {
        case 0:
            inputs = context.configuration.members.map { _ in unanimous }
        case 1:
            inputs = context.configuration.members.map { _ in random.next() % 2 == 0 }
        default:
            // Honest nodes split as evenly as possible.
            inputs = context.configuration.members.map { member in
                (context.honest.firstIndex(of: member) ?? Int(random.next() % 2)) % 2 == 0
            }
        }
        return Scenario(inputs: inputs)
    }

    public func makeInstance(
        node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> Instance {
        Instance(configuration: context.configuration, keys: context.keys(of: node), path: context.path, random: random.split())
    }

    public func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<Instance.Message, Bool>
    {
        instance.propose(scenario.inputs[node - 1])
    }

    public func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<Bool> {
        let honestInputs = Set(context.honest.map { scenario.inputs[$0 - 1] })
        return Guarantees(allMustOutput: true, totality: true) { decision in
            honestInputs == [!decision] ? "every honest node proposed \(!decision)" : nil
        }
    }

    public func agreementKey(_ output: Bool) -> [UInt8] { [output ? 1 : 0] }

    public func describe(_ output: Bool) -> String { output ? "1" : "0" }

    public func describe(message: Instance.Message) -> String {
        func text(_ value: Bool?) -> String { value.map { $0 ? "1" : "0" } ?? "abstain" }
        switch message {
        case .preProcess(let value, _): return "pre-process \(text(value))"
        case .preVote(let round, let value, let justification, _):
            let kind: String
            switch justification {
            case .preProcessed: kind = "pre-processed"
            case .hard: kind = "hard"
            case .soft: kind = "soft"
            }
            return "pre-vote r\(round) \(text(value)) (\(kind))"
        case .mainVote(let round, let vote, _): return "main-vote r\(round) \(text(vote.value))"
        case .coinShare(let round, _): return "coin share r\(round)"
        case .decided(let round, let value, _): return "decided r\(round) \(text(value))"
        }
    }

    public var specificBehaviours: [String] { ["equivocate", "vote-both", "bad-coin", "forge-certificate"] }

    public func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message] {
        switch behaviour {
        case "equivocate":
            return [view.isUpperHalf(recipient) ? flipped(message, view: view, memory: memory) ?? message : message]
        case "vote-both":
            // Only votes that verify: an unjustified one would take the receiver's buffer slot for this
            // sender and round, and shut out a valid vote that arrives later.
            return [message] + (flipped(message, view: view, memory: memory, justifiedOnly: true).map { [$0] } ?? [])
        case "bad-coin":
            guard case .coinShare(let round, let share) = message else { return [message] }
            return [badShare(round: round, share: share, view: view, random: &random)]
        case "forge-certificate":
            return [forgedCertificate(in: message, view: view, random: &random) ?? message]
        default:
            return [message]
        }
    }

    public func makeByzantineMemory(view: ByzantineView<Scenario>) -> ByzantineMemory { ByzantineMemory() }

    public func intercept(
        _ message: Instance.Message, from sender: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Outgoing<Instance.Message>] {
        // Honest votes carry valid justifications: remember them, and (voting both ways) cast at once every
        // vote they newly justify, so that the scheduler can pick whichever helps it.
        guard !view.context.isByzantine(sender) else { return [] }
        let learnt = memory.learn(from: message)
        guard behaviour == "vote-both" else { return [] }
        let path = view.context.path
        let identity = view.context.keys(of: view.me).identity
        let preVotes = learnt.preVotes.map { key -> Outgoing<Instance.Message> in
            let statement = BinaryAgreement.preVoteStatement(path: path, round: key.round, value: key.value)
            return Outgoing(
                .preVote(
                    round: key.round, value: key.value, justification: memory.preVoteJustifications[key]!,
                    signature: identity.sign(statement)), to: .all)
        }
        let mainVotes = learnt.mainVotes.map { key -> Outgoing<Instance.Message> in
            let statement = BinaryAgreement.mainVoteStatement(path: path, round: key.round, value: key.value)
            return Outgoing(
                .mainVote(
                    round: key.round, vote: .value(key.value, certificate: memory.mainVoteCertificates[key]!),
                    signature: identity.sign(statement)), to: .all)
        }
        return preVotes + mainVotes
    }

    public func forge(behaviour: String, view: ByzantineView<Scenario>, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        guard behaviour == "forge-certificate" else { return [] }
        let value = random.next() % 2 == 0
        let statement = BinaryAgreement.mainVoteStatement(path: view.context.path, round: 1, value: value)
        return forgedCertificates(statement, view: view, random: &random).map {
            Outgoing(.decided(round: 1, value: value, certificate: $0), to: .all)
        }
    }

    public func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        let context = view.context
        let identity = context.keys(of: view.me).identity
        let window = BinaryAgreement.futureRoundWindow
        let rounds = Array(2...(window + 3)) + [window + 40, 1 << 20, Int(UInt32.max)]
        var messages = [Outgoing<Instance.Message>]()
        for index in 0..<count {
            let round = rounds[index % rounds.count]
            let value = random.next() % 2 == 0
            let message: Instance.Message
            switch random.next() % 3 {
            case 0:
                let statement = BinaryAgreement.preVoteStatement(path: context.path, round: round, value: value)
                message = .preVote(
                    round: round, value: value, justification: .hard(QuorumCertificate(signatures: [])),
                    signature: identity.sign(statement))
            case 1:
                let statement = BinaryAgreement.mainVoteStatement(path: context.path, round: round, value: value)
                message = .mainVote(
                    round: round, vote: .value(value, certificate: QuorumCertificate(signatures: [])),
                    signature: identity.sign(statement))
            default:
                let name = BinaryAgreement.coinName(path: context.path, round: round)
                message = .coinShare(
                    round: round, share: context.keys(of: view.me).coinShare.coinShare(name: name, using: &random))
            }
            let recipient = context.honest[Int(random.next() % UInt64(context.honest.count))]
            messages.append(Outgoing(message, to: .node(recipient)))
        }
        return messages
    }

    public func bufferedMessageCount(_ instance: Instance) -> Int { instance.bufferedMessageCount }

    public func bufferedMessageCountMax(context: SimulationContext) -> Int {
        min(BinaryAgreement.bufferedMessageCountMax, 3 * context.replicas * (BinaryAgreement.futureRoundWindow + 1))
    }

    public func decisionRound(_ instance: Instance) -> Int? { instance.decisionRound }

    /// Thirty rounds' worth of honest pre-votes, main-votes and coin shares, plus pre-processes and
    /// `decided`: each round ends with a decision with probability about 1/2 or more, so a run that
    /// needs more is a liveness finding (or a 2^−30 event).
    public func terminationStepsMax(context: SimulationContext) -> Int {
        (3 * 30 + 2) * context.replicas * context.replicas
    }

    public var hasSteering: Bool { true }

    /// Byzantine nodes that vote both ways give the steering scheduler the most to choose from: it decides
    /// which of their two votes each honest node sees first.
    public var steeringBehaviour: String? { "vote-both" }

    public func makeSteering(scenario: Scenario, context: SimulationContext) -> (any Steering<Instance.Message>)? {
        BinaryAgreementSteering(context: context)
    }

    // MARK: - Byzantine messages

    /// A vote the other way, signed by the Byzantine node: with a valid justification if an honest vote
    /// showed one (a pre-vote for the other value, or abstain instead of a value and back), else with the
    /// original justification, which does not support it.
    private func flipped(
        _ message: Instance.Message, view: ByzantineView<Scenario>, memory: ByzantineMemory,
        justifiedOnly: Bool = false
    ) -> Instance.Message? {
        typealias Key = ByzantineMemory.Key
        let path = view.context.path
        let identity = view.context.keys(of: view.me).identity
        func mainVote(_ round: Int, _ vote: BinaryAgreement.MainVote) -> Instance.Message {
            let statement = BinaryAgreement.mainVoteStatement(path: path, round: round, value: vote.value)
            return .mainVote(round: round, vote: vote, signature: identity.sign(statement))
        }
        switch message {
        case .preProcess(let value, _):
            return .preProcess(
                value: !value, signature: identity.sign(BinaryAgreement.preProcessStatement(path: path, value: !value)))
        case .preVote(let round, let value, let justification, _):
            let known = memory.preVoteJustifications[Key(round: round, value: !value)]
            if known == nil && justifiedOnly { return nil }
            let statement = BinaryAgreement.preVoteStatement(path: path, round: round, value: !value)
            return .preVote(
                round: round, value: !value, justification: known ?? justification, signature: identity.sign(statement))
        case .mainVote(let round, .value(let value, let certificate), _):
            if let other = memory.mainVoteCertificates[Key(round: round, value: !value)] {
                return mainVote(round, .value(!value, certificate: other))
            }
            if let forFalse = memory.preVoteJustifications[Key(round: round, value: false)],
                let forTrue = memory.preVoteJustifications[Key(round: round, value: true)]
            {
                return mainVote(round, .abstain(forFalse: forFalse, forTrue: forTrue))
            }
            return justifiedOnly ? nil : mainVote(round, .value(!value, certificate: certificate))
        case .mainVote(let round, .abstain, _):
            for value in [false, true] {
                if let certificate = memory.mainVoteCertificates[Key(round: round, value: value)] {
                    return mainVote(round, .value(value, certificate: certificate))
                }
            }
            return nil
        case .decided(let round, let value, let certificate):
            return justifiedOnly ? nil : .decided(round: round, value: !value, certificate: certificate)
        case .coinShare:
            return nil
        }
    }

    private func badShare(
        round: Int, share: ThresholdCoin.Share, view: ByzantineView<Scenario>, random: inout ProtocolRandom
    ) -> Instance.Message {
        let keys = view.context.keys(of: view.me)
        switch random.next() % 4 {
        case 0:
            let value = GroupElement.generatorMultiple(Scalar.random(using: &random))
            return .coinShare(round: round, share: ThresholdCoin.Share(index: share.index, value: value, proof: share.proof))
        case 1:
            // A valid share of the next round, sent as this round's.
            let name = BinaryAgreement.coinName(path: view.context.path, round: round + 1)
            return .coinShare(round: round, share: keys.coinShare.coinShare(name: name, using: &random))
        case 2:
            let other = view.context.honest[Int(random.next() % UInt64(view.context.honest.count))]
            return .coinShare(
                round: round, share: ThresholdCoin.Share(index: other, value: share.value, proof: share.proof))
        default:
            // This round's valid share, sent as the next round's.
            return .coinShare(round: round + 1, share: share)
        }
    }

    /// Certificates on `statement` that must all be rejected: the Byzantine members' signatures with one
    /// repeated up to n − t, too few of them, and made-up signatures of honest members to fill up.
    private func forgedCertificates(
        _ statement: SignedStatement, view: ByzantineView<Scenario>, random: inout ProtocolRandom
    ) -> [QuorumCertificate] {
        let context = view.context
        let real = context.byzantine.map {
            QuorumCertificate.Signature(member: $0, bytes: context.keys(of: $0).identity.sign(statement))
        }
        let needed = context.configuration.quorum
        let fill = context.honest.prefix(max(0, needed - real.count)).map { member in
            QuorumCertificate.Signature(member: member, bytes: (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        }
        return [
            QuorumCertificate(signatures: real + Array(repeating: real[0], count: max(0, needed - real.count))),
            QuorumCertificate(signatures: real),
            QuorumCertificate(signatures: real + fill),
        ]
    }

    private func forgedCertificate(
        in message: Instance.Message, view: ByzantineView<Scenario>, random: inout ProtocolRandom
    ) -> Instance.Message? {
        let path = view.context.path
        func pick(_ statement: SignedStatement) -> QuorumCertificate {
            let candidates = forgedCertificates(statement, view: view, random: &random)
            return candidates[Int(random.next() % UInt64(candidates.count))]
        }
        switch message {
        case .preVote(let round, let value, .hard, let signature) where round > 1:
            let statement = BinaryAgreement.preVoteStatement(path: path, round: round - 1, value: value)
            return .preVote(round: round, value: value, justification: .hard(pick(statement)), signature: signature)
        case .preVote(let round, let value, .preProcessed, let signature):
            let statement = BinaryAgreement.preProcessStatement(path: path, value: value)
            return .preVote(round: round, value: value, justification: .preProcessed(pick(statement)), signature: signature)
        case .mainVote(let round, .value(let value, _), let signature):
            let statement = BinaryAgreement.preVoteStatement(path: path, round: round, value: value)
            return .mainVote(round: round, vote: .value(value, certificate: pick(statement)), signature: signature)
        case .decided(let round, let value, _):
            let statement = BinaryAgreement.mainVoteStatement(path: path, round: round, value: value)
            return .decided(round: round, value: value, certificate: pick(statement))
        default:
            return nil
        }
    }
}
