import Crypto
import SintraCore
import SintraCrypto

/// Consistent broadcast (`ConsistentBroadcast`, Reiter / CKPS01 with e-quorum certificates) in the
/// simulator, as `cbc` (payloads only) or `vcbc` (the delivered certificate must also convince a third
/// party). One sender, drawn from all members, broadcasts a random payload.
///
/// Guarantees (PROTOCOLS.md §4): honest deliveries agree on the payload (consistency); with an honest
/// sender every honest node delivers exactly its payload; no totality with a Byzantine sender. For vcbc
/// every honest delivery's certificate verifies as a QC_e on ("c-ready", path, H(payload)).
///
/// Byzantine behaviours of its own:
/// - `equivocate`: a Byzantine sender sends an alternate payload to the upper half and withholds its
///   real c-final and c-answers from them; it collects their c-readies for the alternate, adds the
///   signatures of every Byzantine member, and sends a c-final for the alternate as soon as that makes e
///   (which consistency says never happens). Other Byzantine members sign both digests (vote both ways).
/// - `forge-certificate`: c-finals and c-answers for the alternate payload with certificates that repeat
///   a signer, fall short of e, or carry made-up signatures of honest members.
public struct ConsistentBroadcastAdapter: SimulatedProtocol {
    public typealias Instance = ConsistentBroadcast.Instance

    public struct Scenario: Sendable {
        public let sender: Int
        public let payload: [UInt8]
        public let alternate: [UInt8]
    }

    /// An equivocating sender's collection of c-ready signatures for the alternate payload.
    public struct ByzantineMemory {
        var alternateSignatures: [Int: [UInt8]] = [:]
        var sentAlternateFinal = false
    }

    /// Whether deliveries must carry a third-party-verifiable certificate (vcbc).
    public let verifiable: Bool

    public init(verifiable: Bool) {
        self.verifiable = verifiable
    }

    public var name: String { verifiable ? "vcbc" : "cbc" }

