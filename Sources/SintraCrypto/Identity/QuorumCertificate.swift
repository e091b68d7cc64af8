import Crypto

/// What a quorum certificate certifies: a protocol's domain tag, the full instance path, and the digest
/// of the payload. Every signature covers all three, so a signature made in one instance or epoch can
/// never count in another (DESIGN.md, "One curve for everything").
public struct SignedStatement: Sendable, Hashable {
    public static let pathBytesMax = 1024
    public static let domainBytesMax = 128

    public let domain: String
    public let path: String
    public let payloadDigest: [UInt8]

    public init(domain: String, path: String, payloadDigest: [UInt8]) {
        precondition(domain.utf8.count <= SignedStatement.domainBytesMax, "domain tag too long")
        precondition(path.utf8.count <= SignedStatement.pathBytesMax, "instance path too long")
        precondition(payloadDigest.count == 32, "payload digests are 32 bytes (SHA-256)")
        self.domain = domain
        self.path = path
        self.payloadDigest = payloadDigest
    }

    /// A statement about `payload`, digested with SHA-256.
    public init(domain: String, path: String, payload: some Sequence<UInt8>) {
        self.init(domain: domain, path: path, payloadDigest: Array(SHA256.hash(data: Array(payload))))
    }

    /// The exact bytes that members sign.
    public var signingBytes: [UInt8] {
        var writer = ByteWriter(capacity: 64 + domain.utf8.count + path.utf8.count)
        writer.writeVariable(Array("sintra-v1/statement".utf8))
        writer.writeVariable(Array(domain.utf8))
        writer.writeVariable(Array(path.utf8))
        writer.writeFixed(payloadDigest)
        return writer.bytes
    }
}

/// A member's Ed25519 public key (RFC 8032).
///
/// Stricter than RFC 8032 on the key itself: a member key must be a canonical encoding of a point of
/// prime order ℓ. Honestly generated keys always are; a key with a low-order component would let its
/// owner make signatures that verifiers disagree on (cofactored or not, see C2SP CCTV), and a replicated
/// protocol cannot afford honest replicas disagreeing about a signature.
public struct MemberPublicKey: Sendable, Hashable, CustomStringConvertible {
    /// The 32-byte encoding.
    public let bytes: [UInt8]
    let point: EdwardsPoint

    public init(bytes: [UInt8]) throws(DecodingError) {
        guard bytes.count == 32 else {
            throw DecodingError(.wrongLength(expected: 32, actual: bytes.count), in: "Ed25519 public key")
        }
        guard let point = EdwardsPoint(ed25519Encoding: bytes) else {
            throw DecodingError(.invalidElement, in: "Ed25519 public key")
        }
        guard point.isTorsionFree, !point.equalsAsEdwards(.identity) else {
            throw DecodingError(.invalidValue("not of prime order"), in: "Ed25519 public key")
        }
        self.bytes = bytes
        self.point = point
    }

    /// Strict Ed25519 verification (RFC 8032 §5.1.7: canonical S below ℓ, canonical R).
    public func isValidSignature(_ signature: some Collection<UInt8>, for message: [UInt8]) -> Bool {
        Ed25519.verify(signature, message: message, publicKey: point, publicKeyBytes: bytes)
    }

    public static func == (a: MemberPublicKey, b: MemberPublicKey) -> Bool { a.bytes == b.bytes }

    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    public var description: String { "MemberPublicKey(\(Hex.encode(bytes)))" }
}

/// A member's Ed25519 signing identity (RFC 8032).
public struct NodeIdentity: Sendable {
    public let index: Int
    /// The RFC 8032 secret key (seed).
    public let seed: [UInt8]
    private let secret: Ed25519.ExpandedSecret
    /// Decoded and checked once here: the check (prime order, a variable-base multiplication) on every use
    /// cost a client more than half its CPU when it was recomputed for each signed request.
    public let publicKey: MemberPublicKey

    /// `seed` is the 32-byte RFC 8032 secret key.
    public init(index: Int, seed: [UInt8]) throws(DecodingError) {
        guard seed.count == 32 else {
            throw DecodingError(.wrongLength(expected: 32, actual: seed.count), in: "identity seed")
        }
        self.index = index
        self.seed = seed
        let secret = Ed25519.ExpandedSecret(seed: seed)
        self.secret = secret
        do {
            publicKey = try MemberPublicKey(bytes: secret.publicKey)
        } catch {
            preconditionFailure("an Ed25519 key pair's public key has prime order: \(error)")
        }
    }

    public func sign(_ statement: SignedStatement) -> [UInt8] {
        Ed25519.sign(statement.signingBytes, with: secret)
    }
}

/// Why a quorum certificate or one of its signatures was rejected.
public enum QuorumCertificateError: Error, Hashable, Sendable {
    case memberOutOfRange(Int)
    case duplicateSigner(Int)
    case notSortedByMember
    case invalidSignature(member: Int)
    case belowThreshold(signers: Int, required: Int)
    case tooManySignatures(Int)
}

