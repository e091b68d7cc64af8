import Testing

@testable import SintraCrypto

/// TDH2 (Shoup–Gennaro): correctness, the public validity check, share verification and attribution.
@Suite struct ThresholdEncryptionTests {
    static let shapes = [(4, 1), (7, 2), (10, 3), (31, 10)]

    @Test(arguments: shapes) func honestRunDecrypts(n: Int, t: Int) throws {
        var random = TestRandom(seed: UInt64(1000 + n))
        let keys = try KeyDealer.deal(replicas: n, faulty: t, using: &random)
        let publicKey = keys.encryptionPublicKey
        for size in [0, 1, 100, 70_000] {
            let message = randomBytes(size, using: &random)
            let label = Array("kv/client:17/request:\(size)".utf8)
            let ciphertext = try publicKey.encrypt(message, label: label, using: &random)
            let decoded = try ThresholdEncryption.Ciphertext(encoded: ciphertext.encoded)
            #expect(decoded == ciphertext)
            #expect(publicKey.isValid(decoded))
            let shares = try keys.secrets.shuffled(using: &random).prefix(t + 1).map { secrets in
                let share = try secrets.encryptionShare.decryptionShare(for: decoded, publicKey: publicKey, using: &random)
                let wire = try ThresholdEncryption.DecryptionShare(encoded: share.encoded)
                return try publicKey.verifyDecryptionShare(wire, for: decoded)
            }
            #expect(try publicKey.decrypt(decoded, shares: shares) == message)
            #expect(throws: ShareCombinationError.self) {
                try publicKey.decrypt(decoded, shares: Array(shares.prefix(t)))
            }
        }
    }

    /// Changing any part of a valid ciphertext (body, label, u, ū, e, f) makes it invalid, and no honest
    /// party produces a decryption share for it.
    @Test func tamperedCiphertextsAreInvalidAndGetNoShares() throws {
        var random = TestRandom(seed: 21)
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1, using: &random)
        let publicKey = keys.encryptionPublicKey
        let c = try publicKey.encrypt(Array("secret order".utf8), label: Array("label".utf8), using: &random)
        var flippedBody = c.body
        flippedBody[0] ^= 1
        let other = GroupElement.generatorMultiple(Scalar.random(using: &random))
        let tampered: [ThresholdEncryption.Ciphertext] = [
            .init(label: c.label, body: flippedBody, u: c.u, uBar: c.uBar, e: c.e, f: c.f),
            .init(label: Array("other label".utf8), body: c.body, u: c.u, uBar: c.uBar, e: c.e, f: c.f),
            .init(label: c.label, body: c.body, u: other, uBar: c.uBar, e: c.e, f: c.f),
            .init(label: c.label, body: c.body, u: c.u, uBar: other, e: c.e, f: c.f),
            .init(label: c.label, body: c.body, u: c.u, uBar: c.uBar, e: c.e + .one, f: c.f),
            .init(label: c.label, body: c.body, u: c.u, uBar: c.uBar, e: c.e, f: c.f + .one),
        ]
        for ciphertext in tampered {
            #expect(!publicKey.isValid(ciphertext))
            #expect(throws: ThresholdEncryption.Failure.invalidCiphertext) {
                try keys.secrets[0].encryptionShare.decryptionShare(for: ciphertext, publicKey: publicKey, using: &random)
            }
        }
    }

    @Test func badDecryptionSharesAreRejectedAndAttributed() throws {
        var random = TestRandom(seed: 22)
        let keys = try KeyDealer.deal(replicas: 7, faulty: 2, using: &random)
        let publicKey = keys.encryptionPublicKey
        let first = try publicKey.encrypt(Array("one".utf8), label: [1], using: &random)
        let second = try publicKey.encrypt(Array("two".utf8), label: [2], using: &random)
        let honest = try keys.secrets[4].encryptionShare.decryptionShare(for: first, publicKey: publicKey, using: &random)
        // A forged value under the honest proof.
        let forged = ThresholdEncryption.DecryptionShare(
            index: 5, value: GroupElement.generatorMultiple(Scalar.random(using: &random)), proof: honest.proof)
        #expect(throws: ShareVerificationError(index: 5, reason: .invalidProof)) {
            try publicKey.verifyDecryptionShare(forged, for: first)
        }
        // A valid share for another ciphertext, replayed.
        #expect(throws: ShareVerificationError(index: 5, reason: .invalidProof)) {
            try publicKey.verifyDecryptionShare(honest, for: second)
        }
        // Claimed by another member, and by a non-member.
        let stolen = ThresholdEncryption.DecryptionShare(index: 6, value: honest.value, proof: honest.proof)
        #expect(throws: ShareVerificationError(index: 6, reason: .invalidProof)) {
            try publicKey.verifyDecryptionShare(stolen, for: first)
        }
        let outsider = ThresholdEncryption.DecryptionShare(index: 8, value: honest.value, proof: honest.proof)
        #expect(throws: ShareVerificationError(index: 8, reason: .unknownMember)) {
            try publicKey.verifyDecryptionShare(outsider, for: first)
        }
        // Shares verified for different ciphertexts never combine.
        let a = try publicKey.verifyDecryptionShare(honest, for: first)
        let b = try publicKey.verifyDecryptionShare(
            try keys.secrets[0].encryptionShare.decryptionShare(for: second, publicKey: publicKey, using: &random),
            for: second)
        let c = try publicKey.verifyDecryptionShare(
            try keys.secrets[1].encryptionShare.decryptionShare(for: first, publicKey: publicKey, using: &random),
            for: first)
        #expect(throws: ShareCombinationError.mixedStatements) {
            try publicKey.decrypt(first, shares: [a, b, c])
        }
    }

    @Test func limitsAndMalformedEncodings() throws {
        var random = TestRandom(seed: 23)
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1, using: &random)
        #expect(throws: ThresholdEncryption.Failure.labelTooLong(ThresholdEncryption.labelBytesMax + 1)) {
            try keys.encryptionPublicKey.encrypt([], label: [UInt8](repeating: 0, count: ThresholdEncryption.labelBytesMax + 1), using: &random)
        }
        let valid = try keys.encryptionPublicKey.encrypt([1, 2, 3], label: [], using: &random).encoded
        // Every truncation and every one-byte extension of a valid encoding is rejected without trapping.
        for length in 0..<valid.count {
            #expect(throws: DecodingError.self) { try ThresholdEncryption.Ciphertext(encoded: valid.prefix(length)) }
        }
        #expect(throws: DecodingError.self) { try ThresholdEncryption.Ciphertext(encoded: valid + [0]) }
        // A length prefix claiming 4 GiB.
        #expect(throws: DecodingError.self) { try ThresholdEncryption.Ciphertext(encoded: [0xff, 0xff, 0xff, 0xff] + valid) }
        for _ in 0..<200 {
            let garbage = randomBytes(Int(random.next() % 300), using: &random)
            _ = try? ThresholdEncryption.Ciphertext(encoded: garbage)
            _ = try? ThresholdEncryption.DecryptionShare(encoded: garbage)
        }
    }
}