    public func makeScenario(context: SimulationContext, random: inout ProtocolRandom) -> Scenario {
        let sender = 1 + Int(random.next() % UInt64(context.replicas))
        let payload = (0..<Int(random.next() % 48)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        return Scenario(sender: sender, payload: payload, alternate: payload + [UInt8(truncatingIfNeeded: random.next())])
    }

    public func makeInstance(
        node: Int, scenario: Scenario, context: SimulationContext, random: inout ProtocolRandom
    ) -> Instance {
        Instance(configuration: context.configuration, keys: context.keys(of: node), path: context.path, sender: scenario.sender)
    }

    public func start(_ instance: inout Instance, node: Int, scenario: Scenario, context: SimulationContext)
        -> Effects<Instance.Message, Instance.Output>
    {
        node == scenario.sender ? instance.broadcast(scenario.payload) : Effects()
    }

    public func guarantees(scenario: Scenario, context: SimulationContext) -> Guarantees<Instance.Output> {
        let honestSender = !context.isByzantine(scenario.sender)
        let verifiable = verifiable
        return Guarantees(allMustOutput: honestSender, totality: false) { delivery in
            if honestSender && delivery.payload != scenario.payload {
                return "the honest sender \(scenario.sender) broadcast another payload"
            }
            if verifiable && !ConsistentBroadcast.verify(
                payload: delivery.payload, certificate: delivery.certificate, path: context.path,
                configuration: context.configuration)
            {
                return "its certificate does not prove the payload to a third party"
            }
            return nil
        }
    }

    public func agreementKey(_ output: ConsistentBroadcast.Delivery) -> [UInt8] { output.payload }

    public func describe(_ output: ConsistentBroadcast.Delivery) -> String {
        "\(output.payload.count) bytes \(short(digest(output.payload))) signed by \(output.certificate.signers)"
    }

    public func describe(message: Instance.Message) -> String {
        switch message {
        case .send(let payload): "c-send \(payload.count) bytes \(short(digest(payload)))"
        case .ready(let digest, _): "c-ready \(short(digest))"
        case .final(let digest, let certificate): "c-final \(short(digest)) signed by \(certificate.signers)"
        case .request: "c-request"
        case .answer(let payload, let certificate):
            "c-answer \(short(digest(payload))) signed by \(certificate.signers)"
        }
    }

    private func digest(_ payload: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: payload)) }
    private func short(_ bytes: [UInt8]) -> String { String(Hex.encode(bytes).prefix(12)) }

    private func statement(_ digest: [UInt8], context: SimulationContext) -> SignedStatement {
        SignedStatement(domain: ConsistentBroadcast.readyDomain, path: context.path.description, payloadDigest: digest)
    }

    public var specificBehaviours: [String] { ["equivocate", "forge-certificate"] }

    public func makeByzantineMemory(view: ByzantineView<Scenario>) -> ByzantineMemory { ByzantineMemory() }

    public func tamper(
        _ message: Instance.Message, to recipient: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Instance.Message] {
        guard behaviour == "equivocate" else { return [message] }
        let scenario = view.scenario
        switch message {
        case .send(let payload) where view.isUpperHalf(recipient):
            return [.send(payload: payload == scenario.payload ? scenario.alternate : scenario.payload)]
        case .final, .answer:
            // The upper half must not learn the real payload's certificate.
            return view.isUpperHalf(recipient) ? [] : [message]
        case .ready(let digest, _):
            // Vote both ways: sign the other digest too.
            let other = digest == self.digest(scenario.payload) ? self.digest(scenario.alternate) : self.digest(scenario.payload)
            let signature = view.context.keys(of: view.me).identity.sign(statement(other, context: view.context))
            return [message, .ready(digest: other, signature: signature)]
        default:
            return [message]
        }
    }

    public func intercept(
        _ message: Instance.Message, from sender: Int, behaviour: String, view: ByzantineView<Scenario>,
        memory: inout ByzantineMemory, random: inout ProtocolRandom
    ) -> [Outgoing<Instance.Message>] {
        let context = view.context
        let alternate = digest(view.scenario.alternate)
        guard behaviour == "equivocate", view.me == view.scenario.sender, !memory.sentAlternateFinal,
            case .ready(let digest, let signature) = message, digest == alternate
        else { return [] }
        memory.alternateSignatures[sender] = signature
        let statement = statement(alternate, context: context)
        for member in context.byzantine where memory.alternateSignatures[member] == nil {
            memory.alternateSignatures[member] = context.keys(of: member).identity.sign(statement)
        }
        var builder = QuorumCertificate.Builder(
            statement: statement, members: context.configuration.memberKeys, threshold: context.configuration.echoQuorum)
        for member in memory.alternateSignatures.keys.sorted() {
            _ = try? builder.add(member: member, signature: memory.alternateSignatures[member]!)
        }
        guard let certificate = builder.certificate() else { return [] }
        memory.sentAlternateFinal = true
        return context.configuration.members.filter { view.isUpperHalf($0) }.map {
            Outgoing(.final(digest: alternate, certificate: certificate), to: .node($0))
        }
    }

    public func forge(behaviour: String, view: ByzantineView<Scenario>, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        guard behaviour == "forge-certificate" else { return [] }
        let context = view.context
        let alternate = view.scenario.alternate
        let statement = statement(digest(alternate), context: context)
        let real = context.byzantine.map {
            QuorumCertificate.Signature(member: $0, bytes: context.keys(of: $0).identity.sign(statement))
        }
        let needed = context.configuration.echoQuorum
        // The Byzantine signatures, the first repeated until e entries: decoders must reject the repeats.
        let duplicated = QuorumCertificate(signatures: real + Array(repeating: real[0], count: max(0, needed - real.count)))
        // Too few signers.
        let short = QuorumCertificate(signatures: real)
        // Made-up signatures of honest members to fill up to e.
        let madeUp = QuorumCertificate(
            signatures: real
                + context.honest.prefix(max(0, needed - real.count)).map { member in
                    QuorumCertificate.Signature(
                        member: member, bytes: (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) })
                })
        return [duplicated, short, madeUp].flatMap { certificate in
            [
                Outgoing(.final(digest: digest(alternate), certificate: certificate), to: .all),
                Outgoing(.answer(payload: alternate, certificate: certificate), to: .all),
            ]
        }
    }

    public func flood(view: ByzantineView<Scenario>, count: Int, random: inout ProtocolRandom)
        -> [Outgoing<Instance.Message>]
    {
        (0..<count).map { index in
            let bytes = (0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let message: Instance.Message
            switch index % 3 {
            case 0: message = .ready(digest: bytes, signature: bytes + bytes)
            case 1: message = .request
            default: message = .answer(payload: bytes, certificate: QuorumCertificate(signatures: []))
            }
            return Outgoing(message, to: .node(1 + Int(random.next() % UInt64(view.context.replicas))))
        }
    }

    public func terminationStepsMax(context: SimulationContext) -> Int {
        // Honest traffic is at most c-send, c-ready, c-final, c-request and c-answer per pair.
        5 * context.replicas * context.replicas
    }
}
