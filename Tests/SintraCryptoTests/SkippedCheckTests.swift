import Testing

@testable import SintraCrypto

/// The checks that agreement rounds skip or batch (`QuorumCertificate.Builder.collect`, `addVerified`,
/// `verify(alreadyVerified:)`, `ThresholdSecretShare.verifiedCoinShare`) reject exactly what the one-by-one
/// checks reject, and name the signer or party at fault.
@Suite struct SkippedCheckTests {
    static func committee(_ n: Int, seed: UInt64) throws -> [NodeIdentity] {
        var random = TestRandom(seed: seed)
        return try (1...n).map { try NodeIdentity(index: $0, seed: randomBytes(32, using: &random)) }
    }

    static let statement = SignedStatement(domain: "c-ready", path: "vcbc/proposal:2", payload: [7, 7])

    /// A forged signature held by `collect` is found when the batch completes, named, and dropped; the
    /// certificate completes with the next valid signature and verifies.
    @Test(arguments: [(4, 1), (7, 2), (10, 3)]) func collectNamesAndDropsAForgedSignature(n: Int, t: Int) throws {
        let identities = try Self.committee(n, seed: UInt64(100 + n))
        let members = identities.map(\.publicKey)
        let threshold = (n + t + 2) / 2
        var builder = QuorumCertificate.Builder(statement: Self.statement, members: members, threshold: threshold)
        let added = builder.addVerified(member: 1, signature: identities[0].sign(Self.statement))
        #expect(added.isEmpty)
        // Member 2 signs another statement: a valid signature, but not on this one.
        let wrong = identities[1].sign(SignedStatement(domain: "c-ready", path: "vcbc/proposal:3", payload: [7, 7]))
        #expect(builder.collect(member: 2, signature: wrong).isEmpty)
        var rejected = [QuorumCertificateError]()
        for member in 3...threshold {
            rejected += builder.collect(member: member, signature: identities[member - 1].sign(Self.statement))
        }
        #expect(rejected == [.invalidSignature(member: 2)])
        #expect(!builder.isComplete)
        #expect(builder.signerCount == threshold - 1)
        #expect(builder.certificate() == nil)
        // Member 2 may try again (a dropped member is not remembered); a valid one completes the certificate.
        let next = threshold + 1
        #expect(builder.collect(member: next, signature: identities[next - 1].sign(Self.statement)).isEmpty)
        let certificate = try #require(builder.certificate())
        #expect(!certificate.signers.contains(2))
        try certificate.verify(Self.statement, members: members, threshold: threshold)
        // Late signatures are checked at once: a forged one is named, a repeat is ignored.
        var forged = identities[1].sign(Self.statement)
        forged[5] ^= 0x20
        #expect(builder.collect(member: 2, signature: forged) == [.invalidSignature(member: 2)])
        #expect(builder.collect(member: 1, signature: forged).isEmpty)
        #expect(builder.collect(member: n + 1, signature: forged) == [.memberOutOfRange(n + 1)])
    }

