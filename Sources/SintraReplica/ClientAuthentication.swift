import Crypto
import SintraCrypto

/// A client's Ed25519 signing key (RFC 8032, on SintraCrypto's own arithmetic).
///
/// Why clients sign: without it anyone can send a request in another client's name with a huge sequence
/// number, and once that request is ordered every later request of the real client is stale (the
/// simulator's `forge-client` replica showed it). The client identifier is derived from the public key
/// (`ClientRequest.clientIdentifier(of:)`), so an identifier can only be used by the holder of its key.
public struct ClientKey: Sendable {
    private let identity: NodeIdentity

    /// The key with the 32-byte RFC 8032 secret `seed`.
    public init(seed: [UInt8]) throws(DecodingError) {
        identity = try NodeIdentity(index: 0, seed: seed)
    }

    /// A fresh key from the system's random number generator.
    public static func generate() -> ClientKey {
        var generator = SystemRandomNumberGenerator()
        let seed = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        do {
            return try ClientKey(seed: seed)
        } catch {
            preconditionFailure("a 32-byte seed is a valid Ed25519 secret key: \(error)")
        }
    }

    /// The secret seed (keep it in a file only the user can read).
    public var seed: [UInt8] { identity.seed }

    /// The 32-byte encoded public key.
    public var publicKey: [UInt8] { identity.publicKey.bytes }

    /// The 16-byte client identifier replicas route replies and deduplicate requests by.
    public var client: [UInt8] { ClientRequest.clientIdentifier(of: publicKey) }

    /// Signs a request for the cluster `clusterIdentifier`.
    public func request(clusterIdentifier: [UInt8], sequence: UInt64, operation: [UInt8]) -> ClientRequest {
        let publicKey = self.publicKey
        let statement = ClientRequest.statement(
            clusterIdentifier: clusterIdentifier, publicKey: publicKey, sequence: sequence, operation: operation)
        return ClientRequest(
            publicKey: publicKey, sequence: sequence, operation: operation, signature: identity.sign(statement))
    }
}

/// Why a replica refused or skipped a client request.
public enum ClientRequestError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes are no canonical `ClientRequest` encoding.
    case malformed
    /// The public key is not the canonical encoding of a point of prime order.
    case invalidPublicKey
    /// The signature does not verify for this cluster, key and fields.
    case invalidSignature

    /// A short label for logs and metrics.
    public var reason: String {
        switch self {
        case .malformed: "malformed"
        case .invalidPublicKey: "invalid-public-key"
        case .invalidSignature: "invalid-signature"
        }
    }

    public var description: String { "client request refused: \(reason)" }
}

extension ClientRequest {
    /// The domain tag of client request signatures: a request signature is never valid as any other
    /// statement, and one made for another cluster never verifies here (the path names the cluster).
    public static let signatureDomain = "sintra-v1/client-request"

