import Crypto

/// Cofactored Ed25519 verification of many signatures at once (Bernstein, Duif, Lange, Schwabe, Yang,
/// "High-speed high-security signatures", 2011, §5 "Fast batch verification").
///
/// A signature (R, S) by key A on message M is valid here when S < ℓ, R is a canonical point encoding, and
/// [8]([S]B − R − [k]A) = 0 with k = SHA-512(R ‖ A ‖ M) mod ℓ: the cofactored equation of RFC 8032 §5.1.7.
/// A batch checks [8](Σ z_i·S_i·B − Σ z_i·R_i − Σ z_i·k_i·A_i) = 0 with 128-bit coefficients z_i, which
/// costs one multi-scalar multiplication instead of one double multiplication per signature.
///
/// Why cofactored and not `MemberPublicKey.isValidSignature`'s cofactorless check: a batch equation can only
/// be consistent with the cofactored one. With cofactorless single checks, a signer could add a low-order
/// point to R so that single verification rejects and a batch accepts or rejects depending on the z_i, and
/// two honest replicas verifying different batches would disagree about one request. Everything verified
/// through this type (single `isValid` included) follows the cofactored rule, so the verdict on a signature
/// does not depend on what else is in its batch. Only the key's owner can make a signature that the two
/// rules judge differently (changing R changes k), so the rules agree on what a member or client signed.
///
/// The z_i are derived from SHA-512 over every entry (R, S, A, k) of the batch, not drawn at random: the
/// verdict is then a function of the batch alone (replays and simulations are exact), and an adversary who
/// wants a bad signature to pass must find a batch whose derived coefficients cancel its error, a 2^-128
/// chance per hash it computes.
public struct SignatureBatch: Sendable {
    private struct Entry: Sendable {
        let commitment: EdwardsPoint
        let response: Scalar
        let challenge: Scalar
        let key: EdwardsPoint
    }

    /// Parsed entries; nil where the signature is malformed (wrong length, S ≥ ℓ, R not a point).
    private var entries: [Entry?] = []
    /// R ‖ S ‖ A ‖ SHA-512(R ‖ A ‖ M) of every entry, hashed into the coefficients' seed.
    private var transcript: [UInt8] = []

    public init() {}

    /// The number of signatures added.
    public var count: Int { entries.count }

    /// Adds one signature and returns its index in the batch.
    @discardableResult
    public mutating func add(_ signature: some Collection<UInt8>, message: [UInt8], key: MemberPublicKey) -> Int {
        entries.append(Self.parse(Array(signature), message: message, key: key, transcript: &transcript))
        return entries.count - 1
    }

    /// Whether every signature in the batch is valid (cofactored rule). An empty batch is valid.
    public func verify() -> Bool {
        Self.check(entries, seed: Array(SHA512.hash(data: transcript)))
    }

    /// `verify()` with a chosen multi-scalar multiplication, for benchmarks comparing the methods.
    @_spi(Benchmarks)
    public func verify(algorithm: MultiscalarAlgorithm) -> Bool {
        Self.check(entries, seed: Array(SHA512.hash(data: transcript)), algorithm: algorithm)
    }

    /// The indices of the invalid signatures, in increasing order: one batch check, and only if that fails
    /// a search by halves (Bellare, Garay, Rabin, "Fast batch verification for modular exponentiation and
    /// digital signatures", Eurocrypt 1998, §5 on finding the bad ones): a failed range is split, each half
    /// is checked as a batch, and only failed halves are split further, down to single signatures, which
    /// get the single check's exact verdict. A forger who slips one bad signature into a batch of N costs
    /// about 2·log2(N) sub-batch checks instead of N single ones, so a batch of client requests with a
    /// forgery in it costs about twice the batch, not four times.
    public func invalidIndices() -> [Int] {
        var invalid = [Int]()
        var parsed = [Int]()
        for index in entries.indices {
            if entries[index] == nil { invalid.append(index) } else { parsed.append(index) }
        }
        let seed = Array(SHA512.hash(data: transcript))
        if !Self.check(parsed.map { entries[$0] }, seed: seed) {
            locate(parsed[...], seed: seed, into: &invalid)
        }
        return invalid.sorted()
    }

