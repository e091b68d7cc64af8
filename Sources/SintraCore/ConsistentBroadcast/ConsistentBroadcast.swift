import Crypto
import SintraCrypto

/// Consistent broadcast with a quorum certificate: Reiter's echo broadcast (Reiter, "Secure agreement
/// protocols: reliable and atomic group multicast in Rampart", CCS 1994) as made verifiable by
/// Cachin–Kursawe–Petzold–Shoup ("Secure and efficient asynchronous broadcast protocols", Crypto 2001,
/// verifiable consistent broadcast), with the threshold signature replaced by a quorum certificate of
/// e = ⌈(n + t + 1)/2⌉ Ed25519 signatures (PROTOCOLS.md §4; the steps are quoted from CKPS01 in
/// maidsafe/sn_consensus, second-hand).
///
/// Guarantees for sender j and path T: consistency (honest parties that deliver, deliver the same m),
/// integrity (at most once, only what j sent), validity for an honest sender. No totality when the
/// sender is faulty. Verifiability: a delivering party holds (m, Σ) that makes any other party deliver m
/// (`ConsistentBroadcast.verify`), which is what validated agreement needs.
///
/// Why e signatures: two certificates on different digests would need two e-sets of signers, which share
/// at least t + 1 parties, one of them honest — and an honest party signs one digest per path. Fewer (t + 1,
/// as one HoneyBadgerBFT-derived draft does) would let a faulty sender certify two payloads.
///
/// With certificates instead of threshold signatures the protocol is verifiable for free, so Sintra has
/// one implementation: the plain consistent broadcast is this one with the certificate ignored.
public enum ConsistentBroadcast {
    /// The domain tag of c-ready signatures.
    public static let readyDomain = "c-ready"

    public enum Message: WireMessage {
        /// The sender's payload.
        case send(payload: [UInt8])
        /// A receiver's signature on the digest, to the sender only.
        case ready(digest: [UInt8], signature: [UInt8])
        /// The sender's certificate: e c-ready signatures on the digest.
        case final(digest: [UInt8], certificate: QuorumCertificate)
        /// Asks for the payload of a certified digest.
        case request
        /// The payload with its certificate.
        case answer(payload: [UInt8], certificate: QuorumCertificate)

        public func encode(into writer: inout ByteWriter) {
            switch self {
            case .send(let payload):
                writer.write(UInt8(0))
                writer.writeVariable(payload)
            case .ready(let digest, let signature):
                writer.write(UInt8(1))
                writer.writeFixed(digest)
                writer.writeFixed(signature)
            case .final(let digest, let certificate):
                writer.write(UInt8(2))
                writer.writeFixed(digest)
                writer.writeFixed(certificate.encoded)
            case .request:
                writer.write(UInt8(3))
            case .answer(let payload, let certificate):
                writer.write(UInt8(4))
                writer.writeVariable(payload)
                writer.writeFixed(certificate.encoded)
            }
        }

