import SintraCrypto

extension BinaryAgreement {
    /// Why a pre-vote for b in round r is allowed (PROTOCOLS.md §5, "properly justified").
    public enum PreVoteJustification: Sendable, Equatable {
        /// Round 1: QC_{t+1}("pre-process", b), t + 1 signed pre-processes for b.
        case preProcessed(QuorumCertificate)
        /// Hard pre-vote, round r > 1: QC_q("pre-vote", r − 1, b), the justification of a round-(r − 1)
        /// main-vote for b.
        case hard(QuorumCertificate)
        /// Soft pre-vote, round r > 1: QC_q("main-vote", r − 1, abstain); b must equal coin(r − 1).
        case soft(QuorumCertificate)
    }

    /// A main-vote with its justification.
    public enum MainVote: Sendable, Equatable {
        /// b, justified by QC_q("pre-vote", r, b).
        case value(Bool, certificate: QuorumCertificate)
        /// abstain, justified by a valid round-r pre-vote justification for each value.
        case abstain(forFalse: PreVoteJustification, forTrue: PreVoteJustification)

        /// The value voted for; `nil` for abstain.
        public var value: Bool? {
            if case .value(let value, _) = self { return value }
            return nil
        }
    }

    /// The messages of one agreement instance. Votes carry the sender's Ed25519 signature over a
    /// `SignedStatement` binding the domain, the instance path, the round and the value
    /// (`BinaryAgreement.preVoteStatement` and friends).
    ///
    /// Wire format: one tag byte, rounds as 4-byte big-endian integers (at least 1), values as one byte (0, 1,
    /// and 2 for abstain), signatures as 64 raw bytes, certificates as `QuorumCertificate.encoded` (sorted,
    /// distinct signers), coin shares as `ThresholdCoin.Share.encoded`.
    public enum Message: WireMessage {
        /// Step 0: this party's input b.
        case preProcess(value: Bool, signature: [UInt8])
        /// Step 1: pre-vote b in `round`.
        case preVote(round: Int, value: Bool, justification: PreVoteJustification, signature: [UInt8])
        /// Step 2: main-vote in `round`.
        case mainVote(round: Int, vote: MainVote, signature: [UInt8])
        /// The sender's share of coin(`round`), released after step 3 of that round.
        case coinShare(round: Int, share: ThresholdCoin.Share)
        /// Sintra termination: b was decided in `round`; the certificate is QC_q("main-vote", round, b).
        case decided(round: Int, value: Bool, certificate: QuorumCertificate)

        /// The round a round-bound message belongs to; `nil` for pre-process and decided.
        public var round: Int? {
            switch self {
            case .preVote(let round, _, _, _), .mainVote(let round, _, _), .coinShare(let round, _): return round
            case .preProcess, .decided: return nil
            }
        }

        public func encode(into writer: inout ByteWriter) {
            switch self {
            case .preProcess(let value, let signature):
                writer.write(UInt8(0))
                writer.write(BinaryAgreement.voteByte(value))
                writer.writeFixed(signature)
            case .preVote(let round, let value, let justification, let signature):
                writer.write(UInt8(1))
                Message.writeRound(round, into: &writer)
                writer.write(BinaryAgreement.voteByte(value))
                justification.encode(into: &writer)
                writer.writeFixed(signature)
            case .mainVote(let round, let vote, let signature):
                writer.write(UInt8(2))
                Message.writeRound(round, into: &writer)
                vote.encode(into: &writer)
                writer.writeFixed(signature)
            case .coinShare(let round, let share):
                writer.write(UInt8(3))
                Message.writeRound(round, into: &writer)
                writer.writeFixed(share.encoded)
            case .decided(let round, let value, let certificate):
                writer.write(UInt8(4))
                Message.writeRound(round, into: &writer)
                writer.write(BinaryAgreement.voteByte(value))
                writer.writeFixed(certificate.encoded)
            }
        }

