import Crypto
import SintraCore
import SintraCrypto

/// Validated agreement (`ValidatedAgreement`, CKPS01 "Protocol VBA" with the commit step) in the simulator:
/// every node proposes a value that satisfies the external predicate (`isValid`: a tag byte, a body and a
/// 4-byte SHA-256 checksum over both, so no garbage passes by accident).
///
/// Guarantees (PROTOCOLS.md §6): agreement on (candidate, value); external validity — the decided value
/// satisfies the predicate, was proposed (by an honest node, or by a Byzantine one from its two valid
/// values), carries a certificate that the candidate's proposal broadcast delivered it, and is exactly the
/// candidate's proposal if the candidate is honest; every honest node decides once (termination, within
/// the bound after the network heals). The decision iteration is reported as the decision round.
///
/// Byzantine behaviours of its own:
/// - `invalid`: proposes a value that fails the predicate (the checksum is off by one bit), and answers
///   with it, uncertified, as if fetched;
/// - `equivocate`: proposes its alternate valid value to the upper half of the members, and votes no (with
///   its committed bitmap) to the upper half where it votes yes to the lower half;
/// - `withhold`: never proposes and never answers a fetch, but takes part in everything else;
/// - `bad-vote`: votes with proofs that do not hold (yes with another value's or a short certificate, no
///   with a bitmap that lists the candidate or was never committed), sends coin shares that do not verify
///   and fetch answers for values that were not certified.
public struct ValidatedAgreementAdapter: SimulatedProtocol {
    public typealias Instance = ValidatedAgreement.Instance

    public struct Scenario: Sendable {
        /// Member i's proposal at position i − 1 (valid).
        public let proposals: [[UInt8]]
        /// What an equivocating member i proposes to the upper half (valid too).
        public let alternates: [[UInt8]]
        /// What member i proposes with the `invalid` behaviour (fails the predicate).
        public let invalids: [[UInt8]]
    }

    /// What a Byzantine node keeps: its own committed bitmap and certificate (from its shadow), to vote no
    /// where it also votes yes.
    public struct ByzantineMemory {
        var ownBitmap: [UInt8]?
        var ownCommit: (bitmap: [UInt8], certificate: QuorumCertificate)?
    }

    /// The tag byte of valid values.
    static let tag: UInt8 = 0x56
    static let valueBytesMax = 64

    /// The external predicate: tag ‖ body ‖ the first 4 bytes of SHA-256(tag ‖ body), at most 64 bytes.
    public static let isValid: @Sendable ([UInt8]) -> Bool = { value in
        guard value.count >= 6, value.count <= valueBytesMax, value[0] == tag else { return false }
        return Array(SHA256.hash(data: value.dropLast(4)).prefix(4)) == Array(value.suffix(4))
    }

    /// A valid value with this body.
    static func value(body: [UInt8]) -> [UInt8] {
        let prefix = [tag] + body
        return prefix + Array(SHA256.hash(data: prefix).prefix(4))
    }

    public init() {}

    public var name: String { "mvba" }

    public func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
        func body(_ member: Int, _ marker: [UInt8]) -> [UInt8] {
            let noise = (0..<Int(random.next() % 16)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            return [UInt8(member)] + marker + noise
        }
        let proposals = context.configuration.members.map { Self.value(body: body($0, [])) }
        let alternates = context.configuration.members.map { Self.value(body: body($0, [0xa1])) }
        let invalids = context.configuration.members.map { member in
            var value = Self.value(body: body(member, [0xbd]))
            value[value.count - 1] ^= 1
            return value
        }
        return Scenario(proposals: proposals, alternates: alternates, invalids: invalids)
    }