        public init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            switch try reader.readTag(below: 5) {
            case 0:
                self = .send(payload: try reader.readVariable(maximum: limits.payloadBytesMax))
            case 1:
                self = .ready(digest: try reader.readDigest(), signature: try reader.readFixed(64))
            case 2:
                self = .final(digest: try reader.readDigest(), certificate: try reader.readCertificate(limits: limits))
            case 3:
                self = .request
            default:
                self = .answer(
                    payload: try reader.readVariable(maximum: limits.payloadBytesMax),
                    certificate: try reader.readCertificate(limits: limits))
            }
        }
    }

    /// What a party delivers: the payload and the certificate that proves it to anyone.
    public struct Delivery: Sendable, Equatable {
        public let payload: [UInt8]
        public let certificate: QuorumCertificate
    }

    static func digest(_ payload: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: payload)) }

    static func statement(path: InstancePath, digest: [UInt8]) -> SignedStatement {
        SignedStatement(domain: readyDomain, path: path.description, payloadDigest: digest)
    }

    /// Third-party verification: whether `certificate` proves that the broadcast at `path` delivers `payload`.
    public static func verify(
        payload: [UInt8], certificate: QuorumCertificate, path: InstancePath, configuration: GroupConfiguration
    ) -> Bool {
        let statement = statement(path: path, digest: digest(payload))
        return (try? certificate.verify(
            statement, members: configuration.memberKeys, threshold: configuration.echoQuorum)) != nil
    }

    /// One consistent-broadcast instance at one party.
    public struct Instance: ProtocolInstance {
        public typealias Output = Delivery

        public let path: InstancePath
        public let configuration: GroupConfiguration
        public let sender: Int
        public let me: Int
        private let identity: NodeIdentity
        /// The external predicate: a receiver signs only payloads it accepts (CKPS01 step 2, optional).
        private let accepts: @Sendable ([UInt8]) -> Bool

        /// The payload received in c-send.
        private var payload: [UInt8]?
        private var signedDigest: [UInt8]?
        /// This party's c-ready signature on `signedDigest`. Ed25519 signing is deterministic (RFC 8032
        /// §5.1.6), so this is the only signature of ours on that statement: one equal to it inside a
        /// certificate, or coming back in our own c-ready at the sender, needs no verification.
        private var ownSignature: [UInt8]?

        /// Whether this party signed (echoed) exactly `payload`, which it does only for a payload the
        /// external predicate accepted: a caller that checks the same predicate again may skip it (checking
        /// an atomic broadcast vector means hashing every queue and verifying its signatures).
        public func signed(_ payload: [UInt8]) -> Bool {
            signedDigest != nil && self.payload.map { sameBytes($0, payload) } == true
        }
        private var delivered: Delivery?
        /// A valid c-final whose payload we lack, kept until a c-answer arrives.
        private var pendingFinal: (digest: [UInt8], certificate: QuorumCertificate)?
        private var requested = false
        private var answered: Set<Int> = []
        /// At the sender: the certificate being built.
        private var builder: QuorumCertificate.Builder?
        /// At the sender: the payload it broadcast, whose digest is the builder's statement's.
        private var broadcastPayload: [UInt8]?
        private var sentFinal = false

        public init(
            configuration: GroupConfiguration, keys: LocalKeys, path: InstancePath, sender: Int,
            accepts: @escaping @Sendable ([UInt8]) -> Bool = { _ in true }
        ) {
            precondition(configuration.isMember(sender))
            self.configuration = configuration
            self.identity = keys.identity
            self.me = keys.index
            self.path = path
            self.sender = sender
            self.accepts = accepts
        }

        public var isFinished: Bool { delivered != nil }

        public var output: Delivery? { delivered }

        /// Starts the broadcast (sender only, once).
        public mutating func broadcast(_ payload: [UInt8]) -> Effects<Message, Output> {
            precondition(me == sender && builder == nil, "only the sender broadcasts, once")
            builder = QuorumCertificate.Builder(
                statement: ConsistentBroadcast.statement(path: path, digest: ConsistentBroadcast.digest(payload)),
                members: configuration.memberKeys, threshold: configuration.echoQuorum)
            broadcastPayload = payload
            var effects = Effects<Message, Output>()
            effects.broadcast(.send(payload: payload))
            return effects
        }

        public mutating func handle(_ message: Message, from node: Int) -> Effects<Message, Output> {
            var effects = Effects<Message, Output>()
            guard configuration.isMember(node) else { return effects }
            switch message {
            case .send(let payload):
                handleSend(payload, from: node, &effects)
            case .ready(let digest, let signature):
                handleReady(digest: digest, signature: signature, from: node, &effects)
            case .final(let digest, let certificate):
                handleFinal(digest: digest, certificate: certificate, from: node, &effects)
            case .request:
                if let delivered, node != me, answered.insert(node).inserted {
                    effects.send(.answer(payload: delivered.payload, certificate: delivered.certificate), to: .node(node))
                }
            case .answer(let payload, let certificate):
                guard delivered == nil else { break }
                if ConsistentBroadcast.verify(
                    payload: payload, certificate: certificate, path: path, configuration: configuration)
                {
                    deliver(Delivery(payload: payload, certificate: certificate), &effects)
                } else {
                    effects.fault(node, path, .invalidProof, "c-answer whose certificate does not prove its payload")
                }
            }
            return effects
        }

        private mutating func handleSend(_ payload: [UInt8], from node: Int, _ effects: inout Effects<Message, Output>) {
            guard node == sender else {
                effects.fault(node, path, .notAllowed, "c-send from a party that is not the sender")
                return
            }
            // The sender hashed its own payload in `broadcast`; its c-send coming back carries the same bytes.
            let digest =
                if me == sender, let builder, let broadcastPayload, sameBytes(payload, broadcastPayload) {
                    builder.statement.payloadDigest
                } else {
                    ConsistentBroadcast.digest(payload)
                }
            if let signedDigest {
                if signedDigest != digest { effects.fault(node, path, .equivocation, "second, different c-send") }
                return
            }
            guard accepts(payload) else {
                effects.fault(node, path, .malformed, "payload fails the external predicate")
                return
            }
            // Never sign a second digest for this path (CKPS01 step 2).
            self.payload = payload
            signedDigest = digest
            let signature = identity.sign(ConsistentBroadcast.statement(path: path, digest: digest))
            ownSignature = signature
            effects.send(.ready(digest: digest, signature: signature), to: .node(sender))
            if let pendingFinal, pendingFinal.digest == digest {
                deliver(Delivery(payload: payload, certificate: pendingFinal.certificate), &effects)
            }
        }

        private mutating func handleReady(
            digest: [UInt8], signature: [UInt8], from node: Int, _ effects: inout Effects<Message, Output>
        ) {
            guard me == sender, var builder else {
                effects.fault(node, path, .notAllowed, "c-ready to a party that is not the sender")
                return
            }
            guard digest == builder.statement.payloadDigest else {
                effects.fault(node, path, .equivocation, "c-ready for a digest the sender did not send")
                return
            }
            // CKPS01 step 3 asks for e valid c-readies. Our own needs no check; the others are checked as one
            // batch once there are enough of them (`QuorumCertificate.Builder.collect`), and a batch with a
            // forged signature names its signer, who is faulted and dropped while the sender waits for more.
            let rejections =
                if node == me, signature == ownSignature, digest == signedDigest {
                    builder.addVerified(member: node, signature: signature)
                } else {
                    builder.collect(member: node, signature: signature)
                }
            for rejection in rejections {
                let culprit: Int
                switch rejection {
                case .invalidSignature(let member): culprit = member
                default: culprit = node
                }
                effects.fault(culprit, path, .invalidProof, "c-ready signature: \(rejection)")
            }
            self.builder = builder
            if !sentFinal, let certificate = builder.certificate() {
                sentFinal = true
                effects.broadcast(.final(digest: digest, certificate: certificate))
                // The sender delivers at once, so it can answer requests even before its own c-final loops back.
                if delivered == nil, let payload {
                    deliver(Delivery(payload: payload, certificate: certificate), &effects)
                }
            }
        }

        private mutating func handleFinal(
            digest: [UInt8], certificate: QuorumCertificate, from node: Int, _ effects: inout Effects<Message, Output>
        ) {
            guard delivered == nil, pendingFinal == nil else { return }
            guard node == sender else {
                effects.fault(node, path, .notAllowed, "c-final from a party that is not the sender")
                return
            }
            let statement = ConsistentBroadcast.statement(path: path, digest: digest)
            // Our own signature in the certificate is skipped when its bytes are the ones we made (see
            // `ownSignature`); every other signature is checked, and the structural rules cover all of them.
            let own = digest == signedDigest ? ownSignature : nil
            do {
                try certificate.verify(
                    statement, members: configuration.memberKeys, threshold: configuration.echoQuorum,
                    alreadyVerified: { [me] in $0.member == me && $0.bytes == own })
            } catch {
                effects.fault(node, path, .invalidProof, "c-final certificate: \(error)")
                return
            }
            // `payload` is set together with `signedDigest`, its digest, in c-send: compare digests rather
            // than hashing the payload a second time.
            if let payload, signedDigest == digest {
                deliver(Delivery(payload: payload, certificate: certificate), &effects)
            } else {
                // The digest is certified but we lack its payload: e signers include t + 1 honest ones
                // that hold it, and the sender holds it; ask the sender (CKPS01 step 4), and keep the
                // certificate in case the c-send is only late.
                pendingFinal = (digest, certificate)
                if !requested {
                    requested = true
                    effects.send(.request, to: .node(node))
                }
            }
        }

        private mutating func deliver(_ delivery: Delivery, _ effects: inout Effects<Message, Output>) {
            precondition(delivered == nil, "deliver at most once")
            delivered = delivery
            pendingFinal = nil
            effects.output(delivery)
        }
    }
}
