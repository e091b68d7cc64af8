import Foundation

/// A replica's network address and identity as listed in cluster.json.
public struct ClusterMember: Sendable, Equatable {
    /// 1-based member index.
    public let index: Int
    public let host: String
    public let port: Int
    /// Ed25519 public key (32 bytes).
    public let identityKey: [UInt8]

    public init(index: Int, host: String, port: Int, identityKey: [UInt8]) {
        self.index = index
        self.host = host
        self.port = port
        self.identityKey = identityKey
    }

    public var signingKey: MemberPublicKey {
        get throws(DecodingError) {
            do {
                return try MemberPublicKey(bytes: identityKey)
            } catch {
                throw DecodingError(error.reason, in: "member \(index) identity key")
            }
        }
    }
}

/// The public configuration of a cluster: cluster.json.
///
/// JSON with group elements as hex of their 32-byte RFC 9496 encodings and scalars as hex of 32-byte
/// little-endian values, so any ristretto255 library can check the file. Loading validates everything:
/// n ≥ 3t + 1, members 1…n in order with distinct keys, thresholds t + 1, canonical encodings, and that
/// every verification key lies on the committed (Feldman) polynomial.
public struct ClusterConfiguration: Sendable {
    public static let formatName = "sintra-cluster-v1"
    public static let fileBytesMax = 16 << 20

    public let clusterIdentifier: [UInt8]
    public let replicas: Int
    public let faulty: Int
    public let members: [ClusterMember]
    public let coin: ThresholdPublicKey
    public let coinCommitments: FeldmanCommitments
    public let encryption: ThresholdPublicKey
    public let encryptionCommitments: FeldmanCommitments

    /// The public configuration of freshly dealt keys, with replica i at host:basePort + i − 1.
    public init(keys: DealtKeys, host: String, basePort: Int) {
        clusterIdentifier = keys.clusterIdentifier
        replicas = keys.replicas
        faulty = keys.faulty
        members = keys.identityKeys.enumerated().map { offset, key in
            ClusterMember(index: offset + 1, host: host, port: basePort + offset, identityKey: key)
        }
        coin = keys.coinPublicKey
        coinCommitments = keys.coin
        encryption = keys.encryptionPublicKey
        encryptionCommitments = keys.encryption
    }

    /// Parses and validates cluster.json.
    public init(json data: Data) throws(DecodingError) {
        let context = "cluster configuration"
        guard data.count <= ClusterConfiguration.fileBytesMax else {
            throw DecodingError(.tooLong(maximum: ClusterConfiguration.fileBytesMax, actual: data.count), in: context)
        }
        let file: ClusterFile
        do {
            file = try JSONDecoder().decode(ClusterFile.self, from: data)
        } catch {
            throw DecodingError(.invalidValue("not a valid cluster file: \(error)"), in: context)
        }
        guard file.format == ClusterConfiguration.formatName else {
            throw DecodingError(.invalidValue("unknown format \(file.format)"), in: context)
        }
        do {
            try KeyDealer.validate(replicas: file.replicas, faulty: file.faulty)
        } catch {
            throw DecodingError(.invalidValue(error.description), in: context)
        }
        clusterIdentifier = try Hex.decode(file.clusterId, context: "clusterId")
        guard clusterIdentifier.count == 16 else {
            throw DecodingError(.wrongLength(expected: 16, actual: clusterIdentifier.count), in: "clusterId")
        }
        replicas = file.replicas
        faulty = file.faulty
        guard file.members.count == replicas else {
            throw DecodingError(.invalidValue("\(file.members.count) members listed for \(replicas) replicas"), in: context)
        }
        var members = [ClusterMember]()
        for (offset, entry) in file.members.enumerated() {
            guard entry.index == offset + 1 else {
                throw DecodingError(.invalidValue("members must be listed in order 1…n"), in: "member \(entry.index)")
            }
            guard (1...65535).contains(entry.port), !entry.host.isEmpty else {
                throw DecodingError(.invalidValue("bad address \(entry.host):\(entry.port)"), in: "member \(entry.index)")
            }
            let key = try Hex.decode(entry.identityKey, context: "member \(entry.index) identityKey")
            let member = ClusterMember(index: entry.index, host: entry.host, port: entry.port, identityKey: key)
            _ = try member.signingKey
            guard !members.contains(where: { $0.identityKey == key }) else {
                throw DecodingError(.invalidValue("identity key repeated"), in: "member \(entry.index)")
            }
            members.append(member)
        }
        self.members = members
        (coin, coinCommitments) = try file.coin.decode(replicas: replicas, faulty: faulty, context: "coin key")
        (encryption, encryptionCommitments) = try file.encryption.decode(
            replicas: replicas, faulty: faulty, context: "encryption key")
    }