        public init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            switch try reader.readTag(below: 5) {
            case 0:
                let value = try reader.readAgreementValue()
                self = .preProcess(value: value, signature: try reader.readAgreementSignature())
            case 1:
                let round = try reader.readAgreementRound()
                let value = try reader.readAgreementValue()
                let justification = try PreVoteJustification(from: &reader, limits: limits)
                self = .preVote(
                    round: round, value: value, justification: justification,
                    signature: try reader.readAgreementSignature())
            case 2:
                let round = try reader.readAgreementRound()
                let vote = try MainVote(from: &reader, limits: limits)
                self = .mainVote(round: round, vote: vote, signature: try reader.readAgreementSignature())
            case 3:
                let round = try reader.readAgreementRound()
                let share = try ThresholdCoin.Share(encoded: try reader.readFixed(ThresholdCoin.Share.encodedLength))
                self = .coinShare(round: round, share: share)
            default:
                let round = try reader.readAgreementRound()
                let value = try reader.readAgreementValue()
                self = .decided(round: round, value: value, certificate: try reader.readCertificate(limits: limits))
            }
        }

        private static func writeRound(_ round: Int, into writer: inout ByteWriter) {
            precondition(round >= 1 && round <= Int(UInt32.max), "round \(round) cannot be encoded")
            writer.write(UInt32(round))
        }
    }
}

extension BinaryAgreement.PreVoteJustification {
    func encode(into writer: inout ByteWriter) {
        switch self {
        case .preProcessed(let certificate):
            writer.write(UInt8(0))
            writer.writeFixed(certificate.encoded)
        case .hard(let certificate):
            writer.write(UInt8(1))
            writer.writeFixed(certificate.encoded)
        case .soft(let certificate):
            writer.write(UInt8(2))
            writer.writeFixed(certificate.encoded)
        }
    }

    init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
        switch try reader.readTag(below: 3) {
        case 0: self = .preProcessed(try reader.readCertificate(limits: limits))
        case 1: self = .hard(try reader.readCertificate(limits: limits))
        default: self = .soft(try reader.readCertificate(limits: limits))
        }
    }
}

extension BinaryAgreement.MainVote {
    func encode(into writer: inout ByteWriter) {
        switch self {
        case .value(let value, let certificate):
            writer.write(BinaryAgreement.voteByte(value))
            writer.writeFixed(certificate.encoded)
        case .abstain(let forFalse, let forTrue):
            writer.write(BinaryAgreement.voteByte(nil))
            forFalse.encode(into: &writer)
            forTrue.encode(into: &writer)
        }
    }

    init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
        switch try reader.readTag(below: 3) {
        case 0: self = .value(false, certificate: try reader.readCertificate(limits: limits))
        case 1: self = .value(true, certificate: try reader.readCertificate(limits: limits))
        default:
            let forFalse = try BinaryAgreement.PreVoteJustification(from: &reader, limits: limits)
            self = .abstain(
                forFalse: forFalse, forTrue: try BinaryAgreement.PreVoteJustification(from: &reader, limits: limits))
        }
    }
}

extension ByteReader {
    /// A round number: 4 bytes, at least 1.
    fileprivate mutating func readAgreementRound() throws(DecodingError) -> Int {
        let round = Int(try readUInt32())
        guard round >= 1 else { throw DecodingError(.invalidValue("round 0"), in: context) }
        return round
    }

    /// A binary value: one byte, 0 or 1.
    fileprivate mutating func readAgreementValue() throws(DecodingError) -> Bool {
        switch try readUInt8() {
        case 0: return false
        case 1: return true
        case let other: throw DecodingError(.invalidValue("binary value \(other)"), in: context)
        }
    }

    fileprivate mutating func readAgreementSignature() throws(DecodingError) -> [UInt8] {
        try readFixed(QuorumCertificate.signatureBytes)
    }
}
