import Crypto
import SintraCrypto

/// Reliable broadcast of Bracha ("Asynchronous Byzantine agreement protocols", Inf. Comput. 75(2), 1987,
/// Fig. 1, the broadcast primitive), in the hashed variant of Cachin–Kursawe–Petzold–Shoup (Crypto 2001):
/// echoes and readies carry H(m) rather than m, and a party that learns the digest without the payload
/// fetches it with r-request/r-answer.
///
/// Guarantees for sender j and path P: validity (an honest sender's payload is delivered by every honest
/// party), agreement/totality (if one honest party delivers m, every honest party delivers m), integrity
/// (at most once, and only what j sent). No signatures.
///
/// Thresholds:
/// - ready after e = ⌈(n + t + 1)/2⌉ echoes for d: two digests cannot both collect e echoes, because two
///   e-sets share an honest party, and honest parties echo once;
/// - ready after t + 1 readies (amplification): one of them is honest, so d is the only digest that can
///   be delivered; this makes every honest party send ready once any honest one did;
/// - deliver after 2t + 1 readies: t + 1 of them are honest, so every honest party eventually sees t + 1
///   readies, amplifies, and collects 2t + 1 itself.
public enum ReliableBroadcast {
    public enum Message: WireMessage {
        /// The sender's payload (r-send).
        case send(payload: [UInt8])
        /// r-echo: the digest of the payload received from the sender.
        case echo(digest: [UInt8])
        /// r-ready.
        case ready(digest: [UInt8])
        /// Asks a party that echoed the delivered digest for the payload.
        case request
        /// The payload, in answer to a request.
        case answer(payload: [UInt8])

        public func encode(into writer: inout ByteWriter) {
            switch self {
            case .send(let payload):
                writer.write(UInt8(0))
                writer.writeVariable(payload)
            case .echo(let digest):
                writer.write(UInt8(1))
                writer.writeFixed(digest)
            case .ready(let digest):
                writer.write(UInt8(2))
                writer.writeFixed(digest)
            case .request:
                writer.write(UInt8(3))
            case .answer(let payload):
                writer.write(UInt8(4))
                writer.writeVariable(payload)
            }
        }