    /// Several forgeries in one batch are all named; signatures held unchecked do not count as signers.
    @Test func collectNamesEveryForgerInABatch() throws {
        let identities = try Self.committee(7, seed: 5)
        let members = identities.map(\.publicKey)
        var builder = QuorumCertificate.Builder(statement: Self.statement, members: members, threshold: 5)
        var rejected = [QuorumCertificateError]()
        for member in 1...5 {
            var signature = identities[member - 1].sign(Self.statement)
            if member == 2 || member == 5 { signature[40] ^= 1 }
            rejected += builder.collect(member: member, signature: signature)
            if member < 5 { #expect(builder.signerCount == 0) }
        }
        #expect(rejected == [.invalidSignature(member: 2), .invalidSignature(member: 5)])
        #expect(builder.signerCount == 3)
        rejected = builder.collect(member: 6, signature: identities[5].sign(Self.statement))
        rejected += builder.collect(member: 7, signature: identities[6].sign(Self.statement))
        #expect(rejected.isEmpty)
        let certificate = try #require(builder.certificate())
        #expect(certificate.signers == [1, 3, 4, 6, 7])
        try certificate.verify(Self.statement, members: members, threshold: 5)
    }

    /// The party's own signature may come last: adding it checks the held ones once they suffice.
    @Test func addVerifiedCompletesWithHeldSignatures() throws {
        let identities = try Self.committee(4, seed: 13)
        let members = identities.map(\.publicKey)
        let good = identities.map { $0.sign(Self.statement) }
        var forged = good[3]
        forged[7] ^= 1
        var builder = QuorumCertificate.Builder(statement: Self.statement, members: members, threshold: 3)
        #expect(builder.collect(member: 2, signature: good[1]).isEmpty)
        #expect(builder.collect(member: 4, signature: forged).isEmpty)
        #expect(builder.signerCount == 0)
        #expect(builder.addVerified(member: 1, signature: good[0]) == [.invalidSignature(member: 4)])
        #expect(builder.signerCount == 2 && !builder.isComplete)
        #expect(builder.collect(member: 3, signature: good[2]).isEmpty)
        #expect(try #require(builder.certificate()).signers == [1, 2, 3])
    }

    /// A member's second, different signature settles its held one, as `add` would have judged them one by
    /// one: an invalid first is reported and the valid second counts; a valid first counts and the second is
    /// ignored.
    @Test func secondSignatureOfAHeldMemberIsJudgedLikeAdd() throws {
        let identities = try Self.committee(4, seed: 12)
        let members = identities.map(\.publicKey)
        let good = identities.map { $0.sign(Self.statement) }
        var bad = good[1]
        bad[50] ^= 2
        var builder = QuorumCertificate.Builder(statement: Self.statement, members: members, threshold: 3)
        let added = builder.addVerified(member: 1, signature: good[0])
        #expect(added.isEmpty)
        #expect(builder.collect(member: 2, signature: bad).isEmpty)
        // A repeat settles the held one: reported, as `add` reports every invalid copy; the repeat is held.
        #expect(builder.collect(member: 2, signature: bad) == [.invalidSignature(member: 2)])
        #expect(builder.collect(member: 2, signature: good[1]) == [.invalidSignature(member: 2)])
        #expect(builder.signerCount == 1)
        #expect(builder.collect(member: 3, signature: good[2]).isEmpty)
        #expect(try #require(builder.certificate()).signers == [1, 2, 3])

        var other = QuorumCertificate.Builder(statement: Self.statement, members: members, threshold: 3)
        #expect(other.collect(member: 2, signature: good[1]).isEmpty)
        #expect(other.collect(member: 2, signature: bad).isEmpty, "the held valid one counts, the second is ignored")
        #expect(other.signerCount == 1)
        #expect(other.collect(member: 4, signature: good[3]).isEmpty)
        #expect(other.collect(member: 3, signature: good[2]).isEmpty)
        #expect(try #require(other.certificate()).signers == [2, 3, 4])
    }

    /// `alreadyVerified` skips only the signatures it names; every other one is still checked, and the
    /// structural rules apply to all.
    @Test func alreadyVerifiedSkipsOnlyWhatItNames() throws {
        let identities = try Self.committee(4, seed: 9)
        let members = identities.map(\.publicKey)
        let signatures = identities.map { $0.sign(Self.statement) }
        var forged = signatures[2]
        forged[0] ^= 1
        let own = signatures[0]
        let certificate = QuorumCertificate(signatures: [
            .init(member: 1, bytes: own), .init(member: 2, bytes: signatures[1]), .init(member: 3, bytes: forged),
        ])
        let ownOnly: (QuorumCertificate.Signature) -> Bool = { $0.member == 1 && $0.bytes == own }
        #expect(throws: QuorumCertificateError.invalidSignature(member: 3)) {
            try certificate.verify(Self.statement, members: members, threshold: 3, alreadyVerified: ownOnly)
        }
        // Member 1 with other bytes than ours is checked (and fails).
        var otherOwn = own
        otherOwn[3] ^= 1
        let impostor = QuorumCertificate(signatures: [
            .init(member: 1, bytes: otherOwn), .init(member: 2, bytes: signatures[1]),
            .init(member: 3, bytes: signatures[2]),
        ])
        #expect(throws: QuorumCertificateError.invalidSignature(member: 1)) {
            try impostor.verify(Self.statement, members: members, threshold: 3, alreadyVerified: ownOnly)
        }
        // Skipped signatures still count towards the threshold only once, and duplicates are refused.
        let short = QuorumCertificate(signatures: [
            .init(member: 1, bytes: own), .init(member: 2, bytes: signatures[1]),
        ])
        #expect(throws: QuorumCertificateError.belowThreshold(signers: 2, required: 3)) {
            try short.verify(Self.statement, members: members, threshold: 3, alreadyVerified: { _ in true })
        }
        let doubled = QuorumCertificate(signatures: [
            .init(member: 1, bytes: own), .init(member: 1, bytes: own), .init(member: 2, bytes: signatures[1]),
        ])
        #expect(throws: QuorumCertificateError.duplicateSigner(1)) {
            try doubled.verify(Self.statement, members: members, threshold: 3, alreadyVerified: { _ in true })
        }
        let valid = QuorumCertificate(
            signatures: zip(1...3, signatures).map { QuorumCertificate.Signature(member: $0, bytes: $1) })
        try valid.verify(Self.statement, members: members, threshold: 3, alreadyVerified: ownOnly)
    }

    /// A party's own coin share counts as verified only for the key its secret belongs to, and it is the
    /// share that `verifyCoinShare` accepts.
    @Test func ownCoinShareIsVerifiedOnlyForItsKey() throws {
        var random = TestRandom(seed: 3)
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1, using: &random)
        let otherKeys = try KeyDealer.deal(replicas: 4, faulty: 1, using: &random)
        let name = Array("abba/round:1".utf8)
        let secret = keys.secrets[1].coinShare
        #expect(secret.verificationKey == keys.coinPublicKey.verificationKeys[1])
        let (share, verified) = secret.verifiedCoinShare(name: name, key: keys.coinPublicKey, using: &random)
        let own = try #require(verified)
        #expect(own.share == share)
        _ = try keys.coinPublicKey.verifyCoinShare(share, name: name)
        // The same secret against another dealing's key: no verified share.
        #expect(secret.verifiedCoinShare(name: name, key: otherKeys.coinPublicKey, using: &random).verified == nil)
        // It combines with another party's verified share to the coin everyone computes.
        let second = try keys.coinPublicKey.verifyCoinShare(
            keys.secrets[3].coinShare.coinShare(name: name, using: &random), name: name)
        let third = try keys.coinPublicKey.verifyCoinShare(
            keys.secrets[0].coinShare.coinShare(name: name, using: &random), name: name)
        #expect(
            try keys.coinPublicKey.combineCoin([own, second], name: name)
                == keys.coinPublicKey.combineCoin([third, second], name: name))
    }
}