    /// The first 16 bytes of SHA-256("sintra-v1/client-id" ‖ public key).
    public static func clientIdentifier(of publicKey: [UInt8]) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: Array("sintra-v1/client-id".utf8))
        hash.update(data: publicKey)
        return Array(hash.finalize().prefix(16))
    }

    /// What the client signs: the domain tag, the cluster, and the digest of the public key, sequence and
    /// length-prefixed operation.
    static func statement(clusterIdentifier: [UInt8], publicKey: [UInt8], sequence: UInt64, operation: [UInt8])
        -> SignedStatement
    {
        var writer = ByteWriter(capacity: operation.count + 48)
        writer.writeFixed(publicKey)
        writer.write(sequence)
        writer.writeVariable(operation)
        return SignedStatement(
            domain: signatureDomain, path: "cluster/" + Hex.encode(clusterIdentifier), payload: writer.bytes)
    }

    /// Checks the signature for the cluster `clusterIdentifier` under the cofactored rule of
    /// `SignatureBatch` (RFC 8032 §5.1.7 with the factor 8; S < ℓ and a canonical R).
    ///
    /// Deterministic, and the same verdict a request gets inside any `SignatureBatch`: every honest
    /// replica gets the same answer for the same bytes whether it verified one request or a batch, so
    /// replicas may skip unauthentic requests at execution without their states diverging.
    public func verify(clusterIdentifier: [UInt8]) throws(ClientRequestError) {
        let key: MemberPublicKey
        do {
            key = try MemberPublicKey(bytes: publicKey)
        } catch {
            throw .invalidPublicKey
        }
        try verify(clusterIdentifier: clusterIdentifier, key: key)
    }

    /// Checks the signature with `key`, the decoded `publicKey` (callers that cache decoded keys save the
    /// key's order check, about 40 % of a verification).
    public func verify(clusterIdentifier: [UInt8], key: MemberPublicKey) throws(ClientRequestError) {
        precondition(key.bytes == publicKey, "the key must be the request's public key")
        guard SignatureBatch.isValid(signature, message: signingBytes(clusterIdentifier), key: key) else {
            throw .invalidSignature
        }
    }

    /// Checks many requests' signatures together, with their decoded public keys (nil where the key did
    /// not decode): one `SignatureBatch`, and a search by halves only if it fails. Each verdict is the one
    /// `verify(clusterIdentifier:key:)` gives the request on its own (the batch is cofactored like the
    /// single check), so it does not depend on the other requests of the batch. Returns nil for an
    /// authentic request, the reason otherwise, in the order of `requests`.
    public static func verify(batch requests: [ClientRequest], keys: [MemberPublicKey?], clusterIdentifier: [UInt8])
        -> [ClientRequestError?]
    {
        precondition(requests.count == keys.count, "one key per request")
        var verdicts = [ClientRequestError?](repeating: nil, count: requests.count)
        var signatures = SignatureBatch()
        var positions = [Int]()
        positions.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            guard let key = keys[index] else {
                verdicts[index] = .invalidPublicKey
                continue
            }
            precondition(key.bytes == request.publicKey, "the key must be the request's public key")
            signatures.add(request.signature, message: request.signingBytes(clusterIdentifier), key: key)
            positions.append(index)
        }
        for invalid in signatures.invalidIndices() { verdicts[positions[invalid]] = .invalidSignature }
        return verdicts
    }

    /// The bytes the signature covers.
    func signingBytes(_ clusterIdentifier: [UInt8]) -> [UInt8] {
        ClientRequest.statement(
            clusterIdentifier: clusterIdentifier, publicKey: publicKey, sequence: sequence, operation: operation
        ).signingBytes
    }
}

/// A replica's check of client signatures, verifying each request once.
///
/// A replica verifies a request before it submits it to atomic broadcast (`admit`) and remembers its
/// digest. At execution (`authenticate`) a request with a remembered digest is not verified again; any
/// other one is, because a Byzantine replica can put anything into its own queue. A request that fails is
/// skipped by every honest replica alike (verification is deterministic), so states stay equal.
///
/// Both tables have a named bound; forgetting an entry costs a second verification, never a different answer.
public struct RequestAuthenticator: Sendable {
    /// Digests of verified requests remembered.
    public static let verifiedCountMax = 1 << 17
    /// Decoded client public keys remembered (decoding checks the key's order, a scalar multiplication).
    public static let keyCountMax = 1 << 14

    public let clusterIdentifier: [UInt8]
    private var verified: Set<ByteKey> = []
    private var verifiedOrder: [[UInt8]] = []
    private var verifiedHead = 0
    private var keys: [[UInt8]: MemberPublicKey] = [:]

    /// Verifications done (cache misses), for statistics.
    public private(set) var verifications: UInt64 = 0
    /// Requests of ordered batches not verified here because t + 1 replicas queued them, for statistics.
    public private(set) var attestedSkips: UInt64 = 0

    public init(clusterIdentifier: [UInt8]) {
        self.clusterIdentifier = clusterIdentifier
    }

    /// Decodes and verifies a request from a client, and remembers it as verified.
    public mutating func admit(_ bytes: [UInt8]) throws(ClientRequestError) -> ClientRequest {
        guard let request = try? ClientRequest(encoded: bytes) else { throw .malformed }
        try check(request, digest: Self.digest(bytes))
        return request
    }

    /// Remembers a request verified elsewhere (for example off the replica's actor) by its encoding.
    public mutating func remember(verified bytes: [UInt8]) {
        insert(Self.digest(bytes))
    }

