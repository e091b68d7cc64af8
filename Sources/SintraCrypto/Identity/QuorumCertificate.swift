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
    /// Every signature the `Builder` accepts (cofactorless) is valid under the cofactored rule too, so a
    /// certificate built here always verifies everywhere.
    public func verify(
        _ statement: SignedStatement, members: [MemberPublicKey], threshold: Int
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
        let message = statement.signingBytes
        var batch = SignatureBatch()
        for signature in signatures {
            batch.add(signature.bytes, message: message, key: members[signature.member - 1])
        }
        if let first = batch.invalidIndices().first {
            throw .invalidSignature(member: signatures[first].member)
        }
    }

    /// Collects signatures for one statement until a threshold is reached, checking each as it arrives.
    public struct Builder: Sendable {
        public let statement: SignedStatement
        public let threshold: Int
        private let members: [MemberPublicKey]
        private let message: [UInt8]
        private var collected: [Int: [UInt8]] = [:]

        public init(statement: SignedStatement, members: [MemberPublicKey], threshold: Int) {
            precondition(threshold >= 1 && threshold <= members.count, "threshold out of range")
            self.statement = statement
            self.members = members
            self.threshold = threshold
            self.message = statement.signingBytes
        }

        public var signerCount: Int { collected.count }
        public var isComplete: Bool { collected.count >= threshold }

        /// Adds a member's signature. A second signature by the same member is ignored (it returns false)
        /// whether or not its bytes differ; an invalid one throws.
        @discardableResult
        public mutating func add(member: Int, signature: [UInt8]) throws(QuorumCertificateError) -> Bool {
            guard member >= 1, member <= members.count else { throw .memberOutOfRange(member) }
            guard collected[member] == nil else { return false }
            guard members[member - 1].isValidSignature(signature, for: message) else {
                throw .invalidSignature(member: member)
            }
            collected[member] = signature
            return true
        }

        /// The certificate, once complete: the `threshold` lowest-indexed signers, for a canonical result.
        public func certificate() -> QuorumCertificate? {
            guard isComplete else { return nil }
            let chosen = collected.keys.sorted().prefix(threshold)
            return QuorumCertificate(signatures: chosen.map { Signature(member: $0, bytes: collected[$0]!) })
        }
    }
}