    public func makeInstance(
        node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> Instance {
        Instance(
            configuration: context.configuration, keys: context.keys(of: node), path: context.path,
            random: random.split(), predicate: Self.isValid)
    }

    public func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<Instance.Message, Instance.Output>
    {
        instance.propose(scenario.proposals[node - 1])
    }

    public func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<Instance.Output> {
        let proposed = Set(scenario.proposals + context.byzantine.map { scenario.alternates[$0 - 1] })
        return Guarantees(allMustOutput: true, totality: true) { decision in
            if !Self.isValid(decision.value) { return "a value that fails the predicate" }
            if !proposed.contains(decision.value) { return "a value nobody proposed" }
            if !ConsistentBroadcast.verify(
                payload: decision.value, certificate: decision.certificate,
                path: context.path.child("proposal", decision.candidate), configuration: context.configuration)
            {
                return "a value without a certificate from candidate \(decision.candidate)'s proposal broadcast"
            }
            if !context.isByzantine(decision.candidate), decision.value != scenario.proposals[decision.candidate - 1] {
                return "not what the honest candidate \(decision.candidate) proposed"
            }
            return nil
        }
    }

    public func agreementKey(_ output: ValidatedAgreement.Decision) -> [UInt8] {
        [UInt8(truncatingIfNeeded: output.candidate >> 8), UInt8(truncatingIfNeeded: output.candidate)] + output.value
    }

    public func describe(_ output: ValidatedAgreement.Decision) -> String {
        let digest = Hex.encode(SHA256.hash(data: output.value)).prefix(12)
        return "candidate \(output.candidate): \(output.value.count) bytes \(digest)"
    }

    public func describe(message: Instance.Message) -> String {
        let broadcast = ConsistentBroadcastAdapter(verifiable: true)
        switch message {
        case .proposal(let sender, let inner): return "proposal:\(sender) " + broadcast.describe(message: inner)
        case .commit(let sender, let inner): return "commit:\(sender) " + broadcast.describe(message: inner)
        case .coinShare: return "permutation coin share"
        case .vote(let iteration, .yes): return "vote l\(iteration) yes"
        case .vote(let iteration, .no): return "vote l\(iteration) no"
        case .agreement(let iteration, let inner):
            return "agreement:\(iteration) " + BinaryAgreementAdapter().describe(message: inner)
        case .fetch(let candidate): return "fetch \(candidate)"
        case .fetched(let candidate, let proposal, _): return "fetched \(candidate) (\(proposal.count) bytes)"
        }
    }

    public func decisionRound(_ instance: Instance) -> Int? {
        instance.output == nil ? nil : instance.currentIteration
    }

    /// Honest traffic: two broadcasts per member (c-send, c-ready, c-final, and c-request/c-answer), the
    /// coin shares, then per iteration votes and a binary agreement (about 30 rounds' worth, as for `abba`).
    /// Expected iterations are constant (each succeeds with probability above 1/3 whatever the scheduler
    /// does), so a run that needs more than four iterations' worth is a liveness finding.
    public func terminationStepsMax(context: SimulationContext) -> Int {
        (2 * 5 + 1 + 4 * (1 + 92) + 2) * context.replicas * context.replicas
    }

    // MARK: - Byzantine behaviours

    public var specificBehaviours: [String] { ["invalid", "equivocate", "withhold", "bad-vote"] }

    public func makeByzantineMemory(view: ByzantineView<Scenario>) -> ByzantineMemory { ByzantineMemory() }

    public func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message] {
        let me = view.me
        remember(message, me: me, memory: &memory)
        switch (behaviour, message) {
        case ("invalid", .proposal(me, .send)):
            return [.proposal(sender: me, .send(payload: view.scenario.invalids[me - 1]))]
        case ("withhold", .proposal(me, .send)), ("withhold", .fetched):
            return []
        case ("equivocate", .proposal(me, .send)) where view.isUpperHalf(recipient):
            return [.proposal(sender: me, .send(payload: view.scenario.alternates[me - 1]))]
        case ("equivocate", .vote(let iteration, .yes)) where view.isUpperHalf(recipient):
            guard let own = memory.ownCommit else { return [message] }
            return [.vote(iteration: iteration, .no(bitmap: own.bitmap, certificate: own.certificate))]
        case ("bad-vote", .vote(let iteration, let vote)):
            return [.vote(iteration: iteration, badVote(vote, view: view, memory: memory, random: &random))]
        case ("bad-vote", .coinShare(let share)):
            return [.coinShare(badShare(share, view: view, random: &random))]
        case ("bad-vote", .fetched(let candidate, _, let certificate)):
            let alternate = view.scenario.alternates[me - 1]
            return [.fetched(candidate: candidate, proposal: alternate, certificate: certificate)]
        default:
            return [message]
        }
    }

    /// Keeps the shadow's committed bitmap and, once certified, its certificate.
    private func remember(_ message: Instance.Message, me: Int, memory: inout ByzantineMemory) {
        switch message {
        case .commit(me, .send(let bitmap)):
            memory.ownBitmap = bitmap
        case .commit(me, .final(let digest, let certificate)):
            if let bitmap = memory.ownBitmap, Array(SHA256.hash(data: bitmap)) == digest {
                memory.ownCommit = (bitmap, certificate)
            }
        default:
            break
        }
    }