    /// The same, by the request's SHA-256 digest (`AtomicBroadcast.digest` of its encoding).
    public mutating func remember(verifiedDigest digest: [UInt8]) {
        insert(digest)
    }

    /// Whether the request with this SHA-256 digest verified here and is still remembered.
    public func isVerified(digest: [UInt8]) -> Bool {
        verified.contains(ByteKey(digest))
    }

    /// The request in an ordered batch entry if it is authentic: decoded, and verified unless it was
    /// verified before.
    public mutating func authenticate(_ bytes: [UInt8]) -> Result<ClientRequest, ClientRequestError> {
        guard let request = try? ClientRequest(encoded: bytes) else { return .failure(.malformed) }
        let digest = Self.digest(bytes)
        if verified.contains(ByteKey(digest)) { return .success(request) }
        do {
            try check(request, digest: digest)
            return .success(request)
        } catch {
            return .failure(error)
        }
    }

    /// The requests of an ordered batch that are authentic, in order: those verified before are looked
    /// up, the others are checked together in one `SignatureBatch` (about half the cost of one-by-one
    /// checks from four signatures on), and one by one only if the batch fails, to find the forgeries.
    ///
    /// `attested` is empty or has one flag per request: a flagged request was queued by t + 1 replicas
    /// (`AtomicBroadcast.Batch.attested`), so an honest replica verified it before queueing it, with the
    /// verdict this replica would get; it is decoded and remembered as verified without a check of its own.
    /// Counted in `attestedSkips` unless it was verified here before.
    public mutating func authenticate(batch: [[UInt8]], attested: [Bool] = [])
        -> [Result<ClientRequest, ClientRequestError>]
    {
        precondition(attested.isEmpty || attested.count == batch.count, "one flag per request")
        var results = [Result<ClientRequest, ClientRequestError>](repeating: .failure(.malformed), count: batch.count)
        var signatures = SignatureBatch()
        var pending = [(index: Int, digest: [UInt8])]()
        for (index, bytes) in batch.enumerated() {
            guard let request = try? ClientRequest(encoded: bytes) else { continue }
            let digest = Self.digest(bytes)
            if !attested.isEmpty, attested[index] {
                // Remembered as verified: it is, and the replica routes replies and answers repeats by it.
                if !verified.contains(ByteKey(digest)) { attestedSkips += 1 }
                insert(digest)
                results[index] = .success(request)
                continue
            }
            if verified.contains(ByteKey(digest)) {
                results[index] = .success(request)
                continue
            }
            verifications += 1
            guard let key = key(of: request) else {
                results[index] = .failure(.invalidPublicKey)
                continue
            }
            signatures.add(request.signature, message: request.signingBytes(clusterIdentifier), key: key)
            results[index] = .success(request)
            pending.append((index, digest))
        }
        let invalid = Set(signatures.invalidIndices())
        for (position, entry) in pending.enumerated() {
            if invalid.contains(position) {
                results[entry.index] = .failure(.invalidSignature)
            } else {
                insert(entry.digest)
            }
        }
        return results
    }

    private mutating func check(_ request: ClientRequest, digest: [UInt8]) throws(ClientRequestError) {
        verifications += 1
        guard let key = key(of: request) else { throw .invalidPublicKey }
        try request.verify(clusterIdentifier: clusterIdentifier, key: key)
        insert(digest)
    }

    /// The request's decoded public key (cached), or nil if it is not a valid member-style key.
    private mutating func key(of request: ClientRequest) -> MemberPublicKey? {
        if let known = keys[request.publicKey] { return known }
        guard let key = try? MemberPublicKey(bytes: request.publicKey) else { return nil }
        if keys.count >= Self.keyCountMax { keys.removeAll(keepingCapacity: true) }
        keys[request.publicKey] = key
        return key
    }

    private mutating func insert(_ digest: [UInt8]) {
        guard verified.insert(ByteKey(digest)).inserted else { return }
        verifiedOrder.append(digest)
        if verified.count > Self.verifiedCountMax {
            verified.remove(ByteKey(verifiedOrder[verifiedHead]))
            verifiedHead += 1
            if verifiedHead > verifiedOrder.count / 2 {
                verifiedOrder.removeFirst(verifiedHead)
                verifiedHead = 0
            }
        }
    }

    static func digest(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
