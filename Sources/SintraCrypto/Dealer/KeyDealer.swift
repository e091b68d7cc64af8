import Crypto

/// A trusted dealer for the initial keys of an n-replica cluster tolerating t Byzantine replicas.
///
/// It draws every replica's Ed25519 identity, and two independent threshold keys (the coin key and the
/// encryption key), each Shamir-shared with threshold t + 1 and published with Feldman commitments.
/// The dealer sees every secret; it runs once, offline, and its output goes to each replica over a
/// channel the operator trusts. Dealer-free generation and resharing come with group membership.
public enum KeyDealer {
    /// The largest cluster the dealer and the key files support.
    public static let replicaCountMax = 1024

    /// Why a cluster shape is refused.
    public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
        case tooFewReplicas(replicas: Int, faulty: Int)
        case negativeFaulty(Int)
        case tooManyReplicas(Int)

        public var description: String {
            switch self {
            case .tooFewReplicas(let replicas, let faulty):
                return "\(replicas) replicas cannot tolerate \(faulty) faulty ones: Byzantine agreement "
                    + "needs n ≥ 3t + 1, i.e. at least \(3 * faulty + 1) replicas for t = \(faulty)"
            case .negativeFaulty(let faulty):
                return "the number of faulty replicas must be non-negative, not \(faulty)"
            case .tooManyReplicas(let replicas):
                return "\(replicas) replicas exceeds the supported maximum of \(KeyDealer.replicaCountMax)"
            }
        }
    }

    /// Checks n ≥ 3t + 1 and the size limits.
    public static func validate(replicas: Int, faulty: Int) throws(ConfigurationError) {
        guard faulty >= 0 else { throw .negativeFaulty(faulty) }
        guard replicas <= replicaCountMax else { throw .tooManyReplicas(replicas) }
        guard replicas >= 3 * faulty + 1, replicas >= 1 else { throw .tooFewReplicas(replicas: replicas, faulty: faulty) }
    }

    /// Deals keys for `replicas` replicas tolerating `faulty` Byzantine ones.
    public static func deal<Generator: RandomNumberGenerator>(
        replicas: Int, faulty: Int, using generator: inout Generator
    ) throws(ConfigurationError) -> DealtKeys {
        try validate(replicas: replicas, faulty: faulty)
        let identities = (1...replicas).map { index in
            do {
                return try NodeIdentity(index: index, seed: randomBytes(32, using: &generator))
            } catch {
                preconditionFailure("every 32-byte seed is an Ed25519 secret key: \(error)")
            }
        }
        let coin = dealThresholdKey(replicas: replicas, threshold: faulty + 1, using: &generator)
        let encryption = dealThresholdKey(replicas: replicas, threshold: faulty + 1, using: &generator)
        let secrets = (1...replicas).map { index in
            ReplicaSecrets(
                index: index, identitySeed: identities[index - 1].seed,
                coinShare: coin.shares[index - 1], encryptionShare: encryption.shares[index - 1])
        }
        return DealtKeys(
            replicas: replicas, faulty: faulty, clusterIdentifier: randomBytes(16, using: &generator),
            identityKeys: identities.map(\.publicKey.bytes),
            coin: coin.commitments, coinPublicKey: coin.publicKey,
            encryption: encryption.commitments, encryptionPublicKey: encryption.publicKey, secrets: secrets)
    }

    /// As `deal(replicas:faulty:using:)` with the system's secure generator.
    public static func deal(replicas: Int, faulty: Int) throws(ConfigurationError) -> DealtKeys {
        var generator = SystemRandomNumberGenerator()
        return try deal(replicas: replicas, faulty: faulty, using: &generator)
    }

    private static func dealThresholdKey<Generator: RandomNumberGenerator>(
        replicas: Int, threshold: Int, using generator: inout Generator
    ) -> (commitments: FeldmanCommitments, publicKey: ThresholdPublicKey, shares: [ThresholdSecretShare]) {
        let polynomial = Shamir.randomPolynomial(
            secret: Scalar.random(using: &generator), degree: threshold - 1, using: &generator)
        let shares = (1...replicas).map { ThresholdSecretShare(index: $0, value: polynomial.share(for: $0)) }
        let commitments = polynomial.commitments
        let publicKey: ThresholdPublicKey
        do {
            publicKey = try ThresholdPublicKey(
                threshold: threshold, groupKey: commitments.publicKey,
                verificationKeys: shares.map { GroupElement.generatorMultiple($0.value) })
        } catch {
            preconditionFailure("shares of one polynomial always form a consistent key: \(error)")
        }
        return (commitments, publicKey, shares)
    }
}

/// Everything the dealer produced: the public material and each replica's secrets.
public struct DealtKeys: Sendable {
    public let replicas: Int
    public let faulty: Int
    /// 16 random bytes naming this cluster; bound into frames and files so keys of two clusters never mix.
    public let clusterIdentifier: [UInt8]
    /// Ed25519 public keys (32 bytes each), member i at position i − 1.
    public let identityKeys: [[UInt8]]
    public let coin: FeldmanCommitments
    /// The coin key's public side (threshold t + 1).
    public let coinPublicKey: ThresholdPublicKey
    public let encryption: FeldmanCommitments
    /// The encryption key's public side (threshold t + 1).
    public let encryptionPublicKey: ThresholdPublicKey
    public let secrets: [ReplicaSecrets]
}

/// One replica's secrets. Each goes into its own file, readable by that replica only.
public struct ReplicaSecrets: Sendable {
    public let index: Int
    /// The RFC 8032 secret key (seed) of the replica's Ed25519 identity.
    public let identitySeed: [UInt8]
    public let coinShare: ThresholdSecretShare
    public let encryptionShare: ThresholdSecretShare

    public init(
        index: Int, identitySeed: [UInt8], coinShare: ThresholdSecretShare, encryptionShare: ThresholdSecretShare
    ) {
        self.index = index
        self.identitySeed = identitySeed
        self.coinShare = coinShare
        self.encryptionShare = encryptionShare
    }

    public var identity: NodeIdentity {
        get throws(DecodingError) { try NodeIdentity(index: index, seed: identitySeed) }
    }
}