    /// A vote whose proof does not hold.
    private func badVote(
        _ vote: ValidatedAgreement.Vote, view: ByzantineView<Scenario>, memory: ByzantineMemory,
        random: inout ProtocolRandom
    ) -> ValidatedAgreement.Vote {
        let n = view.context.replicas
        let allSet = [UInt8](repeating: 0xff, count: (n + 7) / 8).enumerated().map { index, byte in
            index == (n - 1) / 8 && n % 8 != 0 ? byte >> UInt8(8 - n % 8) : byte
        }
        let empty = QuorumCertificate(signatures: [])
        let choice = random.next() % 4
        if choice == 0, case .yes(let proposal, let certificate) = vote {
            // The certificate without its last signature.
            let short = QuorumCertificate(signatures: Array(certificate.signatures.dropLast()))
            return .yes(proposal: proposal, certificate: short)
        }
        switch choice {
        case 0, 1:
            // Another valid value with the certificate of a different payload (or none).
            let alternate = view.scenario.alternates[view.me - 1]
            return .yes(proposal: alternate, certificate: memory.ownCommit?.certificate ?? empty)
        case 2:
            // A bitmap that lists every candidate, so it cannot justify a no.
            return .no(bitmap: allSet, certificate: memory.ownCommit?.certificate ?? empty)
        default:
            // A bitmap that was never committed.
            return .no(bitmap: allSet, certificate: empty)
        }
    }

    /// A coin share that must be rejected: for another coin, naming another member, or a random value.
    private func badShare(
        _ share: ThresholdCoin.Share, view: ByzantineView<Scenario>, random: inout ProtocolRandom
    ) -> ThresholdCoin.Share {
        let keys = view.context.keys(of: view.me)
        switch random.next() % 3 {
        case 0:
            return keys.coinShare.coinShare(name: view.context.path.child("permutation", 2).encoded, using: &random)
        case 1:
            let other = view.context.honest[Int(random.next() % UInt64(view.context.honest.count))]
            return ThresholdCoin.Share(index: other, value: share.value, proof: share.proof)
        default:
            let value = GroupElement.generatorMultiple(Scalar.random(using: &random))
            return ThresholdCoin.Share(index: share.index, value: value, proof: share.proof)
        }
    }

    public func forge(behaviour: String, view: ByzantineView<Scenario>, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        let empty = QuorumCertificate(signatures: [])
        switch behaviour {
        case "invalid":
            let invalid = view.scenario.invalids[view.me - 1]
            return [Outgoing(.fetched(candidate: view.me, proposal: invalid, certificate: empty), to: .all)]
        case "bad-vote":
            let candidate = view.context.honest[Int(random.next() % UInt64(view.context.honest.count))]
            let alternate = view.scenario.alternates[view.me - 1]
            return [Outgoing(.fetched(candidate: candidate, proposal: alternate, certificate: empty), to: .all)]
        default:
            return []
        }
    }

    /// Fetches (each answered at most once per asker and candidate), votes and binary-agreement votes for
    /// far rounds, and coin shares of other coins.
    public func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        let context = view.context
        let n = context.replicas
        return (0..<count).map { index in
            let iteration = 1 + Int(random.next() % UInt64(n))
            let message: Instance.Message
            switch index % 4 {
            case 0:
                message = .fetch(candidate: 1 + Int(random.next() % UInt64(n)))
            case 1:
                let bitmap = [UInt8](repeating: 0, count: (n + 7) / 8)
                let empty = QuorumCertificate(signatures: [])
                message = .vote(iteration: iteration, .no(bitmap: bitmap, certificate: empty))
            case 2:
                let round = [5, 40, 1 << 20][Int(random.next() % 3)]
                let path = context.path.child("agreement", iteration)
                let statement = BinaryAgreement.preVoteStatement(path: path, round: round, value: true)
                message = .agreement(
                    iteration: iteration,
                    .preVote(
                        round: round, value: true, justification: .hard(QuorumCertificate(signatures: [])),
                        signature: context.keys(of: view.me).identity.sign(statement)))
            default:
                let name = context.path.child("permutation", Int(random.next() % 8) + 1).encoded
                message = .coinShare(context.keys(of: view.me).coinShare.coinShare(name: name, using: &random))
            }
            return Outgoing(message, to: .node(context.honest[Int(random.next() % UInt64(context.honest.count))]))
        }
    }
}
