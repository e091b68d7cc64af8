import Crypto

/// The Diffie–Hellman threshold coin of Cachin, Kursawe and Shoup ("Random oracles in Constantinople",
/// PODC 2000 / J. Cryptology 2005, §3 and §4): a common random value per coin name that no coalition of
/// fewer than k parties can predict, and that any k valid shares reveal.
///
/// For name C, let Ĝ = HashToGroup(C). Party i's share is x_i·Ĝ with a Chaum–Pedersen proof that
/// log_G(x_i·G) = log_Ĝ(x_i·Ĝ), so a bad share is detected and attributed. Any k verified shares from
/// distinct parties interpolate (in the exponent) to x·Ĝ, which is the same for every set of k shares;
/// the coin value is a hash of C and x·Ĝ. Sintra uses k = t + 1: t corrupted parties alone cannot
/// compute the coin, and every set of k shares includes an honest one.
///
/// The name must bind the full protocol instance path and the round (PROTOCOLS.md §1), or one coin value
/// would be reused across instances.
public enum ThresholdCoin {
    static let proofDomain = "sintra-v1/coin-share"

    /// Ĝ = HashToGroup(name): the coin's base element.
    public static func base(for name: [UInt8]) -> GroupElement {
        HashToGroup.element(name, domain: Array("sintra-v1/coin-base".utf8))
    }

    /// One party's share of one coin.
    public struct Share: Sendable, Equatable {
        /// The party index (1-based).
        public let index: Int
        /// x_i·Ĝ.
        public let value: GroupElement
        public let proof: EqualityProof

        public init(index: Int, value: GroupElement, proof: EqualityProof) {
            self.index = index
            self.value = value
            self.proof = proof
        }

        /// 2-byte index ‖ 32-byte element ‖ 64-byte proof.
        public static let encodedLength = 2 + 32 + EqualityProof.encodedLength

        public var encoded: [UInt8] {
            var writer = ByteWriter(capacity: Share.encodedLength)
            writer.write(UInt16(index))
            writer.write(value)
            writer.writeFixed(proof.encoded)
            return writer.bytes
        }

        /// Decodes a share; the index is not checked against a key here (see `ThresholdPublicKey.verify`).
        public init(encoded bytes: some Collection<UInt8>) throws(DecodingError) {
            var reader = ByteReader(bytes, context: "coin share")
            index = Int(try reader.readUInt16())
            value = try reader.readElement()
            proof = try EqualityProof(encoded: try reader.readFixed(EqualityProof.encodedLength))
            try reader.finish()
        }
    }

    /// A share whose proof was checked for one coin name. Only `ThresholdPublicKey.verifyCoinShare` makes one.
    public struct VerifiedShare: Sendable {
        public let share: Share
        let nameDigest: [UInt8]
    }

    /// A coin's value: 32 uniformly distributed bytes.
    public struct Value: Sendable, Equatable, CustomStringConvertible {
        public let bytes: [UInt8]

        /// The coin as one bit (for binary agreement).
        public var bit: Bool { bytes[0] & 1 == 1 }

        /// A 64-bit value, e.g. to seed a permutation.
        public var word: UInt64 { bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }

        public var description: String { "CoinValue(\(Hex.encode(bytes)))" }
    }

    static func nameDigest(_ name: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: name))
    }
}

extension ThresholdSecretShare {
    /// This party's share of the coin `name`, with its proof.
    public func coinShare<Generator: RandomNumberGenerator>(name: [UInt8], using generator: inout Generator)
        -> ThresholdCoin.Share
    {
        let base = ThresholdCoin.base(for: name)
        let value = self.value * base
        let statement = EqualityProof.Statement(
            baseG: .generator, publicA: verificationKey, baseH: base, publicB: value)
        let proof = EqualityProof.prove(
            witness: self.value, statement: statement, domain: ThresholdCoin.proofDomain, context: name,
            using: &generator)
        return ThresholdCoin.Share(index: index, value: value, proof: proof)
    }

    /// This party's share of coin `name` (as `coinShare(name:using:)`), and the same share as verified for
    /// `key`, or nil when this secret does not match `key`'s verification key for its index.
    ///
    /// Why a share may count without checking its proof: x_i·Ĝ computed from the x_i behind the verification
    /// key x_i·G is exactly what the Chaum–Pedersen proof attests (CKS05 §4, the share is valid by
    /// construction), and a party's own share comes back to it like everyone else's. Verifying it cost a
    /// third of an n = 4 coin at every party (BENCHMARKS.md: 232 µs per share). The key check guards against
    /// a secret from another dealing, which must not be combined.
    public func verifiedCoinShare<Generator: RandomNumberGenerator>(
        name: [UInt8], key: ThresholdPublicKey, using generator: inout Generator
    ) -> (share: ThresholdCoin.Share, verified: ThresholdCoin.VerifiedShare?) {
        let share = coinShare(name: name, using: &generator)
        guard matches(key) else { return (share, nil) }
        return (share, ThresholdCoin.VerifiedShare(share: share, nameDigest: ThresholdCoin.nameDigest(name)))
    }

    /// As `coinShare(name:using:)` with the system's secure generator.
    public func coinShare(name: [UInt8]) -> ThresholdCoin.Share {
        var generator = SystemRandomNumberGenerator()
        return coinShare(name: name, using: &generator)
    }
}

extension ThresholdPublicKey {
    /// Checks a coin share for `name`. A failure names the party that sent it.
    public func verifyCoinShare(_ share: ThresholdCoin.Share, name: [UInt8])
        throws(ShareVerificationError) -> ThresholdCoin.VerifiedShare
    {
        guard let verificationKey = verificationKey(for: share.index) else {
            throw ShareVerificationError(index: share.index, reason: .unknownMember)
        }
        let statement = EqualityProof.Statement(
            baseG: .generator, publicA: verificationKey, baseH: ThresholdCoin.base(for: name), publicB: share.value)
        guard share.proof.verifies(statement: statement, domain: ThresholdCoin.proofDomain, context: name) else {
            throw ShareVerificationError(index: share.index, reason: .invalidProof)
        }
        return ThresholdCoin.VerifiedShare(share: share, nameDigest: ThresholdCoin.nameDigest(name))
    }

    /// Combines `threshold` verified shares of coin `name` from distinct parties (extra shares are ignored;
    /// duplicates by index count once). Every choice of shares gives the same value.
    public func combineCoin(_ shares: [ThresholdCoin.VerifiedShare], name: [UInt8])
        throws(ShareCombinationError) -> ThresholdCoin.Value
    {
        let digest = ThresholdCoin.nameDigest(name)
        guard shares.allSatisfy({ $0.nameDigest == digest }) else {
            throw ShareCombinationError.mixedStatements
        }
        var byIndex = [Int: GroupElement]()
        for verified in shares where byIndex[verified.share.index] == nil {
            byIndex[verified.share.index] = verified.share.value
        }
        guard byIndex.count >= threshold else {
            throw ShareCombinationError.notEnoughShares(distinct: byIndex.count, required: threshold)
        }
        // Use the `threshold` lowest indices so the computation does not depend on arrival order.
        let chosen = byIndex.keys.sorted().prefix(threshold).map { (index: $0, value: byIndex[$0]!) }
        let combined = Shamir.interpolateInExponent(chosen, at: .zero)
        var hasher = SHA512()
        var writer = ByteWriter()
        writer.writeVariable(Array("sintra-v1/coin-value".utf8))
        writer.writeVariable(name)
        writer.write(combined)
        hasher.update(data: writer.bytes)
        return ThresholdCoin.Value(bytes: Array(hasher.finalize().prefix(32)))
    }
}