/// A quorum certificate QC_k(x): signatures by at least k distinct members on one statement, sorted by
/// member index (PROTOCOLS.md §0). It stands in for a threshold signature inside the protocols.
///
/// Verification counts signers, never signature bytes: Ed25519 signatures are deterministic here, but a
/// malicious member could still produce two different valid signatures (another nonce), and the dumbo
/// pitfall of counting (index, signature) pairs twice must not recur. Verification keeps no cache.
public struct QuorumCertificate: Sendable, Equatable {
    public struct Signature: Sendable, Equatable {
        /// 1-based member index.
        public let member: Int
        public let bytes: [UInt8]

        public init(member: Int, bytes: [UInt8]) {
            self.member = member
            self.bytes = bytes
        }
    }

    public static let signatureBytes = 64

    public let signatures: [Signature]

    /// Builds a certificate from signatures; sorts them by member. Use `verify` before trusting it.
    public init(signatures: [Signature]) {
        self.signatures = signatures.sorted { $0.member < $1.member }
    }

    public var signers: [Int] { signatures.map(\.member) }

    /// 2-byte count, then for each signature a 2-byte member index and 64 signature bytes.
    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 2 + signatures.count * 66)
        writer.write(UInt16(signatures.count))
        for signature in signatures {
            writer.write(UInt16(signature.member))
            writer.writeFixed(signature.bytes)
        }
        return writer.bytes
    }

    /// Decodes a certificate with at most `memberCount` signatures, strictly increasing member indices
    /// (so no duplicates) in 1…memberCount. Signatures are checked by `verify`.
    public init(encoded bytes: some Collection<UInt8>, memberCount: Int) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "quorum certificate")
        let count = Int(try reader.readUInt16())
        guard count <= memberCount else {
            throw DecodingError(.tooLong(maximum: memberCount, actual: count), in: "quorum certificate")
        }
        var signatures = [Signature]()
        var previous = 0
        for _ in 0..<count {
            let member = Int(try reader.readUInt16())
            guard member > previous, member <= memberCount else {
                throw DecodingError(
                    .invalidValue("member \(member) out of order or out of range"), in: "quorum certificate")
            }
            previous = member
            signatures.append(Signature(member: member, bytes: try reader.readFixed(QuorumCertificate.signatureBytes)))
        }
        try reader.finish()
        self.signatures = signatures
    }

    /// Checks the certificate for `statement`: every signer in range, no signer twice, sorted, every
    /// signature valid under the member's key, and at least `threshold` signers.
    ///
    /// The signatures are checked as one `SignatureBatch` (cofactored rule; about three times cheaper than
    /// one by one for n − t signatures), and one by one only when the batch fails, to name the culprit.
    /// Every signature the `Builder` accepts (cofactorless in `add`, cofactored in `collect`) is valid under
    /// the cofactored rule, so a certificate built here always verifies everywhere.
    ///
    /// `alreadyVerified` lets a caller skip signatures whose check it has already done for exactly this
    /// statement and member (a cache of signatures verified on arrival), or that it made itself (Ed25519
    /// signing is deterministic, RFC 8032 §5.1.6, so its own signature on the statement has known bytes).
    /// The structural checks (range, order, count) still cover every signature. It must answer true only for
    /// such signatures: a signature valid under the cofactorless rule is valid under the cofactored one, so
    /// skipping it never changes the verdict.
    public func verify(
        _ statement: SignedStatement, members: [MemberPublicKey], threshold: Int,
        alreadyVerified: (Signature) -> Bool = { _ in false }
    ) throws(QuorumCertificateError) {
        guard signatures.count <= members.count else { throw .tooManySignatures(signatures.count) }
        var previous = 0
        for signature in signatures {
            guard signature.member >= 1, signature.member <= members.count else {
                throw .memberOutOfRange(signature.member)
            }
            if signature.member == previous { throw .duplicateSigner(signature.member) }
            guard signature.member > previous else { throw .notSortedByMember }
            previous = signature.member
        }
        guard signatures.count >= threshold else {
            throw .belowThreshold(signers: signatures.count, required: threshold)
        }
        let unchecked = signatures.filter { !alreadyVerified($0) }
        if unchecked.isEmpty { return }
        let message = statement.signingBytes
        var batch = SignatureBatch()
        for signature in unchecked {
            batch.add(signature.bytes, message: message, key: members[signature.member - 1])
        }
        if let first = batch.invalidIndices().first {
            throw .invalidSignature(member: unchecked[first].member)
        }
    }

    /// Collects signatures for one statement until a threshold is reached.
    ///
    /// Two ways in. `add` checks each signature as it arrives (cofactorless, `MemberPublicKey.isValidSignature`).
    /// `collect` holds signatures unchecked until they could complete the certificate and then checks them as
    /// one `SignatureBatch` (cofactored, the rule of `QuorumCertificate.verify`): a consistent-broadcast sender
    /// needs e signatures and checking e − 1 of them together costs about half of checking them one by one
    /// (BENCHMARKS.md, "Ed25519 batch verification"). Both accept only signatures that `verify` accepts, so a
    /// certificate built here verifies everywhere.
    public struct Builder: Sendable {
        public let statement: SignedStatement
        public let threshold: Int
        private let members: [MemberPublicKey]
        private let message: [UInt8]
        /// Signatures known valid.
        private var collected: [Int: [UInt8]] = [:]
        /// Signatures held by `collect`, not yet checked (fewer than `threshold` − `collected.count`).
        private var pending: [Int: [UInt8]] = [:]

        public init(statement: SignedStatement, members: [MemberPublicKey], threshold: Int) {
            precondition(threshold >= 1 && threshold <= members.count, "threshold out of range")
            self.statement = statement
            self.members = members
            self.threshold = threshold
            self.message = statement.signingBytes
        }

        /// Signers whose signatures are known valid (held, unchecked ones not included).
        public var signerCount: Int { collected.count }
        public var isComplete: Bool { collected.count >= threshold }

        /// Adds a member's signature. A second signature by the same member is ignored (it returns false)
        /// whether or not its bytes differ; an invalid one throws.
        @discardableResult
        public mutating func add(member: Int, signature: [UInt8]) throws(QuorumCertificateError) -> Bool {
            guard member >= 1, member <= members.count else { throw .memberOutOfRange(member) }
            guard collected[member] == nil, pending[member] == nil else { return false }
            guard members[member - 1].isValidSignature(signature, for: message) else {
                throw .invalidSignature(member: member)
            }
            collected[member] = signature
            return true
        }

        /// Adds a signature without checking it. Only for a signature that the caller made itself on exactly
        /// this statement (deterministic Ed25519, RFC 8032 §5.1.6) or verified before: it goes into the
        /// certificate as it is. A member already collected is ignored. With it, the signatures held by
        /// `collect` may now suffice: they are checked, and the rejections found are returned.
        @discardableResult
        public mutating func addVerified(member: Int, signature: [UInt8]) -> [QuorumCertificateError] {
            precondition(member >= 1 && member <= members.count, "member out of range")
            guard collected[member] == nil else { return [] }
            pending[member] = nil
            collected[member] = signature
            var rejected = [QuorumCertificateError]()
            checkHeldIfEnough(&rejected)
            return rejected
        }

        /// Adds a member's signature, checking it together with others once they could complete the
        /// certificate. Returns the rejections this call found: the new signature's, or those of held
        /// signatures whose batch failed (Bellare–Garay–Rabin search by halves, `SignatureBatch.invalidIndices`),
        /// which are dropped so that their members may be replaced by later ones. A member's signature is
        /// ignored once one of its signatures is collected, as in `add`. Another signature (or a repeat) from a
        /// member with one held settles the held one at once, so the verdicts are those of `add` one by one:
        /// the first valid signature of a member counts and every invalid one is reported. Once complete, a late
        /// signature is checked at once (it is not needed, but a forged one is still reported).
        public mutating func collect(member: Int, signature: [UInt8]) -> [QuorumCertificateError] {
            guard member >= 1, member <= members.count else { return [.memberOutOfRange(member)] }
            guard collected[member] == nil else { return [] }
            var rejected = [QuorumCertificateError]()
            if let held = pending[member] {
                pending[member] = nil
                if members[member - 1].isValidSignatureCofactored(held, for: message) {
                    collected[member] = held
                    return []
                }
                rejected.append(.invalidSignature(member: member))
            }
            if isComplete {
                guard members[member - 1].isValidSignatureCofactored(signature, for: message) else {
                    return rejected + [.invalidSignature(member: member)]
                }
                collected[member] = signature
                return rejected
            }
            pending[member] = signature
            checkHeldIfEnough(&rejected)
            return rejected
        }

        /// Checks the held signatures as one batch once they and the collected ones reach the threshold; keeps
        /// the valid ones and reports the others. Afterwards fewer than `threshold` are collected and held, or
        /// none is held.
        private mutating func checkHeldIfEnough(_ rejected: inout [QuorumCertificateError]) {
            guard !pending.isEmpty, collected.count + pending.count >= threshold else { return }
            // Sorted, so the batch (and its coefficients) does not depend on dictionary order.
            let held = pending.sorted { $0.key < $1.key }
            pending = [:]
            var batch = SignatureBatch()
            for (member, bytes) in held {
                batch.add(bytes, message: message, key: members[member - 1])
            }
            let invalid = Set(batch.invalidIndices())
            for (index, (member, bytes)) in held.enumerated() {
                if invalid.contains(index) {
                    rejected.append(.invalidSignature(member: member))
                } else {
                    collected[member] = bytes
                }
            }
        }

        /// The certificate, once complete: the `threshold` lowest-indexed signers, for a canonical result.
        public func certificate() -> QuorumCertificate? {
            guard isComplete else { return nil }
            let chosen = collected.keys.sorted().prefix(threshold)
            return QuorumCertificate(signatures: chosen.map { Signature(member: $0, bytes: collected[$0]!) })
        }
    }
}
