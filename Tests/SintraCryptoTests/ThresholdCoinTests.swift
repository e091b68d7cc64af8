import Testing

@testable import SintraCrypto

/// Cachin–Kursawe–Shoup threshold coin: robustness (any k valid shares give the same value) and
/// attribution of bad shares.
@Suite struct ThresholdCoinTests {
    static let shapes = [(4, 1), (7, 2), (10, 3), (31, 10)]

    static func keys(n: Int, t: Int, seed: UInt64) throws -> DealtKeys {
        var random = TestRandom(seed: seed)
        return try KeyDealer.deal(replicas: n, faulty: t, using: &random)
    }

    @Test(arguments: shapes) func honestRunAgreesForEverySubset(n: Int, t: Int) throws {
        let keys = try Self.keys(n: n, t: t, seed: UInt64(n))
        var random = TestRandom(seed: 7)
        let publicKey = keys.coinPublicKey
        var values = [ThresholdCoin.Value]()
        for round in 0..<3 {
            let name = Array("abba/instance:9/round:\(round)".utf8)
            let verified = try keys.secrets.map { secrets in
                let share = secrets.coinShare.coinShare(name: name, using: &random)
                // Shares survive their wire encoding.
                let decoded = try ThresholdCoin.Share(encoded: share.encoded)
                #expect(decoded == share)
                return try publicKey.verifyCoinShare(decoded, name: name)
            }
            let reference = try publicKey.combineCoin(Array(verified.prefix(t + 1)), name: name)
            // Other subsets of t + 1: the last ones, every other one, a random one.
            let subsets: [[ThresholdCoin.VerifiedShare]] = [
                Array(verified.suffix(t + 1)),
                Array(stride(from: 0, to: n, by: 2).map { verified[$0] }.prefix(t + 1)),
                Array(verified.shuffled(using: &random).prefix(t + 1)),
                verified,
            ]
            for subset in subsets where subset.count >= t + 1 {
                #expect(try publicKey.combineCoin(subset, name: name) == reference)
            }
            values.append(reference)
        }
        // Different names give different coins.
        #expect(Set(values.map(\.bytes)).count == values.count)
    }

    @Test func tooFewSharesDoNotCombine() throws {
        let keys = try Self.keys(n: 7, t: 2, seed: 3)
        let name = Array("coin".utf8)
        var random = TestRandom(seed: 1)
        let share = keys.secrets[0].coinShare.coinShare(name: name, using: &random)
        let verified = try keys.coinPublicKey.verifyCoinShare(share, name: name)
        let second = try keys.coinPublicKey.verifyCoinShare(
            keys.secrets[1].coinShare.coinShare(name: name, using: &random), name: name)
        // Two copies of one share count once.
        #expect(throws: ShareCombinationError.notEnoughShares(distinct: 2, required: 3)) {
            try keys.coinPublicKey.combineCoin([verified, verified, second], name: name)
        }
    }

    @Test func forgedShareIsRejectedAndAttributed() throws {
        let keys = try Self.keys(n: 4, t: 1, seed: 11)
        let name = Array("coin/forged".utf8)
        var random = TestRandom(seed: 2)
        let honest = keys.secrets[2].coinShare.coinShare(name: name, using: &random)
        // A random value with the honest proof.
        let forgedValue = ThresholdCoin.Share(
            index: 3, value: GroupElement.generatorMultiple(Scalar.random(using: &random)), proof: honest.proof)
        #expect(throws: ShareVerificationError(index: 3, reason: .invalidProof)) {
            try keys.coinPublicKey.verifyCoinShare(forgedValue, name: name)
        }
        // A proof with a tweaked response.
        let tweaked = ThresholdCoin.Share(
            index: 3, value: honest.value,
            proof: EqualityProof(challenge: honest.proof.challenge, response: honest.proof.response + .one))
        #expect(throws: ShareVerificationError(index: 3, reason: .invalidProof)) {
            try keys.coinPublicKey.verifyCoinShare(tweaked, name: name)
        }
        // Party 2 presenting party 3's valid share as its own.
        let stolen = ThresholdCoin.Share(index: 2, value: honest.value, proof: honest.proof)
        #expect(throws: ShareVerificationError(index: 2, reason: .invalidProof)) {
            try keys.coinPublicKey.verifyCoinShare(stolen, name: name)
        }
    }

    @Test func shareFromAnotherCoinNameIsRejected() throws {
        let keys = try Self.keys(n: 4, t: 1, seed: 12)
        var random = TestRandom(seed: 3)
        let oldName = Array("abba/round:1".utf8)
        let newName = Array("abba/round:2".utf8)
        let replayed = keys.secrets[0].coinShare.coinShare(name: oldName, using: &random)
        #expect(throws: ShareVerificationError(index: 1, reason: .invalidProof)) {
            try keys.coinPublicKey.verifyCoinShare(replayed, name: newName)
        }
        // A valid proof for another statement: the same party's share under another key (the encryption key).
        let otherKeyShare = keys.secrets[0].encryptionShare.coinShare(name: newName, using: &random)
        #expect(throws: ShareVerificationError(index: 1, reason: .invalidProof)) {
            try keys.coinPublicKey.verifyCoinShare(otherKeyShare, name: newName)
        }
        #expect((try? keys.encryptionPublicKey.verifyCoinShare(otherKeyShare, name: newName)) != nil)
    }

    @Test func shareFromNonMemberIsRejected() throws {
        let keys = try Self.keys(n: 4, t: 1, seed: 13)
        var random = TestRandom(seed: 4)
        let name = Array("coin".utf8)
        let share = keys.secrets[0].coinShare.coinShare(name: name, using: &random)
        for index in [0, 5, 65535] {
            let outsider = ThresholdCoin.Share(index: index, value: share.value, proof: share.proof)
            #expect(throws: ShareVerificationError(index: index, reason: .unknownMember)) {
                try keys.coinPublicKey.verifyCoinShare(outsider, name: name)
            }
        }
    }

    @Test func sharesOfDifferentNamesDoNotMix() throws {
        let keys = try Self.keys(n: 4, t: 1, seed: 14)
        var random = TestRandom(seed: 5)
        let first = Array("a".utf8), second = Array("b".utf8)
        let a = try keys.coinPublicKey.verifyCoinShare(keys.secrets[0].coinShare.coinShare(name: first, using: &random), name: first)
        let b = try keys.coinPublicKey.verifyCoinShare(keys.secrets[1].coinShare.coinShare(name: second, using: &random), name: second)
        #expect(throws: ShareCombinationError.mixedStatements) {
            try keys.coinPublicKey.combineCoin([a, b], name: first)
        }
    }

    @Test func malformedShareEncodingsThrow() {
        var random = TestRandom(seed: 6)
        for length in [0, 1, 97, 98, 99, 200] {
            let bytes = randomBytes(length, using: &random)
            #expect(throws: DecodingError.self) { try ThresholdCoin.Share(encoded: bytes) }
        }
    }
}
