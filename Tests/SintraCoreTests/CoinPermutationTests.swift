import SintraCore
import SintraCrypto
import Testing

@Suite struct CoinPermutationTests {
    private func coin(_ seed: UInt8) throws -> ThresholdCoin.Value {
        var random = ProtocolRandom.seeded(UInt64(seed))
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1, using: &random)
        let name = [seed]
        let shares = try keys.secrets.prefix(2).map {
            try keys.coinPublicKey.verifyCoinShare($0.coinShare.coinShare(name: name, using: &random), name: name)
        }
        return try keys.coinPublicKey.combineCoin(shares, name: name)
    }

    @Test func isAPermutationAndDeterministic() throws {
        let value = try coin(1)
        for count in [1, 2, 4, 7, 31, 100] {
            let permutation = CoinPermutation.permutation(of: count, coin: value)
            #expect(permutation.sorted() == Array(1...count))
            #expect(CoinPermutation.permutation(of: count, coin: value) == permutation)
        }
        #expect(CoinPermutation.permutation(of: 31, coin: try coin(2)) != CoinPermutation.permutation(of: 31, coin: value))
    }

    /// Over many seeds every member comes first about equally often (no modulo bias): for n = 7 and
    /// 7,000 stream-derived permutations each count stays within 5 standard deviations of 1,000.
    @Test func firstPositionIsRoughlyUniform() throws {
        let base = try coin(3)
        var counts = [Int](repeating: 0, count: 7)
        for index in 0..<7000 {
            var bytes = base.bytes
            bytes[0] = UInt8(index & 0xff)
            bytes[1] = UInt8(index >> 8)
            counts[CoinPermutation.permutation(of: 7, seed: bytes)[0] - 1] += 1
        }
        for count in counts {
            #expect(abs(count - 1000) < 5 * 30, "\(counts)")
        }
    }
}