    /// Pretty-printed JSON with sorted keys.
    public func json() -> Data {
        let file = ClusterFile(
            format: ClusterConfiguration.formatName, clusterId: Hex.encode(clusterIdentifier),
            replicas: replicas, faulty: faulty,
            members: members.map {
                ClusterFile.Member(index: $0.index, host: $0.host, port: $0.port, identityKey: Hex.encode($0.identityKey))
            },
            coin: ClusterFile.ThresholdKey(coin, commitments: coinCommitments),
            encryption: ClusterFile.ThresholdKey(encryption, commitments: encryptionCommitments))
        return KeyFileCoding.encode(file)
    }

    /// Ed25519 public keys of all members, member i at position i − 1.
    public var signingKeys: [MemberPublicKey] {
        // Every key was validated when the configuration was built.
        members.map { member in
            do {
                return try member.signingKey
            } catch {
                preconditionFailure("member keys are validated on load: \(error)")
            }
        }
    }
}

/// A replica's secret file: replica-I.secret.
public struct ReplicaSecretFile: Sendable {
    public static let formatName = "sintra-replica-secret-v1"

    public let clusterIdentifier: [UInt8]
    public let secrets: ReplicaSecrets

    public init(clusterIdentifier: [UInt8], secrets: ReplicaSecrets) {
        self.clusterIdentifier = clusterIdentifier
        self.secrets = secrets
    }

    public func json() -> Data {
        KeyFileCoding.encode(SecretFile(
            format: ReplicaSecretFile.formatName, clusterId: Hex.encode(clusterIdentifier), index: secrets.index,
            identitySeed: Hex.encode(secrets.identitySeed), coinShare: Hex.encode(secrets.coinShare.value.bytes),
            encryptionShare: Hex.encode(secrets.encryptionShare.value.bytes)))
    }

    /// Parses a secret file and checks it against the cluster: same cluster, a member index, and keys that
    /// match the member's identity key and both verification keys.
    public init(json data: Data, cluster: ClusterConfiguration) throws(DecodingError) {
        let context = "replica secret file"
        guard data.count <= 1 << 16 else {
            throw DecodingError(.tooLong(maximum: 1 << 16, actual: data.count), in: context)
        }
        let file: SecretFile
        do {
            file = try JSONDecoder().decode(SecretFile.self, from: data)
        } catch {
            throw DecodingError(.invalidValue("not a valid secret file: \(error)"), in: context)
        }
        guard file.format == ReplicaSecretFile.formatName else {
            throw DecodingError(.invalidValue("unknown format \(file.format)"), in: context)
        }
        clusterIdentifier = try Hex.decode(file.clusterId, context: "clusterId")
        guard clusterIdentifier == cluster.clusterIdentifier else {
            throw DecodingError(.invalidValue("belongs to another cluster"), in: context)
        }
        guard (1...cluster.replicas).contains(file.index) else {
            throw DecodingError(.invalidValue("index \(file.index) is not a member"), in: context)
        }
        let seed = try Hex.decode(file.identitySeed, context: "identitySeed")
        let identity = try NodeIdentity(index: file.index, seed: seed)
        guard identity.publicKey.bytes == cluster.members[file.index - 1].identityKey else {
            throw DecodingError(.invalidValue("identity does not match the member's public key"), in: context)
        }
        let coinShare = ThresholdSecretShare(
            index: file.index, value: try Scalar(canonicalBytes: try Hex.decode(file.coinShare, context: "coinShare")))
        let encryptionShare = ThresholdSecretShare(
            index: file.index,
            value: try Scalar(canonicalBytes: try Hex.decode(file.encryptionShare, context: "encryptionShare")))
        guard coinShare.matches(cluster.coin) else {
            throw DecodingError(.invalidValue("coin share does not match its verification key"), in: context)
        }
        guard encryptionShare.matches(cluster.encryption) else {
            throw DecodingError(.invalidValue("encryption share does not match its verification key"), in: context)
        }
        secrets = ReplicaSecrets(
            index: file.index, identitySeed: seed, coinShare: coinShare, encryptionShare: encryptionShare)
    }
}

