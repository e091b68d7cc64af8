/// The public side of a key shared (n, k): a group public key x·G and each party's verification key
/// x_i·G, where x_i = f(i) for a polynomial f of degree k − 1 with f(0) = x.
///
/// Used both for the threshold coin and for threshold encryption (independent keys). Index i runs 1…n;
/// `verificationKeys[i − 1]` belongs to party i.
public struct ThresholdPublicKey: Sendable, Equatable {
    /// Shares needed to combine (t + 1 in Sintra).
    public let threshold: Int
    /// x·G.
    public let groupKey: GroupElement
    /// x_i·G for i = 1…n.
    public let verificationKeys: [GroupElement]

    /// Builds a key and checks that it is consistent: 1 ≤ threshold ≤ n, no identity element, and every
    /// set of `threshold` verification keys interpolates to the group key (checked on the first and last
    /// window of parties, which with a degree-(k−1) polynomial covers every key).
    public init(threshold: Int, groupKey: GroupElement, verificationKeys: [GroupElement]) throws(DecodingError) {
        let n = verificationKeys.count
        guard threshold >= 1, threshold <= n else {
            throw DecodingError(.invalidValue("threshold \(threshold) not in 1…\(n)"), in: "threshold public key")
        }
        guard !groupKey.isIdentity, !verificationKeys.contains(where: \.isIdentity) else {
            throw DecodingError(.identityElement, in: "threshold public key")
        }
        self.threshold = threshold
        self.groupKey = groupKey
        self.verificationKeys = verificationKeys
        guard isConsistentPolynomial() else {
            throw DecodingError(
                .invalidValue("verification keys do not lie on one polynomial of degree \(threshold - 1)"),
                in: "threshold public key")
        }
    }

    /// Number of parties.
    public var partyCount: Int { verificationKeys.count }

    /// The verification key of party `index` (1-based), or nil for a non-member.
    public func verificationKey(for index: Int) -> GroupElement? {
        guard index >= 1, index <= verificationKeys.count else { return nil }
        return verificationKeys[index - 1]
    }

    /// Every verification key equals the interpolation, from the first k keys, of the polynomial at its
    /// index, and that polynomial's value at 0 is the group key.
    private func isConsistentPolynomial() -> Bool {
        let base = Array(1...threshold)
        let baseShares = base.map { (index: $0, value: verificationKeys[$0 - 1]) }
        guard Shamir.interpolateInExponent(baseShares, at: .zero) == groupKey else { return false }
        for index in (threshold + 1)...max(threshold + 1, partyCount) where index <= partyCount {
            let value = Shamir.interpolateInExponent(baseShares, at: Scalar(UInt64(index)))
            if value != verificationKeys[index - 1] { return false }
        }
        return true
    }
}

/// One party's share x_i of a threshold key. Secret.
public struct ThresholdSecretShare: Sendable {
    /// The party index i (1-based).
    public let index: Int
    /// x_i = f(i).
    public let value: Scalar
    /// x_i·G, computed once: every coin-share proof states it, and it was a fixed-base multiplication per
    /// share before (about a tenth of making a share).
    public let verificationKey: GroupElement

    public init(index: Int, value: Scalar) {
        precondition(index >= 1, "party indices start at 1")
        self.index = index
        self.value = value
        self.verificationKey = GroupElement.generatorMultiple(value)
    }

    /// Whether this share matches the party's verification key.
    public func matches(_ publicKey: ThresholdPublicKey) -> Bool {
        publicKey.verificationKey(for: index) == verificationKey
    }
}

/// A share (of a coin or a decryption) that failed verification, attributed to the party that sent it.
public struct ShareVerificationError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// The index names no member.
        case unknownMember
        /// The proof does not verify for this statement (forged, or made for another coin or ciphertext).
        case invalidProof
    }

    /// The sender's claimed index.
    public let index: Int
    public let reason: Reason

    public init(index: Int, reason: Reason) {
        self.index = index
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .unknownMember: return "share claims index \(index), which is not a member"
        case .invalidProof: return "share of party \(index) has an invalid proof"
        }
    }
}

/// Combining shares failed: fewer than `threshold` distinct verified shares, or shares of different
/// statements were mixed.
public enum ShareCombinationError: Error, Hashable, Sendable {
    case notEnoughShares(distinct: Int, required: Int)
    case mixedStatements
}
