import Crypto

/// TDH2, the chosen-ciphertext-secure threshold cryptosystem of Shoup and Gennaro ("Securing threshold
/// cryptosystems against chosen ciphertext attack", J. Cryptology 15(2), 2002, §5 "The TDH2 scheme"),
/// over ristretto255, with labels, used hybrid: the shared Diffie–Hellman value keys an AEAD
/// (ChaCha20-Poly1305 from swift-crypto), so the payload may have any size.
///
/// Encryption of m under label L with public key h = x·G and a second generator Ḡ:
///   r, s random; K = r·h; c = AEAD_{KDF(K, u)}(m, aad: L); u = r·G; ū = r·Ḡ; w = s·G; w̄ = s·Ḡ;
///   e = H2(h, c, L, u, w, ū, w̄); f = s + r·e. Ciphertext (c, L, u, ū, e, f).
/// Anyone checks validity: e = H2(h, c, L, u, f·G − e·u, ū, f·Ḡ − e·ū) (the proof that log_G u = log_Ḡ ū
/// is what makes the scheme CCA secure). Party i's decryption share is u_i = x_i·u with a Chaum–Pedersen
/// proof that log_G h_i = log_u u_i; any t + 1 verified shares give K = Σ λ_i·u_i.
///
/// Safety rule from the paper (and PROTOCOLS.md §2): never produce a decryption share for an invalid
/// ciphertext; `decryptionShare(for:)` enforces it.
public enum ThresholdEncryption {
    /// Largest label in bytes.
    public static let labelBytesMax = 4096
    /// Largest payload (plaintext) in bytes.
    public static let payloadBytesMax = 1 << 24
    /// AEAD tag length (ChaCha20-Poly1305).
    static let tagBytes = 16

    static let proofDomain = "sintra-v1/tdh2-decryption-share"

    /// The second generator Ḡ, whose discrete logarithm to G nobody knows (a hash to the group).
    public static let secondGenerator = HashToGroup.element(
        Array("second generator".utf8), domain: Array("sintra-v1/tdh2-gbar".utf8))

    /// A TDH2 ciphertext.
    public struct Ciphertext: Sendable, Equatable {
        public let label: [UInt8]
        /// AEAD ciphertext followed by its tag.
        public let body: [UInt8]
        public let u: GroupElement
        public let uBar: GroupElement
        public let e: Scalar
        public let f: Scalar

        public init(label: [UInt8], body: [UInt8], u: GroupElement, uBar: GroupElement, e: Scalar, f: Scalar) {
            self.label = label
            self.body = body
            self.u = u
            self.uBar = uBar
            self.e = e
            self.f = f
        }

        public var encoded: [UInt8] {
            var writer = ByteWriter(capacity: label.count + body.count + 140)
            writer.writeVariable(label)
            writer.writeVariable(body)
            writer.write(u)
            writer.write(uBar)
            writer.write(e)
            writer.write(f)
            return writer.bytes
        }

        /// Decodes a ciphertext; checks sizes and encodings, not validity (see `isValid`).
        public init(encoded bytes: some Collection<UInt8>) throws(DecodingError) {
            var reader = ByteReader(bytes, context: "TDH2 ciphertext")
            label = try reader.readVariable(maximum: ThresholdEncryption.labelBytesMax)
            body = try reader.readVariable(maximum: ThresholdEncryption.payloadBytesMax + ThresholdEncryption.tagBytes)
            guard body.count >= ThresholdEncryption.tagBytes else {
                throw DecodingError(.truncated, in: "TDH2 ciphertext body")
            }
            u = try reader.readElement()
            uBar = try reader.readElement()
            e = try reader.readScalar()
            f = try reader.readScalar()
            try reader.finish()
        }

        /// SHA-256 of the encoding: names this ciphertext in decryption-share proofs.
        public var digest: [UInt8] { Array(SHA256.hash(data: encoded)) }
    }

    /// One party's decryption share.
    public struct DecryptionShare: Sendable, Equatable {
        public let index: Int
        /// u_i = x_i·u.
        public let value: GroupElement
        public let proof: EqualityProof

        public init(index: Int, value: GroupElement, proof: EqualityProof) {
            self.index = index
            self.value = value
            self.proof = proof
        }

        public static let encodedLength = 2 + 32 + EqualityProof.encodedLength

        public var encoded: [UInt8] {
            var writer = ByteWriter(capacity: DecryptionShare.encodedLength)
            writer.write(UInt16(index))
            writer.write(value)
            writer.writeFixed(proof.encoded)
            return writer.bytes
        }