    /// `positions` failed as one batch: finds its invalid entries. A range whose batch fails holds an invalid
    /// signature (valid ones always satisfy the equation), so when one half passes the other is searched
    /// without checking it as a whole.
    private func locate(_ positions: ArraySlice<Int>, seed: [UInt8], into invalid: inout [Int]) {
        if positions.count == 1 {
            invalid.append(positions.first!)
            return
        }
        let middle = positions.startIndex + positions.count / 2
        let left = positions[..<middle]
        let right = positions[middle...]
        let leftFails = !Self.check(left.map { entries[$0] }, seed: Self.subseed(seed, left))
        if leftFails { locate(left, seed: seed, into: &invalid) }
        if !leftFails || !Self.check(right.map { entries[$0] }, seed: Self.subseed(seed, right)) {
            locate(right, seed: seed, into: &invalid)
        }
    }

    /// The coefficient seed of a sub-batch: the batch's seed bound to the sub-batch's first and last position.
    private static func subseed(_ seed: [UInt8], _ positions: ArraySlice<Int>) -> [UInt8] {
        var hash = SHA512()
        hash.update(data: seed)
        withUnsafeBytes(of: UInt64(positions.first!).littleEndian) { hash.update(bufferPointer: $0) }
        withUnsafeBytes(of: UInt64(positions.last!).littleEndian) { hash.update(bufferPointer: $0) }
        return Array(hash.finalize())
    }

    /// One signature under the cofactored rule (the same verdict it gets inside any batch).
    public static func isValid(_ signature: some Collection<UInt8>, message: [UInt8], key: MemberPublicKey) -> Bool {
        var unused = [UInt8]()
        guard let entry = parse(Array(signature), message: message, key: key, transcript: &unused) else { return false }
        return check([entry], seed: [])
    }

    private static func parse(_ bytes: [UInt8], message: [UInt8], key: MemberPublicKey, transcript: inout [UInt8])
        -> Entry?
    {
        guard bytes.count == 64, let response = try? Scalar(canonicalBytes: bytes[32..<64]) else { return nil }
        let commitmentBytes = Array(bytes[0..<32])
        guard let commitment = EdwardsPoint(ed25519Encoding: commitmentBytes) else { return nil }
        var hash = SHA512()
        hash.update(data: commitmentBytes)
        hash.update(data: key.bytes)
        hash.update(data: message)
        let challengeBytes = Array(hash.finalize())
        transcript += bytes
        transcript += key.bytes
        transcript += challengeBytes
        return Entry(
            commitment: commitment, response: response, challenge: Scalar(reducing64: challengeBytes), key: key.point)
    }

    /// [8](Σ z_i·S_i·B − Σ z_i·R_i − Σ z_i·k_i·A_i) = 0, with z_0 = 1 for a single entry.
    ///
    /// The R_i are negated rather than their coefficients: z_i has 128 bits, −z_i mod ℓ has 253, and the
    /// multi-scalar multiplication costs about one addition per nonzero digit, so each R_i term costs half.
    private static func check(_ entries: [Entry?], seed: [UInt8], algorithm: MultiscalarAlgorithm = .automatic)
        -> Bool
    {
        if entries.isEmpty { return true }
        var scalars = [Scalar]()
        var points = [EdwardsPoint]()
        scalars.reserveCapacity(2 * entries.count + 1)
        points.reserveCapacity(2 * entries.count + 1)
        var base = Scalar.zero
        for (index, entry) in entries.enumerated() {
            guard let entry else { return false }
            let z = entries.count == 1 ? Scalar.one : coefficient(seed: seed, index: index)
            base += z * entry.response
            scalars.append(z)
            points.append(entry.commitment.negated())
            scalars.append(-(z * entry.challenge))
            points.append(entry.key)
        }
        scalars.append(base)
        points.append(.basePoint)
        let sum = EdwardsPoint.multiscalarMultiplyVariableTime(scalars, points, algorithm: algorithm)
        return sum.multipliedByPowerOfTwo(3).equalsAsEdwards(.identity)
    }

    /// A nonzero 128-bit coefficient from SHA-512(seed ‖ index).
    private static func coefficient(seed: [UInt8], index: Int) -> Scalar {
        var hash = SHA512()
        hash.update(data: Array("sintra-v1/ed25519-batch".utf8))
        hash.update(data: seed)
        withUnsafeBytes(of: UInt64(index).littleEndian) { hash.update(bufferPointer: $0) }
        let digest = Array(hash.finalize())
        let z = Scalar(reducing32: Array(digest[0..<16]) + [UInt8](repeating: 0, count: 16))
        return z == .zero ? .one : z
    }
}

extension MemberPublicKey {
    /// Cofactored Ed25519 verification, the rule `SignatureBatch` applies (see there for why it differs
    /// from `isValidSignature` only on signatures the key's owner crafted on purpose).
    public func isValidSignatureCofactored(_ signature: some Collection<UInt8>, for message: [UInt8]) -> Bool {
        SignatureBatch.isValid(signature, message: message, key: self)
    }
}