        public init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            switch try reader.readTag(below: 5) {
            case 0: self = .send(payload: try reader.readVariable(maximum: limits.payloadBytesMax))
            case 1: self = .echo(digest: try reader.readDigest())
            case 2: self = .ready(digest: try reader.readDigest())
            case 3: self = .request
            default: self = .answer(payload: try reader.readVariable(maximum: limits.payloadBytesMax))
            }
        }
    }

    static func digest(_ payload: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: payload))
    }

    /// One broadcast instance at one party.
    public struct Instance: ProtocolInstance {
        public typealias Output = [UInt8]

        public let path: InstancePath
        public let configuration: GroupConfiguration
        /// The broadcasting party.
        public let sender: Int
        /// This party.
        public let me: Int

        /// The payload received in r-send (or an r-answer), if any.
        private var payload: [UInt8]?
        private var sentEcho = false
        private var sentReady = false
        private var delivered: [UInt8]?
        /// First echo and first ready of every party (later different ones are equivocation).
        private var echoes: [Int: [UInt8]] = [:]
        private var readies: [Int: [UInt8]] = [:]
        /// Whether we asked for the payload; who asked us before we had it; whom we answered (once each).
        private var requested = false
        private var pendingRequests: Set<Int> = []
        private var answered: Set<Int> = []

        public init(configuration: GroupConfiguration, path: InstancePath, sender: Int, me: Int) {
            precondition(configuration.isMember(sender) && configuration.isMember(me))
            self.configuration = configuration
            self.path = path
            self.sender = sender
            self.me = me
        }

        public var isFinished: Bool { delivered != nil && sentReady }

        /// The delivered payload, once delivered.
        public var output: [UInt8]? { delivered }

        /// Starts the broadcast; only the sender may call this, once.
        public mutating func broadcast(_ payload: [UInt8]) -> Effects<Message, Output> {
            precondition(me == sender, "only the sender broadcasts")
            var effects = Effects<Message, Output>()
            effects.broadcast(.send(payload: payload))
            return effects
        }

        public mutating func handle(_ message: Message, from node: Int) -> Effects<Message, Output> {
            var effects = Effects<Message, Output>()
            guard configuration.isMember(node) else { return effects }
            switch message {
            case .send(let payload):
                guard node == sender else {
                    effects.fault(node, path, .notAllowed, "r-send from a party that is not the sender")
                    return effects
                }
                guard self.payload == nil else {
                    if ReliableBroadcast.digest(payload) != ReliableBroadcast.digest(self.payload!) {
                        effects.fault(node, path, .equivocation, "second, different r-send")
                    }
                    return effects
                }
                self.payload = payload
                answerPendingRequests(&effects)
                if !sentEcho {
                    sentEcho = true
                    effects.broadcast(.echo(digest: ReliableBroadcast.digest(payload)))
                }
            case .echo(let digest):
                guard record(digest, from: node, in: &echoes, kind: "r-echo", effects: &effects) else { return effects }
            case .ready(let digest):
                guard record(digest, from: node, in: &readies, kind: "r-ready", effects: &effects) else {
                    return effects
                }
            case .request:
                // Answer with the payload we hold (the requester checks its digest), or as soon as we get it.
                if node == me || answered.contains(node) { return effects }
                if let payload {
                    answered.insert(node)
                    effects.send(.answer(payload: payload), to: .node(node))
                } else {
                    pendingRequests.insert(node)
                }
                return effects
            case .answer(let payload):
                // Accept an answer only for the digest we are about to deliver; anything else is ignored.
                if delivered == nil, payload != self.payload, let target = deliverableDigest(),
                    ReliableBroadcast.digest(payload) == target
                {
                    self.payload = payload
                    answerPendingRequests(&effects)
                }
            }
            advance(&effects)
            return effects
        }

        private mutating func answerPendingRequests(_ effects: inout Effects<Message, Output>) {
            guard let payload else { return }
            for node in pendingRequests.sorted() where answered.insert(node).inserted {
                effects.send(.answer(payload: payload), to: .node(node))
            }
            pendingRequests.removeAll()
        }

        /// Records the first message of a kind from a party; reports a different second one.
        private func record(
            _ digest: [UInt8], from node: Int, in table: inout [Int: [UInt8]], kind: String,
            effects: inout Effects<Message, Output>
        ) -> Bool {
            if let previous = table[node] {
                if previous != digest { effects.fault(node, path, .equivocation, "second, different \(kind)") }
                return false
            }
            table[node] = digest
            return true
        }

        private static func count(_ digest: [UInt8], in table: [Int: [UInt8]]) -> Int {
            table.values.reduce(0) { $0 + ($1 == digest ? 1 : 0) }
        }

        /// The digest with 2t + 1 readies, if any (at most one can have that many honest-backed readies).
        private func deliverableDigest() -> [UInt8]? {
            candidateDigests(readies).first { Instance.count($0, in: readies) >= 2 * configuration.faulty + 1 }
        }

        /// Distinct digests in a table, in a deterministic order.
        private func candidateDigests(_ table: [Int: [UInt8]]) -> [[UInt8]] {
            var seen = Set<[UInt8]>()
            var result = [[UInt8]]()
            for node in table.keys.sorted() where seen.insert(table[node]!).inserted {
                result.append(table[node]!)
            }
            return result
        }

        private mutating func advance(_ effects: inout Effects<Message, Output>) {
            if !sentReady {
                let echoed = candidateDigests(echoes).first {
                    Instance.count($0, in: echoes) >= configuration.echoQuorum
                }
                let amplified = candidateDigests(readies).first {
                    Instance.count($0, in: readies) >= configuration.weakQuorum
                }
                if let digest = echoed ?? amplified {
                    sentReady = true
                    effects.broadcast(.ready(digest: digest))
                }
            }
            guard delivered == nil, let target = deliverableDigest() else { return }
            if let payload, ReliableBroadcast.digest(payload) == target {
                delivered = payload
                effects.output(payload)
            } else if !requested {
                // 2t + 1 readies mean some ready came from e echoes, so at least t + 1 honest parties got
                // the payload from the sender; they answer now or once they have it.
                requested = true
                effects.broadcast(.request)
            }
        }
    }
}
