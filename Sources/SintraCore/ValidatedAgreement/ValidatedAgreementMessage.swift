import SintraCrypto

extension ValidatedAgreement {
    /// A vote on candidate a in iteration l (CKPS01 "v-vote"): yes with the candidate's proposal and its
    /// VCBC certificate, or no with the voter's own committed bitmap (bit a clear) and its certificate.
    public enum Vote: Sendable, Equatable {
        case yes(proposal: [UInt8], certificate: QuorumCertificate)
        case no(bitmap: [UInt8], certificate: QuorumCertificate)
    }

    public enum Message: WireMessage {
        /// A message of the proposal broadcast of `sender` (path P/proposal:sender).
        case proposal(sender: Int, ConsistentBroadcast.Message)
        /// A message of the commit broadcast of `sender` (path P/commit:sender).
        case commit(sender: Int, ConsistentBroadcast.Message)
        /// A share of the permutation coin (name P/permutation).
        case coinShare(ThresholdCoin.Share)
        /// A vote in iteration `iteration` (1-based) on the candidate Π(iteration).
        case vote(iteration: Int, Vote)
        /// A message of the binary agreement of iteration `iteration` (path P/agreement:iteration).
        case agreement(iteration: Int, BinaryAgreement.Message)
        /// Asks for the certified proposal of `candidate` (after a decision for it).
        case fetch(candidate: Int)
        /// A certified proposal, in answer to fetch.
        case fetched(candidate: Int, proposal: [UInt8], certificate: QuorumCertificate)

        public func encode(into writer: inout ByteWriter) {
            switch self {
            case .proposal(let sender, let message):
                writer.write(UInt8(0))
                writer.write(UInt16(sender))
                message.encode(into: &writer)
            case .commit(let sender, let message):
                writer.write(UInt8(1))
                writer.write(UInt16(sender))
                message.encode(into: &writer)
            case .coinShare(let share):
                writer.write(UInt8(2))
                writer.writeFixed(share.encoded)
            case .vote(let iteration, let vote):
                writer.write(UInt8(3))
                writer.write(UInt16(iteration))
                switch vote {
                case .yes(let proposal, let certificate):
                    writer.write(UInt8(1))
                    writer.writeVariable(proposal)
                    writer.writeFixed(certificate.encoded)
                case .no(let bitmap, let certificate):
                    writer.write(UInt8(0))
                    writer.writeVariable(bitmap)
                    writer.writeFixed(certificate.encoded)
                }
            case .agreement(let iteration, let message):
                writer.write(UInt8(4))
                writer.write(UInt16(iteration))
                message.encode(into: &writer)
            case .fetch(let candidate):
                writer.write(UInt8(5))
                writer.write(UInt16(candidate))
            case .fetched(let candidate, let proposal, let certificate):
                writer.write(UInt8(6))
                writer.write(UInt16(candidate))
                writer.writeVariable(proposal)
                writer.writeFixed(certificate.encoded)
            }
        }

        public init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            let bitmapBytesMax = (limits.memberCount + 7) / 8
            switch try reader.readTag(below: 7) {
            case 0:
                let sender = try reader.readMember(limits: limits)
                self = .proposal(sender: sender, try ConsistentBroadcast.Message(from: &reader, limits: limits))
            case 1:
                let sender = try reader.readMember(limits: limits)
                self = .commit(sender: sender, try ConsistentBroadcast.Message(from: &reader, limits: limits))
            case 2:
                self = .coinShare(try ThresholdCoin.Share(encoded: try reader.readFixed(ThresholdCoin.Share.encodedLength)))
            case 3:
                let iteration = try reader.readMember(limits: limits)
                switch try reader.readTag(below: 2) {
                case 1:
                    let proposal = try reader.readVariable(maximum: limits.payloadBytesMax)
                    self = .vote(iteration: iteration, .yes(proposal: proposal, certificate: try reader.readCertificate(limits: limits)))
                default:
                    let bitmap = try reader.readVariable(maximum: bitmapBytesMax)
                    self = .vote(iteration: iteration, .no(bitmap: bitmap, certificate: try reader.readCertificate(limits: limits)))
                }
            case 4:
                let iteration = try reader.readMember(limits: limits)
                self = .agreement(iteration: iteration, try BinaryAgreement.Message(from: &reader, limits: limits))
            case 5:
                self = .fetch(candidate: try reader.readMember(limits: limits))
            default:
                let candidate = try reader.readMember(limits: limits)
                let proposal = try reader.readVariable(maximum: limits.payloadBytesMax)
                self = .fetched(candidate: candidate, proposal: proposal, certificate: try reader.readCertificate(limits: limits))
            }
        }
    }

    /// The set of candidates whose proposals a party delivered before committing, as n bits.
    struct Bitmap: Equatable {
        private(set) var bits: [Bool]

        init(count: Int) {
            bits = [Bool](repeating: false, count: count)
        }

        /// Decodes exactly ⌈n/8⌉ bytes with no bit set beyond n.
        init?(encoded bytes: [UInt8], count: Int) {
            guard bytes.count == (count + 7) / 8 else { return nil }
            bits = (0..<count).map { bytes[$0 / 8] >> UInt8($0 % 8) & 1 == 1 }
            guard encoded == bytes else { return nil }
        }

        var encoded: [UInt8] {
            var bytes = [UInt8](repeating: 0, count: (bits.count + 7) / 8)
            for (index, bit) in bits.enumerated() where bit {
                bytes[index / 8] |= 1 << UInt8(index % 8)
            }
            return bytes
        }

        /// Member `member` (1-based).
        subscript(member: Int) -> Bool {
            get { bits[member - 1] }
            set { bits[member - 1] = newValue }
        }

        var setCount: Int { bits.filter { $0 }.count }
    }
}
