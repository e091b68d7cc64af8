import SintraCrypto

extension BinaryAgreement {
    /// The outcome of checking a justification.
    enum Verdict: Equatable {
        case valid
        case invalid(Fault.Kind, String)
    }
}

extension BinaryAgreement.Instance {
    /// "Properly justified" (PROTOCOLS.md §5), for a pre-vote for `value` in `round` (the current round):
    /// - round 1: QC_{t+1}("pre-process", b): t + 1 pre-processes, so one honest party proposed b;
    /// - hard, round r > 1: QC_q("pre-vote", r − 1, b): the certificate of a round-(r − 1) main-vote for b;
    /// - soft, round r > 1: QC_q("main-vote", r − 1, abstain) and b = coin(r − 1).
    ///
    /// A soft justification may be checked only once coin(r − 1) is known (`awaitsCoin` is false).
    mutating func check(
        _ justification: BinaryAgreement.PreVoteJustification, round: Int, value: Bool
    ) -> BinaryAgreement.Verdict {
        switch justification {
        case .preProcessed(let certificate):
            guard round == 1 else { return .invalid(.unjustified, "pre-process certificate outside round 1") }
            let statement = BinaryAgreement.preProcessStatement(path: path, value: value)
            return verify(certificate, statement, threshold: configuration.weakQuorum, "pre-process certificate")
        case .hard(let certificate):
            guard round > 1 else { return .invalid(.unjustified, "hard pre-vote in round 1") }
            let statement = BinaryAgreement.preVoteStatement(path: path, round: round - 1, value: value)
            return verify(certificate, statement, threshold: configuration.quorum, "hard pre-vote certificate")
        case .soft(let certificate):
            guard round > 1 else { return .invalid(.unjustified, "soft pre-vote in round 1") }
            guard let coin = coin(of: round - 1) else {
                preconditionFailure("a soft pre-vote is checked only once the coin of the round before is known")
            }
            guard coin == value else {
                return .invalid(.unjustified, "soft pre-vote for \(value), but coin(\(round - 1)) is \(coin)")
            }
            let statement = BinaryAgreement.mainVoteStatement(path: path, round: round - 1, value: nil)
            return verify(certificate, statement, threshold: configuration.quorum, "soft pre-vote certificate")
        }
    }

    /// "Properly justified" for a main-vote in `round` (the current round): b needs QC_q("pre-vote", r, b);
    /// abstain needs a valid round-r pre-vote justification for each value, showing that both could be
    /// pre-voted.
    mutating func check(_ vote: BinaryAgreement.MainVote, round: Int) -> BinaryAgreement.Verdict {
        switch vote {
        case .value(let value, let certificate):
            let statement = BinaryAgreement.preVoteStatement(path: path, round: round, value: value)
            return verify(certificate, statement, threshold: configuration.quorum, "main-vote certificate")
        case .abstain(let forFalse, let forTrue):
            if case .invalid(let kind, let detail) = check(forFalse, round: round, value: false) {
                return .invalid(kind, "abstain justification for false: \(detail)")
            }
            if case .invalid(let kind, let detail) = check(forTrue, round: round, value: true) {
                return .invalid(kind, "abstain justification for true: \(detail)")
            }
            return .valid
        }
    }

    /// True for a soft justification of the current round while coin(round − 1) is still unknown: such a vote
    /// waits in the buffer (it cannot be judged yet, and every honest party releases its share, so the coin
    /// comes).
    func awaitsCoin(_ justification: BinaryAgreement.PreVoteJustification) -> Bool {
        guard case .soft = justification, round > 1 else { return false }
        return coin(of: round - 1) == nil
    }

    /// coin(r) for r = round − 1 or round, if known.
    func coin(of coinRound: Int) -> Bool? {
        coinRound == round ? currentCoin : (coinRound == round - 1 ? previousCoin : nil)
    }

    /// Verifies a certificate with the rules of `QuorumCertificate.verify` (PROTOCOLS.md §0): at most n
    /// signatures, members in 1…n and strictly increasing (so no signer counts twice), at least `threshold` of
    /// them, and every signature valid under its member's key. Signatures found in `verifiedSignatures` are not
    /// verified again: every vote's signature reappears in the certificates other parties build from it.
    private mutating func verify(
        _ certificate: QuorumCertificate, _ statement: SignedStatement, threshold: Int, _ what: String
    ) -> BinaryAgreement.Verdict {
        let signatures = certificate.signatures
        guard signatures.count <= configuration.replicas else {
            let detail = "\(signatures.count) signatures from \(configuration.replicas) members"
            return .invalid(.unjustified, "\(what): \(detail)")
        }
        var previous = 0
        for signature in signatures {
            guard configuration.isMember(signature.member) else {
                return .invalid(.unjustified, "\(what): member \(signature.member) out of range")
            }
            guard signature.member > previous else {
                return .invalid(.unjustified, "\(what): member \(signature.member) twice or out of order")
            }
            previous = signature.member
        }
        guard signatures.count >= threshold else {
            return .invalid(.unjustified, "\(what): \(signatures.count) signers, \(threshold) required")
        }
        for signature in signatures where !isValidSignature(signature.bytes, by: signature.member, on: statement) {
            return .invalid(.unjustified, "\(what): signature of member \(signature.member) does not verify")
        }
        return .valid
    }

    /// Checks member `member`'s Ed25519 signature (strict RFC 8032) on `statement`, once per (statement,
    /// member, signature).
    mutating func isValidSignature(_ signature: [UInt8], by member: Int, on statement: SignedStatement) -> Bool {
        if verifiedSignatures.contains(signature, by: member, on: statement) { return true }
        guard configuration.memberKeys[member - 1].isValidSignature(signature, for: statement.signingBytes) else {
            return false
        }
        verifiedSignatures.insert(signature, by: member, on: statement)
        return true
    }
}

extension BinaryAgreement {
    /// Ed25519 signatures this party has verified or made itself (`Instance.sign`), so that a signature copied
    /// into many certificates is verified once, and this party's own never. Keyed by (statement, member),
    /// keeping the first valid signature of each key: a Byzantine member's second valid signature on one
    /// statement is simply verified again. Two generations, this
    /// round's and the previous round's, so it holds at most about 10 n entries per generation (the ≤ 10
    /// statements one round checks: pre-process, pre-vote and main-vote values of this and the last round).
    struct SignatureCache: Sendable {
        private struct Key: Hashable, Sendable {
            let statement: SignedStatement
            let member: Int
        }

        private var current: [Key: [UInt8]] = [:]
        private var previous: [Key: [UInt8]] = [:]

        func contains(_ signature: [UInt8], by member: Int, on statement: SignedStatement) -> Bool {
            let key = Key(statement: statement, member: member)
            return current[key] == signature || previous[key] == signature
        }

        mutating func insert(_ signature: [UInt8], by member: Int, on statement: SignedStatement) {
            let key = Key(statement: statement, member: member)
            if current[key] == nil { current[key] = signature }
        }

        /// Starts a new round: the oldest generation goes.
        mutating func nextGeneration() {
            previous = current
            current = [:]
        }

        mutating func removeAll() {
            current = [:]
            previous = [:]
        }
    }
}

extension BinaryAgreement.MessageBuffer.Slot: CustomStringConvertible {
    var description: String {
        let kind = ["coin share", "pre-vote", "main-vote"][Int(self.kind)]
        return "round-\(round) \(kind) of party \(sender)"
    }
}
