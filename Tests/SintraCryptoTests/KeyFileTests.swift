import Foundation
import Testing

@testable import SintraCrypto

/// cluster.json and replica-I.secret: round trips and validation of everything a tampered file could change.
@Suite struct KeyFileTests {
    static func dealt(n: Int = 4, t: Int = 1, seed: UInt64 = 5) throws -> DealtKeys {
        var random = TestRandom(seed: seed)
        return try KeyDealer.deal(replicas: n, faulty: t, using: &random)
    }

    @Test func dealerRefusesTooFewReplicas() {
        var random = TestRandom(seed: 1)
        #expect(throws: KeyDealer.ConfigurationError.tooFewReplicas(replicas: 3, faulty: 1)) {
            try KeyDealer.deal(replicas: 3, faulty: 1, using: &random)
        }
        #expect(throws: KeyDealer.ConfigurationError.tooFewReplicas(replicas: 9, faulty: 3)) {
            try KeyDealer.deal(replicas: 9, faulty: 3, using: &random)
        }
        #expect(throws: KeyDealer.ConfigurationError.negativeFaulty(-1)) {
            try KeyDealer.deal(replicas: 4, faulty: -1, using: &random)
        }
    }

    @Test(arguments: [(4, 1), (7, 2), (10, 3)]) func roundTripAndValidate(n: Int, t: Int) throws {
        let keys = try Self.dealt(n: n, t: t, seed: UInt64(n))
        let configuration = ClusterConfiguration(keys: keys, host: "10.0.0.1", basePort: 9000)
        let loaded = try ClusterConfiguration(json: configuration.json())
        #expect(loaded.replicas == n && loaded.faulty == t)
        #expect(loaded.members.map(\.port) == Array(9000..<(9000 + n)))
        #expect(loaded.coin == keys.coinPublicKey)
        #expect(loaded.encryption == keys.encryptionPublicKey)
        #expect(loaded.coinCommitments == keys.coin)
        for secrets in keys.secrets {
            let file = ReplicaSecretFile(clusterIdentifier: keys.clusterIdentifier, secrets: secrets)
            let back = try ReplicaSecretFile(json: file.json(), cluster: loaded)
            #expect(back.secrets.index == secrets.index)
            #expect(back.secrets.coinShare.value == secrets.coinShare.value)
            #expect(back.secrets.encryptionShare.value == secrets.encryptionShare.value)
            #expect(back.secrets.identitySeed == secrets.identitySeed)
        }
    }

    private func tampered(_ json: Data, _ change: (inout [String: Any]) -> Void) throws -> Data {
        var object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        change(&object)
        return try JSONSerialization.data(withJSONObject: object)
    }

    @Test func tamperedClusterFilesAreRejected() throws {
        let keys = try Self.dealt()
        let json = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: 7100).json()
        let changes: [(String, (inout [String: Any]) -> Void)] = [
            ("n < 3t + 1", { $0["faulty"] = 2 }),
            ("format", { $0["format"] = "something-else" }),
            ("cluster id", { $0["clusterId"] = "zz" }),
            ("one member missing", { object in
                guard let members = object["members"] as? [Any] else { return }
                object["members"] = Array(members.dropLast())
            }),
            ("verification key swapped", { object in
                guard var coin = object["coin"] as? [String: Any], var keys = coin["verificationKeys"] as? [String] else { return }
                keys.swapAt(0, 1)
                coin["verificationKeys"] = keys
                object["coin"] = coin
            }),
            ("group key replaced", { object in
                guard var coin = object["encryption"] as? [String: Any] else { return }
                coin["groupKey"] = String(repeating: "00", count: 32)
                object["encryption"] = coin
            }),
            ("threshold", { object in
                guard var coin = object["coin"] as? [String: Any] else { return }
                coin["threshold"] = 3
                object["coin"] = coin
            }),
            ("duplicate identity", { object in
                guard var members = object["members"] as? [[String: Any]] else { return }
                members[1]["identityKey"] = members[0]["identityKey"]
                object["members"] = members
            }),
            ("low-order identity key", { object in
                guard var members = object["members"] as? [[String: Any]] else { return }
                members[1]["identityKey"] = "01" + String(repeating: "00", count: 31)
                object["members"] = members
            }),
            ("port", { object in
                guard var members = object["members"] as? [[String: Any]] else { return }
                members[0]["port"] = 70000
                object["members"] = members
            }),
        ]
        for (what, change) in changes {
            let data = try tampered(json, change)
            #expect(throws: DecodingError.self, "\(what)") { try ClusterConfiguration(json: data) }
        }
        #expect(throws: DecodingError.self) { try ClusterConfiguration(json: Data("not json".utf8)) }
        #expect(throws: DecodingError.self) { try ClusterConfiguration(json: Data()) }
    }

    @Test func secretFilesMustMatchTheirCluster() throws {
        let keys = try Self.dealt()
        let cluster = try ClusterConfiguration(json: ClusterConfiguration(keys: keys, host: "h", basePort: 1).json())
        let good = ReplicaSecretFile(clusterIdentifier: keys.clusterIdentifier, secrets: keys.secrets[1]).json()
        let otherCluster = try ClusterConfiguration(
            json: ClusterConfiguration(keys: try Self.dealt(seed: 77), host: "h", basePort: 1).json())
        #expect(throws: DecodingError.self) { try ReplicaSecretFile(json: good, cluster: otherCluster) }
        let wrongIndex = try tampered(good) { $0["index"] = 3 }
        #expect(throws: DecodingError.self) { try ReplicaSecretFile(json: wrongIndex, cluster: cluster) }
        let outsider = try tampered(good) { $0["index"] = 9 }
        #expect(throws: DecodingError.self) { try ReplicaSecretFile(json: outsider, cluster: cluster) }
        let wrongShare = try tampered(good) { $0["coinShare"] = Hex.encode(Scalar(5).bytes) }
        #expect(throws: DecodingError.self) { try ReplicaSecretFile(json: wrongShare, cluster: cluster) }
        let nonCanonical = try tampered(good) { $0["encryptionShare"] = String(repeating: "ff", count: 32) }
        #expect(throws: DecodingError.self) { try ReplicaSecretFile(json: nonCanonical, cluster: cluster) }
        // A cluster file whose (self-consistent) coin key was replaced by another cluster's: the replica's
        // share no longer matches its verification key.
        let clusterJSON = ClusterConfiguration(keys: keys, host: "h", basePort: 1).json()
        let foreign = ClusterConfiguration(keys: try Self.dealt(seed: 78), host: "h", basePort: 1).json()
        let foreignObject = try #require(try JSONSerialization.jsonObject(with: foreign) as? [String: Any])
        let swapped = try ClusterConfiguration(json: try tampered(clusterJSON) { $0["coin"] = foreignObject["coin"] })
        #expect(throws: DecodingError.self) { try ReplicaSecretFile(json: good, cluster: swapped) }
    }
}
