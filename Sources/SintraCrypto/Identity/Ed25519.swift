import Crypto

/// Ed25519 signing and strict verification (RFC 8032 §5.1.6 and §5.1.7) on Sintra's own edwards25519
/// arithmetic, with SHA-512 from swift-crypto.
///
/// Why not swift-crypto's Ed25519: the same semantics are needed on every replica — canonical S below ℓ,
/// canonical R, and (with `MemberPublicKey`'s prime-order keys) no cofactor ambiguity — and this code
/// is built optimised even in debug builds, where the protocol test suites verify hundreds of thousands
/// of signatures. The tests check it against RFC 8032, Wycheproof, C2SP CCTV and swift-crypto itself.
enum Ed25519 {
    /// The expanded secret key of RFC 8032 §5.1.5.
    struct ExpandedSecret: Sendable {
        /// The clamped scalar s, reduced modulo ℓ (s·B is unchanged by the reduction, B has order ℓ).
        let scalar: Scalar
        /// The second half of SHA-512(seed), which keys the deterministic nonce.
        let prefix: [UInt8]
        /// The encoded public key A = s·B.
        let publicKey: [UInt8]

        init(seed: [UInt8]) {
            precondition(seed.count == 32, "Ed25519 seeds are 32 bytes")
            var digest = Array(SHA512.hash(data: seed))
            digest[0] &= 248
            digest[31] &= 127
            digest[31] |= 64
            scalar = Scalar(reducing32: digest[0..<32])
            prefix = Array(digest[32..<64])
            publicKey = EdwardsPoint.multiplyBase(by: scalar).ed25519Encoding
        }
    }

    /// RFC 8032 §5.1.6: R = r·B with r = H(prefix ‖ M), S = r + H(R ‖ A ‖ M)·s.
    static func sign(_ message: [UInt8], with secret: ExpandedSecret) -> [UInt8] {
        var nonceHash = SHA512()
        nonceHash.update(data: secret.prefix)
        nonceHash.update(data: message)
        let nonce = Scalar(reducing64: Array(nonceHash.finalize()))
        let commitment = EdwardsPoint.multiplyBase(by: nonce).ed25519Encoding
        let challenge = challenge(commitment: commitment, publicKey: secret.publicKey, message: message)
        return commitment + (nonce + challenge * secret.scalar).bytes
    }

    /// RFC 8032 §5.1.7 with the cofactorless equation [S]B = R + [k]A, comparing encodings (so a
    /// non-canonical R never verifies) and rejecting S ≥ ℓ.
    static func verify(
        _ signature: some Collection<UInt8>, message: [UInt8], publicKey: EdwardsPoint, publicKeyBytes: [UInt8]
    ) -> Bool {
        let bytes = Array(signature)
        guard bytes.count == 64, let s = try? Scalar(canonicalBytes: bytes[32..<64]) else { return false }
        let commitment = Array(bytes[0..<32])
        let k = challenge(commitment: commitment, publicKey: publicKeyBytes, message: message)
        let check = EdwardsPoint.multiscalarMultiplyVariableTime([s, -k], [.basePoint, publicKey])
        return check.ed25519Encoding == commitment
    }

    private static func challenge(commitment: [UInt8], publicKey: [UInt8], message: [UInt8]) -> Scalar {
        var hash = SHA512()
        hash.update(data: commitment)
        hash.update(data: publicKey)
        hash.update(data: message)
        return Scalar(reducing64: Array(hash.finalize()))
    }
}

extension EdwardsPoint {
    /// RFC 8032 §5.1.2 encoding: y with the sign of x in the top bit.
    var ed25519Encoding: [UInt8] {
        let zInverse = z.inverted()
        let affineX = x * zInverse
        var bytes = (y * zInverse).encoded()
        bytes[31] |= UInt8(truncatingIfNeeded: affineX.isNegative.bit << 7)
        return bytes
    }
}