        public init(encoded bytes: some Collection<UInt8>) throws(DecodingError) {
            var reader = ByteReader(bytes, context: "TDH2 decryption share")
            index = Int(try reader.readUInt16())
            value = try reader.readElement()
            proof = try EqualityProof(encoded: try reader.readFixed(EqualityProof.encodedLength))
            try reader.finish()
        }
    }

    /// A decryption share checked against one ciphertext.
    public struct VerifiedDecryptionShare: Sendable {
        public let share: DecryptionShare
        let ciphertextDigest: [UInt8]
    }

    /// Why encryption, share production or combination failed.
    public enum Failure: Error, Hashable, Sendable {
        case labelTooLong(Int)
        case payloadTooLong(Int)
        /// The ciphertext's proof does not verify; no share may be produced for it.
        case invalidCiphertext
        /// The AEAD rejected the body: the encryptor sent a well-formed but undecryptable ciphertext. All
        /// honest parties reach the same result.
        case authenticationFailed
    }

    static func challenge(
        publicKey: GroupElement, body: [UInt8], label: [UInt8],
        u: GroupElement, w: GroupElement, uBar: GroupElement, wBar: GroupElement
    ) -> Scalar {
        var writer = ByteWriter(capacity: body.count + label.count + 200)
        writer.write(publicKey)
        writer.writeVariable(body)
        writer.writeVariable(label)
        writer.write(u)
        writer.write(w)
        writer.write(uBar)
        writer.write(wBar)
        return HashToGroup.scalar(writer.bytes, domain: Array("sintra-v1/tdh2-h2".utf8))
    }

    static func symmetricKey(sharedSecret: GroupElement, u: GroupElement) -> SymmetricKey {
        HKDF<SHA512>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: sharedSecret.encoded), salt: u.encoded,
            info: Array("sintra-v1/tdh2-aead".utf8), outputByteCount: 32)
    }

    /// The AEAD nonce is fixed: every key is derived from a fresh r and used once.
    static var nonce: ChaChaPoly.Nonce {
        do {
            return try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12))
        } catch {
            preconditionFailure("a 12-byte ChaCha20-Poly1305 nonce is always valid: \(error)")
        }
    }
}

extension ThresholdPublicKey {
    /// Encrypts `message` under `label` with this (encryption) key.
    public func encrypt<Generator: RandomNumberGenerator>(
        _ message: [UInt8], label: [UInt8], using generator: inout Generator
    ) throws(ThresholdEncryption.Failure) -> ThresholdEncryption.Ciphertext {
        guard label.count <= ThresholdEncryption.labelBytesMax else { throw .labelTooLong(label.count) }
        guard message.count <= ThresholdEncryption.payloadBytesMax else { throw .payloadTooLong(message.count) }
        let r = Scalar.random(using: &generator)
        let s = Scalar.random(using: &generator)
        let gBar = ThresholdEncryption.secondGenerator
        let u = GroupElement.generatorMultiple(r)
        let uBar = r * gBar
        let key = ThresholdEncryption.symmetricKey(sharedSecret: r * groupKey, u: u)
        let sealed: ChaChaPoly.SealedBox
        do {
            sealed = try ChaChaPoly.seal(message, using: key, nonce: ThresholdEncryption.nonce, authenticating: label)
        } catch {
            preconditionFailure("ChaCha20-Poly1305 sealing with a 32-byte key cannot fail: \(error)")
        }
        let body = Array(sealed.ciphertext) + Array(sealed.tag)
        let w = GroupElement.generatorMultiple(s)
        let wBar = s * gBar
        let e = ThresholdEncryption.challenge(
            publicKey: groupKey, body: body, label: label, u: u, w: w, uBar: uBar, wBar: wBar)
        return ThresholdEncryption.Ciphertext(label: label, body: body, u: u, uBar: uBar, e: e, f: s + r * e)
    }

    /// As `encrypt(_:label:using:)` with the system's secure generator.
    public func encrypt(_ message: [UInt8], label: [UInt8]) throws(ThresholdEncryption.Failure)
        -> ThresholdEncryption.Ciphertext
    {
        var generator = SystemRandomNumberGenerator()
        return try encrypt(message, label: label, using: &generator)
    }

