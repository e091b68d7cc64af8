import SintraCrypto

extension AtomicBroadcast {
    /// One input that changed what a party may send in a round, in the order the party applied it
    /// (docs/DURABILITY.md, stage 2: persist before send by replay).
    ///
    /// A party's messages of a round follow from its queue, the peers' queues it accepted, what it proposed
    /// and the agreement messages it handled, in that order, and from its generator for the round
    /// (`ProtocolRandom.derive`). A party that journals these entries, and commits them before it sends the
    /// messages that followed from them, can rebuild the same instances after a crash
    /// (`Instance.Resumption.journal`) and send the same messages again, byte for byte, instead of staying
    /// silent in the rounds it was in. Catch-up requests and answers bind nothing and are not journaled.
    public enum JournalEntry: Sendable, Equatable {
        /// This party's signed queue of `round`, as it broadcast it.
        case sentQueue(round: UInt64, SignedQueue)
        /// A peer's valid queue of `round`, accepted (the first one per peer and round).
        case receivedQueue(round: UInt64, from: Int, SignedQueue)
        /// A validated-agreement message of `round` from `from`, handed to that round's agreement.
        case agreementMessage(round: UInt64, from: Int, ValidatedAgreement.Message)
        /// This party's proposal (an encoded vector of queues) to the agreement of `round`.
        case proposal(round: UInt64, value: [UInt8])
        /// This party's fast-path proposal of `round`, as its leader (`FastPath.swift`).
        case fastProposal(round: UInt64, vector: [UInt8])
        /// This party's fast-path vote of `round`.
        case fastVote(round: UInt64, digest: [UInt8])
        /// This party's lock of `round` (it committed), with the locked vector: its stop must report both.
        case fastLock(round: UInt64, lock: FastLock, vector: [UInt8])
        /// This party left the fast path of `round`.
        case fastStop(round: UInt64)

        /// The round the entry concerns: a journal keeps the entries of the rounds an instance may still use.
        public var round: UInt64 {
            switch self {
            case .sentQueue(let round, _), .receivedQueue(let round, _, _), .agreementMessage(let round, _, _),
                .proposal(let round, _), .fastProposal(let round, _), .fastVote(let round, _), .fastLock(let round, _, _),
                .fastStop(let round):
                round
            }
        }

        /// Canonical encoding: a tag, the member (0 for this party's own entries), then the entry as an
        /// `AtomicBroadcast.Message` (queues and agreement messages) or the round and the proposed value.
        public var encoded: [UInt8] {
            var writer = ByteWriter()
            switch self {
            case .sentQueue(let round, let queue):
                writer.write(UInt8(0))
                writer.write(UInt16(0))
                Message.queue(round: round, queue).encode(into: &writer)
            case .receivedQueue(let round, let from, let queue):
                writer.write(UInt8(1))
                writer.write(UInt16(from))
                Message.queue(round: round, queue).encode(into: &writer)
            case .agreementMessage(let round, let from, let message):
                writer.write(UInt8(2))
                writer.write(UInt16(from))
                Message.agreement(round: round, message).encode(into: &writer)
            case .proposal(let round, let value):
                writer.write(UInt8(3))
                writer.write(UInt16(0))
                writer.write(round)
                writer.writeVariable(value)
            case .fastProposal(let round, let vector):
                writer.write(UInt8(4))
                writer.write(UInt16(0))
                writer.write(round)
                writer.writeVariable(vector)
            case .fastVote(let round, let digest):
                writer.write(UInt8(5))
                writer.write(UInt16(0))
                writer.write(round)
                writer.writeFixed(digest)
            case .fastLock(let round, let lock, let vector):
                writer.write(UInt8(6))
                writer.write(UInt16(0))
                writer.write(round)
                lock.encode(into: &writer)
                writer.writeVariable(vector)
            case .fastStop(let round):
                writer.write(UInt8(7))
                writer.write(UInt16(0))
                writer.write(round)
            }
            return writer.bytes
        }

        /// Decodes an entry written by `encoded`; `limits` as for the instance's frames.
        public init(encoded bytes: [UInt8], limits: WireLimits) throws(DecodingError) {
            var reader = ByteReader(bytes, context: "a-journal")
            let tag = try reader.readTag(below: 8)
            let from = Int(try reader.readUInt16())
            guard tag == 1 || tag == 2 ? (1...limits.memberCount).contains(from) : from == 0 else {
                throw DecodingError(.invalidValue("journal entry member \(from)"), in: "a-journal")
            }
            switch tag {
            case 3:
                let round = try reader.readUInt64()
                self = .proposal(round: round, value: try reader.readVariable(maximum: limits.payloadBytesMax))
            case 4:
                let round = try reader.readUInt64()
                self = .fastProposal(round: round, vector: try reader.readVariable(maximum: limits.payloadBytesMax))
            case 5:
                let round = try reader.readUInt64()
                self = .fastVote(round: round, digest: try reader.readFixed(32))
            case 6:
                let round = try reader.readUInt64()
                let lock = try FastLock(from: &reader, limits: limits)
                self = .fastLock(round: round, lock: lock, vector: try reader.readVariable(maximum: limits.payloadBytesMax))
            case 7:
                self = .fastStop(round: try reader.readUInt64())
            default:
                switch try Message(from: &reader, limits: limits) {
                case .queue(let round, let queue) where tag == 0: self = .sentQueue(round: round, queue)
                case .queue(let round, let queue) where tag == 1: self = .receivedQueue(round: round, from: from, queue)
                case .agreement(let round, let message) where tag == 2:
                    self = .agreementMessage(round: round, from: from, message)
                default: throw DecodingError(.invalidValue("journal entry of tag \(tag)"), in: "a-journal")
                }
            }
            try reader.finish()
        }
    }
}
