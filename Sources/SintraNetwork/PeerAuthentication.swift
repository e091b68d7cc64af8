import Logging
import NIOCore
import NIOSSL
import SintraCrypto

/// Mutually authenticated TLS 1.3 between replicas, with each peer's Ed25519 key pinned from cluster.json.
///
/// Both sides present their `IdentityCertificate` and require one from the peer. BoringSSL's chain
/// verification is replaced by a custom callback that accepts the peer iff the public key of the leaf
/// certificate it presented equals the key listed for the expected member (when dialing member j: j's key;
/// when accepting: the key of any other member, which then names the peer). The TLS 1.3 CertificateVerify
/// message, which BoringSSL checks against that same leaf key whatever the callback does, proves the peer
/// holds the private key. Nothing else in the certificate (names, dates, issuer, self-signature) matters.
///
/// Ed25519 is used directly as the TLS signature algorithm (RFC 8446 §4.2.3, `ed25519` 0x0807), which
/// BoringSSL supports for TLS 1.3 once it is listed among the signature algorithms, so no second (ECDSA)
/// key and no binding between two keys are needed (checked by `IdentityCertificateTests`).
struct PeerAuthentication: Sendable {
    /// The SubjectPublicKeyInfo of every member's identity key, member i at position i − 1.
    let keyInfos: [[UInt8]]
    /// The local member index (its own key is never accepted from a peer).
    let localMember: Int

    init(members: [ClusterMember], localMember: Int) {
        keyInfos = members.map { IdentityCertificate.publicKeyInfo($0.identityKey) }
        self.localMember = localMember
    }

    /// The member whose identity key is the public key of `leaf`, other than the local member, or nil.
    func member(presenting leaf: NIOSSLCertificate) -> Int? {
        guard let keyInfo = try? leaf.extractPublicKey().toSPKIBytes() else { return nil }
        guard let offset = keyInfos.firstIndex(of: keyInfo), offset + 1 != localMember else { return nil }
        return offset + 1
    }

    /// The TLS configuration both sides use: TLS 1.3 only, Ed25519 only, a certificate required from the peer
    /// (verified by `verificationCallback`), no system trust store.
    static func configuration(credentials: IdentityCertificate) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(credentials.certificate)], privateKey: .privateKey(credentials.privateKey))
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.signingSignatureAlgorithms = [.ed25519]
        configuration.verifySignatureAlgorithms = [.ed25519]
        // Requires a certificate from the peer; the custom callback replaces chain and name checks.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        configuration.shutdownTimeout = .seconds(1)
        return configuration
    }

    /// A verification callback that accepts the peer iff its leaf certificate carries the key of `expected`
    /// (a dialed member), or of any other member when `expected` is nil (an accepted connection). The
    /// member it found is stored in `peer` for the connection's handlers; a refusal is counted and logged.
    func verificationCallback(
        expected: Int?, peer: PeerSlot, statistics: NetworkStatisticsBox, logger: Logger, remote: String
    ) -> NIOSSLCustomVerificationCallback {
        { certificates, promise in
            let found = certificates.first.flatMap { self.member(presenting: $0) }
            if let found, expected == nil || expected == found {
                peer.member = found
                promise.succeed(.certificateVerified)
                return
            }
            statistics.record(\.refusedHandshakes)
            let key = (try? certificates.first?.extractPublicKey().toSPKIBytes()).map { Hex.encode($0) }
            logger.warning(
                "refused TLS peer: key not pinned for the expected member",
                metadata: [
                    "remote": "\(remote)", "expectedMember": "\(expected.map(String.init) ?? "any")",
                    "presentedKey": "\(key ?? "none")",
                ])
            promise.succeed(.failed)
        }
    }
}

/// Where a connection's verification callback leaves the member it authenticated. Written and read on the
/// connection's event loop only (the callback and the handlers all run there).
final class PeerSlot: @unchecked Sendable {
    var member: Int?
}