    /// The public validity check of TDH2: the ciphertext carries a proof that log_G u = log_Ḡ ū bound to
    /// its body and label. Anyone can run it; all honest parties agree on the result.
    public func isValid(_ ciphertext: ThresholdEncryption.Ciphertext) -> Bool {
        let negatedE = -ciphertext.e
        let w = GroupElement.multiscalarVariableTime([ciphertext.f, negatedE], [.generator, ciphertext.u])
        let wBar = GroupElement.multiscalarVariableTime(
            [ciphertext.f, negatedE], [ThresholdEncryption.secondGenerator, ciphertext.uBar])
        let expected = ThresholdEncryption.challenge(
            publicKey: groupKey, body: ciphertext.body, label: ciphertext.label,
            u: ciphertext.u, w: w, uBar: ciphertext.uBar, wBar: wBar)
        return expected == ciphertext.e
    }

    /// Checks a decryption share for `ciphertext`. A failure names the party that sent it.
    public func verifyDecryptionShare(
        _ share: ThresholdEncryption.DecryptionShare, for ciphertext: ThresholdEncryption.Ciphertext
    ) throws(ShareVerificationError) -> ThresholdEncryption.VerifiedDecryptionShare {
        guard let verificationKey = verificationKey(for: share.index) else {
            throw ShareVerificationError(index: share.index, reason: .unknownMember)
        }
        let digest = ciphertext.digest
        let statement = EqualityProof.Statement(
            baseG: .generator, publicA: verificationKey, baseH: ciphertext.u, publicB: share.value)
        guard share.proof.verifies(statement: statement, domain: ThresholdEncryption.proofDomain, context: digest)
        else {
            throw ShareVerificationError(index: share.index, reason: .invalidProof)
        }
        return ThresholdEncryption.VerifiedDecryptionShare(share: share, ciphertextDigest: digest)
    }

    /// Combines `threshold` verified shares from distinct parties and decrypts.
    public func decrypt(
        _ ciphertext: ThresholdEncryption.Ciphertext, shares: [ThresholdEncryption.VerifiedDecryptionShare]
    ) throws -> [UInt8] {
        let digest = ciphertext.digest
        guard shares.allSatisfy({ $0.ciphertextDigest == digest }) else {
            throw ShareCombinationError.mixedStatements
        }
        var byIndex = [Int: GroupElement]()
        for verified in shares where byIndex[verified.share.index] == nil {
            byIndex[verified.share.index] = verified.share.value
        }
        guard byIndex.count >= threshold else {
            throw ShareCombinationError.notEnoughShares(distinct: byIndex.count, required: threshold)
        }
        let chosen = byIndex.keys.sorted().prefix(threshold).map { (index: $0, value: byIndex[$0]!) }
        let sharedSecret = Shamir.interpolateInExponent(chosen, at: .zero)
        let key = ThresholdEncryption.symmetricKey(sharedSecret: sharedSecret, u: ciphertext.u)
        let tagStart = ciphertext.body.count - ThresholdEncryption.tagBytes
        do {
            let box = try ChaChaPoly.SealedBox(
                nonce: ThresholdEncryption.nonce, ciphertext: ciphertext.body[..<tagStart],
                tag: ciphertext.body[tagStart...])
            return Array(try ChaChaPoly.open(box, using: key, authenticating: ciphertext.label))
        } catch {
            throw ThresholdEncryption.Failure.authenticationFailed
        }
    }
}

extension ThresholdSecretShare {
    /// This party's decryption share for `ciphertext` under `publicKey`; refuses invalid ciphertexts
    /// (Shoup–Gennaro: a share for an invalid ciphertext forfeits chosen-ciphertext security).
    public func decryptionShare<Generator: RandomNumberGenerator>(
        for ciphertext: ThresholdEncryption.Ciphertext, publicKey: ThresholdPublicKey, using generator: inout Generator
    ) throws(ThresholdEncryption.Failure) -> ThresholdEncryption.DecryptionShare {
        guard publicKey.isValid(ciphertext) else { throw .invalidCiphertext }
        let value = self.value * ciphertext.u
        let statement = EqualityProof.Statement(
            baseG: .generator, publicA: GroupElement.generatorMultiple(self.value), baseH: ciphertext.u,
            publicB: value)
        let proof = EqualityProof.prove(
            witness: self.value, statement: statement, domain: ThresholdEncryption.proofDomain,
            context: ciphertext.digest, using: &generator)
        return ThresholdEncryption.DecryptionShare(index: index, value: value, proof: proof)
    }

    /// As `decryptionShare(for:publicKey:using:)` with the system's secure generator.
    public func decryptionShare(for ciphertext: ThresholdEncryption.Ciphertext, publicKey: ThresholdPublicKey)
        throws(ThresholdEncryption.Failure) -> ThresholdEncryption.DecryptionShare
    {
        var generator = SystemRandomNumberGenerator()
        return try decryptionShare(for: ciphertext, publicKey: publicKey, using: &generator)
    }
}
