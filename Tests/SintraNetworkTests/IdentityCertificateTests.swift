import NIOSSL
import SintraCrypto
import Testing

@testable import SintraNetwork

@Suite struct IdentityCertificateTests {
    @Test func certificateCarriesTheIdentityKeyAndIsDerivedDeterministically() throws {
        let identity = try NodeIdentity(index: 3, seed: randomSeed())
        let cluster = [UInt8](repeating: 7, count: 16)
        let first = try IdentityCertificate(identity: identity, clusterIdentifier: cluster)
        let second = try IdentityCertificate(identity: identity, clusterIdentifier: cluster)
        #expect(first.publicKey == identity.publicKey.bytes)
        #expect(first.certificateBytes == second.certificateBytes)
        let parsed = try NIOSSLCertificate(bytes: first.certificateBytes, format: .der)
        let keyInfo = try parsed.extractPublicKey().toSPKIBytes()
        #expect(keyInfo == IdentityCertificate.publicKeyInfo(identity.publicKey.bytes))
    }

    @Test func pinningAcceptsOnlyOtherMembersKeys() throws {
        let identities = try (1...4).map { try NodeIdentity(index: $0, seed: randomSeed()) }
        let members = identities.map {
            ClusterMember(index: $0.index, host: "127.0.0.1", port: 1, identityKey: $0.publicKey.bytes)
        }
        let cluster = [UInt8](repeating: 1, count: 16)
        let pinning = PeerAuthentication(members: members, localMember: 1)
        for identity in identities {
            let certificate = try IdentityCertificate(identity: identity, clusterIdentifier: cluster).certificate
            #expect(pinning.member(presenting: certificate) == (identity.index == 1 ? nil : identity.index))
        }
        let stranger = try NodeIdentity(index: 2, seed: randomSeed())
        let strangerCertificate = try IdentityCertificate(identity: stranger, clusterIdentifier: cluster).certificate
        #expect(pinning.member(presenting: strangerCertificate) == nil)
    }

    /// The experiment behind using Ed25519 directly: BoringSSL builds a TLS 1.3 context from an Ed25519
    /// certificate and key restricted to the ed25519 signature algorithm (the handshake itself is exercised
    /// by every `ReplicaNetworkTests` test).
    @Test func boringSSLAcceptsEd25519Credentials() throws {
        let identity = try NodeIdentity(index: 1, seed: randomSeed())
        let credentials = try IdentityCertificate(
            identity: identity, clusterIdentifier: [UInt8](repeating: 0, count: 16))
        _ = try NIOSSLContext(configuration: PeerAuthentication.configuration(credentials: credentials))
    }
}
