import Testing

@testable import SintraCrypto

/// Algebraic laws of the group and the scalar field, on seeded random inputs (reproducible).
@Suite struct GroupPropertyTests {
    static let seeds: [UInt64] = [1, 2, 3, 4, 5, 6, 7, 8]

    @Test(arguments: seeds) func scalarFieldLaws(seed: UInt64) throws {
        var random = TestRandom(seed: seed)
        for _ in 0..<50 {
            let a = Scalar.random(using: &random), b = Scalar.random(using: &random), c = Scalar.random(using: &random)
            #expect(a + b == b + a)
            #expect(a * b == b * a)
            #expect((a + b) + c == a + (b + c))
            #expect((a * b) * c == a * (b * c))
            #expect(a * (b + c) == a * b + a * c)
            #expect(a - a == .zero)
            #expect(a + (-a) == .zero)
            #expect((a - b) + b == a)
            #expect(a * .one == a)
            if !a.isZero {
                #expect(a * a.inverted() == .one)
            }
            #expect(try Scalar(canonicalBytes: a.bytes) == a)
        }
        #expect(Scalar.zero.inverted() == .zero)
    }

    /// Reduction of wide inputs agrees with arithmetic: x_low + x_high·2^256 (mod ℓ).
    @Test(arguments: seeds) func wideReductionMatchesArithmetic(seed: UInt64) {
        var random = TestRandom(seed: seed)
        var twoTo128 = Scalar(1 << 32)
        twoTo128 = twoTo128 * twoTo128 * twoTo128 * twoTo128
        let twoTo256 = twoTo128 * twoTo128
        for _ in 0..<50 {
            let bytes = randomBytes(64, using: &random)
            let low = Scalar(reducing32: bytes[0..<32])
            let high = Scalar(reducing32: bytes[32..<64])
            #expect(Scalar(reducing64: bytes) == low + high * twoTo256)
        }
    }

    @Test func canonicalScalarDecoding() throws {
        // ℓ itself and 2^256 − 1 are rejected; ℓ − 1 is accepted.
        let order = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
        #expect(throws: DecodingError.self) { try Scalar(canonicalBytes: order) }
        #expect(throws: DecodingError.self) { try Scalar(canonicalBytes: [UInt8](repeating: 0xff, count: 32)) }
        #expect(throws: DecodingError.self) { try Scalar(canonicalBytes: [UInt8](repeating: 0, count: 31)) }
        var orderMinusOne = order
        orderMinusOne[0] -= 1
        let largest = try Scalar(canonicalBytes: orderMinusOne)
        #expect(largest + .one == .zero)
        #expect(Scalar(reducing32: order) == .zero)
    }

    @Test(arguments: seeds) func groupLaws(seed: UInt64) throws {
        var random = TestRandom(seed: seed)
        for _ in 0..<10 {
            let a = Scalar.random(using: &random), b = Scalar.random(using: &random)
            let p = GroupElement.generatorMultiple(Scalar.random(using: &random))
            let q = GroupElement.generatorMultiple(Scalar.random(using: &random))
            let r = GroupElement(uniformBytes: randomBytes(64, using: &random))
            #expect(p + q == q + p)
            #expect((p + q) + r == p + (q + r))
            #expect(p + .identity == p)
            #expect(p - p == .identity)
            #expect((p - q) + q == p)
            #expect((a + b) * p == a * p + b * p)
            #expect((a * b) * p == a * (b * p))
            #expect(a * (p + q) == a * p + a * q)
            #expect(GroupElement.generatorMultiple(a) == a * GroupElement.generator)
            #expect(GroupElement.multiscalarVariableTime([a, b], [p, q]) == a * p + b * q)
            #expect(GroupElement.multiscalarVariableTime([-a], [p]) == -(a * p))
            // ℓ·P = identity for every element (prime order).
            #expect((Scalar.zero - .one) * p + p == .identity)
            // Encoding round trip and canonical re-encoding.
            let decoded = try GroupElement(encoded: r.encoded)
            #expect(decoded == r)
            #expect(decoded.encoded == r.encoded)
        }
    }

    @Test(arguments: [1, 2, 7, 33]) func multiscalarMatchesNaiveSum(count: Int) {
        var random = TestRandom(seed: UInt64(count))
        let scalars = (0..<count).map { _ in Scalar.random(using: &random) }
        let points = (0..<count).map { _ in GroupElement(uniformBytes: randomBytes(64, using: &random)) }
        var expected = GroupElement.identity
        for (scalar, point) in zip(scalars, points) {
            expected = expected + scalar * point
        }
        #expect(GroupElement.multiscalarVariableTime(scalars, points) == expected)
        #expect(GroupElement.multiscalarVariableTime([], []) == .identity)
    }

    /// Edge scalars: 0, 1, ℓ − 1, and small values with long zero runs exercise the digit recodings.
    @Test func edgeScalars() throws {
        let p = GroupElement(uniformBytes: [UInt8](repeating: 7, count: 64))
        let minusOne = Scalar.zero - .one
        #expect(Scalar.zero * p == .identity)
        #expect(Scalar.one * p == p)
        #expect(minusOne * p == -p)
        #expect(GroupElement.generatorMultiple(minusOne) == -GroupElement.generator)
        #expect(GroupElement.multiscalarVariableTime([minusOne], [p]) == -p)
        var power = Scalar.one
        for _ in 0..<252 {
            #expect(GroupElement.multiscalarVariableTime([power], [p]) == power * p)
            power = power + power
        }
    }

    /// Random 32-byte strings: decoding either throws or yields an element that re-encodes identically.
    @Test func randomDecodingNeverTraps() {
        var random = TestRandom(seed: 99)
        var accepted = 0
        for _ in 0..<2000 {
            let bytes = randomBytes(32, using: &random)
            if let element = try? GroupElement(encoded: bytes) {
                #expect(element.encoded == bytes)
                accepted += 1
            }
        }
        // Roughly 1/8 of random strings have the top bit clear, are non-negative and decode.
        #expect(accepted > 50 && accepted < 600)
        for length in [0, 1, 31, 33, 64] {
            #expect(throws: DecodingError.self) { try GroupElement(encoded: [UInt8](repeating: 0, count: length)) }
        }
    }
}
