import SintraCrypto

/// The members of one protocol group and every quorum size, named once (PROTOCOLS.md §0).
///
/// n parties, at most t Byzantine, n > 3t. Party indices are 1…n.
/// - `quorum` q = n − t: the most a party can wait for; two q-sets share at least t + 1 parties, so an
///   honest one.
/// - `weakQuorum` k = t + 1: contains at least one honest party.
/// - `echoQuorum` e = ⌈(n + t + 1)/2⌉: two e-sets share at least t + 1 parties; e = 2t + 1 = q when n = 3t + 1.
public struct GroupConfiguration: Sendable {
    public let replicas: Int
    public let faulty: Int
    /// 16 bytes naming the cluster; in every frame header.
    public let clusterIdentifier: [UInt8]
    /// Ed25519 keys, member i at position i − 1.
    public let memberKeys: [MemberPublicKey]
    /// The threshold coin's public key (threshold t + 1).
    public let coinKey: ThresholdPublicKey
    /// The threshold encryption public key (threshold t + 1).
    public let encryptionKey: ThresholdPublicKey

    public enum Failure: Error, Hashable, Sendable {
        case resilience(replicas: Int, faulty: Int)
        case memberCount(expected: Int, actual: Int)
        case thresholdMismatch
    }

    public init(
        replicas: Int, faulty: Int, clusterIdentifier: [UInt8], memberKeys: [MemberPublicKey],
        coinKey: ThresholdPublicKey, encryptionKey: ThresholdPublicKey
    ) throws(Failure) {
        guard faulty >= 0, replicas > 3 * faulty, replicas <= KeyDealer.replicaCountMax else {
            throw .resilience(replicas: replicas, faulty: faulty)
        }
        guard memberKeys.count == replicas else { throw .memberCount(expected: replicas, actual: memberKeys.count) }
        guard coinKey.partyCount == replicas, encryptionKey.partyCount == replicas,
            coinKey.threshold == faulty + 1, encryptionKey.threshold == faulty + 1
        else { throw .thresholdMismatch }
        self.replicas = replicas
        self.faulty = faulty
        self.clusterIdentifier = clusterIdentifier
        self.memberKeys = memberKeys
        self.coinKey = coinKey
        self.encryptionKey = encryptionKey
    }

    /// The group described by a validated cluster.json.
    public init(cluster: ClusterConfiguration) throws(Failure) {
        try self.init(
            replicas: cluster.replicas, faulty: cluster.faulty, clusterIdentifier: cluster.clusterIdentifier,
            memberKeys: cluster.signingKeys, coinKey: cluster.coin, encryptionKey: cluster.encryption)
    }

    /// n − t.
    public var quorum: Int { replicas - faulty }
    /// t + 1.
    public var weakQuorum: Int { faulty + 1 }
    /// ⌈(n + t + 1)/2⌉.
    public var echoQuorum: Int { (replicas + faulty + 2) / 2 }

    /// All member indices in increasing order.
    public var members: ClosedRange<Int> { 1...replicas }

    public func isMember(_ index: Int) -> Bool { index >= 1 && index <= replicas }
}

/// One replica's secrets as the protocols use them.
public struct LocalKeys: Sendable {
    public let identity: NodeIdentity
    public let coinShare: ThresholdSecretShare
    public let encryptionShare: ThresholdSecretShare

    public init(identity: NodeIdentity, coinShare: ThresholdSecretShare, encryptionShare: ThresholdSecretShare) {
        precondition(identity.index == coinShare.index && coinShare.index == encryptionShare.index)
        self.identity = identity
        self.coinShare = coinShare
        self.encryptionShare = encryptionShare
    }

    public init(secrets: ReplicaSecrets) throws(DecodingError) {
        self.init(identity: try secrets.identity, coinShare: secrets.coinShare, encryptionShare: secrets.encryptionShare)
    }

    public var index: Int { identity.index }
}
