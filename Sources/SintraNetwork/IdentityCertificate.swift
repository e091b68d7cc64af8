import Crypto
import Foundation
import NIOSSL
import SintraCrypto
import SwiftASN1
import X509

/// A replica's TLS credentials: a self-signed X.509 certificate for its Ed25519 identity key, and that key
/// in the form BoringSSL loads.
///
/// The certificate is derived at startup from the identity seed (`ReplicaSecretFile`, `NodeIdentity.seed`)
/// rather than written by `sintra keygen`. The two are equivalent: the certificate carries no secret (only
/// the public key, fixed names and dates, and a signature by the key itself), so it can be re-derived at any
/// time by whoever holds the seed; and peers never compare certificate bytes. They pin the Ed25519 public key
/// listed for the member in cluster.json and accept a certificate iff its subject public key equals that key
/// (`PeerKeyPinning`). TLS 1.3 itself proves possession of the key (CertificateVerify), so whatever else the
/// certificate says, validity dates, names or its self-signature, grants nothing. Deriving it keeps the key
/// files as they are and leaves nothing to go stale when a key file is replaced.
///
/// Every field is fixed, so the certificate is the same bytes on every start where Ed25519 signing is
/// deterministic (RFC 8032, as swift-crypto's BoringSSL backend on Linux signs); pinning does not rely on it.
public struct IdentityCertificate: Sendable {
    /// The RFC 8410 §7 PKCS #8 prefix of an Ed25519 private key: version 0, id-Ed25519, and the 32-byte seed
    /// wrapped in an OCTET STRING.
    static let privateKeyInfoPrefix: [UInt8] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    /// The RFC 8410 §4 SubjectPublicKeyInfo prefix of an Ed25519 public key (id-Ed25519, a 33-byte BIT STRING).
    static let publicKeyInfoPrefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]

    /// Start of validity: any fixed date in the past.
    static let validFrom = Date(timeIntervalSince1970: 946_684_800)  // 2000-01-01T00:00:00Z
    /// End of validity: RFC 5280 §4.1.2.5's "no well-defined expiration date", 9999-12-31T23:59:59Z.
    static let validUntil = Date(timeIntervalSince1970: 253_402_300_799)

    /// The member this certificate belongs to.
    public let member: Int
    /// The 32-byte Ed25519 public key the certificate carries.
    public let publicKey: [UInt8]
    /// The DER encoding of the certificate.
    public let certificateBytes: [UInt8]

    let certificate: NIOSSLCertificate
    let privateKey: NIOSSLPrivateKey

    /// Derives the certificate of `identity` for the cluster `clusterIdentifier`.
    ///
    /// - Throws: `IdentityCertificateError` if a library refuses the key or the certificate, which does not
    ///   happen for a valid seed.
    public init(identity: NodeIdentity, clusterIdentifier: [UInt8]) throws(IdentityCertificateError) {
        let signingKey: Curve25519.Signing.PrivateKey
        do {
            signingKey = try Curve25519.Signing.PrivateKey(rawRepresentation: identity.seed)
        } catch {
            throw IdentityCertificateError("identity seed refused: \(error)")
        }
        let publicKey = Array(signingKey.publicKey.rawRepresentation)
        guard publicKey == identity.publicKey.bytes else {
            throw IdentityCertificateError("swift-crypto derives another public key from the identity seed")
        }
        let serial = Array(SHA256.hash(data: IdentityCertificate.publicKeyInfo(publicKey)).prefix(16))
        do {
            let name = try DistinguishedName {
                OrganizationName("Sintra cluster \(Hex.encode(clusterIdentifier))")
                CommonName("replica \(identity.index)")
            }
            let certificate = try Certificate(
                version: .v3,
                // A positive serial number of at most 20 bytes (RFC 5280 §4.1.2.2), fixed per key.
                serialNumber: Certificate.SerialNumber(bytes: [serial[0] & 0x7f] + serial.dropFirst()),
                publicKey: Certificate.PublicKey(signingKey.publicKey),
                notValidBefore: IdentityCertificate.validFrom,
                notValidAfter: IdentityCertificate.validUntil,
                issuer: name,
                subject: name,
                signatureAlgorithm: .ed25519,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                },
                issuerPrivateKey: Certificate.PrivateKey(signingKey)
            )
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            certificateBytes = serializer.serializedBytes
            self.certificate = try NIOSSLCertificate(bytes: certificateBytes, format: .der)
            self.privateKey = try NIOSSLPrivateKey(
                bytes: IdentityCertificate.privateKeyInfoPrefix + identity.seed, format: .der)
        } catch {
            throw IdentityCertificateError("certificate construction failed: \(error)")
        }
        self.member = identity.index
        self.publicKey = publicKey
    }

    /// The DER SubjectPublicKeyInfo of a 32-byte Ed25519 public key, as BoringSSL reports a peer's key.
    static func publicKeyInfo(_ key: [UInt8]) -> [UInt8] {
        precondition(key.count == 32, "Ed25519 public keys are 32 bytes")
        return publicKeyInfoPrefix + key
    }
}

/// A certificate or key that TLS libraries refused.
public struct IdentityCertificateError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