// MARK: JSON shapes

private struct ClusterFile: Codable {
    struct Member: Codable {
        let index: Int
        let host: String
        let port: Int
        let identityKey: String
    }

    struct ThresholdKey: Codable {
        let threshold: Int
        let groupKey: String
        let verificationKeys: [String]
        let commitments: [String]

        init(_ key: ThresholdPublicKey, commitments: FeldmanCommitments) {
            threshold = key.threshold
            groupKey = Hex.encode(key.groupKey.encoded)
            verificationKeys = key.verificationKeys.map { Hex.encode($0.encoded) }
            self.commitments = commitments.coefficients.map { Hex.encode($0.encoded) }
        }

        func decode(replicas: Int, faulty: Int, context: String) throws(DecodingError)
            -> (ThresholdPublicKey, FeldmanCommitments)
        {
            guard threshold == faulty + 1 else {
                throw DecodingError(.invalidValue("threshold must be t + 1 = \(faulty + 1)"), in: context)
            }
            guard verificationKeys.count == replicas, commitments.count == threshold else {
                throw DecodingError(.invalidValue("wrong number of verification keys or commitments"), in: context)
            }
            func element(_ text: String, _ what: String) throws(DecodingError) -> GroupElement {
                let bytes = try Hex.decode(text, context: "\(context) \(what)")
                do {
                    return try GroupElement(encoded: bytes)
                } catch {
                    throw DecodingError(error.reason, in: "\(context) \(what)")
                }
            }
            var verification = [GroupElement]()
            for (offset, text) in verificationKeys.enumerated() {
                verification.append(try element(text, "verification key \(offset + 1)"))
            }
            var committed = [GroupElement]()
            for (offset, text) in commitments.enumerated() {
                committed.append(try element(text, "commitment \(offset)"))
            }
            let feldman = FeldmanCommitments(coefficients: committed)
            let key = try ThresholdPublicKey(
                threshold: threshold, groupKey: try element(groupKey, "group key"), verificationKeys: verification)
            guard feldman.publicKey == key.groupKey,
                (1...replicas).allSatisfy({ feldman.verificationKey(for: $0) == verification[$0 - 1] })
            else {
                throw DecodingError(.invalidValue("verification keys do not match the commitments"), in: context)
            }
            return (key, feldman)
        }
    }

    let format: String
    let clusterId: String
    let replicas: Int
    let faulty: Int
    let members: [Member]
    let coin: ThresholdKey
    let encryption: ThresholdKey
}

private struct SecretFile: Codable {
    let format: String
    let clusterId: String
    let index: Int
    let identitySeed: String
    let coinShare: String
    let encryptionShare: String
}

private enum KeyFileCoding {
    static func encode<Value: Encodable>(_ value: Value) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(value)
        } catch {
            preconditionFailure("key file shapes always encode: \(error)")
        }
    }
}
