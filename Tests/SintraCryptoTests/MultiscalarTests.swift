import Testing

@_spi(Benchmarks) @testable import SintraCrypto

/// Straus and Pippenger multi-scalar multiplication against the naive sum Σ s_i·P_i (constant-time single
/// multiplications and additions), compared as edwards25519 points, not only as ristretto255 classes: the
/// batch signature check multiplies by the cofactor afterwards, so a difference in a torsion component would
/// change verdicts.
struct MultiscalarTests {
    /// A point of order 2, (0, −1), and one of order 4, (√−1, 0): added to some inputs so that the points are
    /// not all in the prime-order subgroup (signature R values need not be).
    static let orderTwo = EdwardsPoint(x: .zero, y: FieldElement.zero - .one, z: .one, t: .zero)
    static let orderFour = EdwardsPoint(x: .sqrtMinusOne, y: .zero, z: .one, t: .zero)

    static let orderMinusOne = Scalar.zero - .one

    /// A random point, with a torsion component for some, and with Z ≠ 1 for some (the result of an addition).
    static func randomPoint(_ index: Int, using random: inout TestRandom) -> EdwardsPoint {
        let point = GroupElement(uniformBytes: randomBytes(64, using: &random)).point
        switch index % 5 {
        case 0: return point + orderTwo
        case 1: return point + orderFour
        case 2: return point
        default:
            // Decoded from an encoding: Z = 1, as for Ed25519 keys and R values.
            return EdwardsPoint(ed25519Encoding: point.ed25519Encoding)!
        }
    }

    static func naiveSum(_ scalars: [Scalar], _ points: [EdwardsPoint]) -> EdwardsPoint {
        var sum = EdwardsPoint.identity
        for (scalar, point) in zip(scalars, points) {
            sum = sum + point.multiplied(by: scalar)
        }
        return sum
    }

    /// A 128-bit scalar, like the batch coefficients z_i.
    static func halfScalar(using random: inout TestRandom) -> Scalar {
        Scalar(reducing32: randomBytes(16, using: &random) + [UInt8](repeating: 0, count: 16))
    }

    static func expectAllMethodsAgree(
        _ scalars: [Scalar], _ points: [EdwardsPoint], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let expected = naiveSum(scalars, points)
        let straus = EdwardsPoint.multiscalarMultiplyStraus(scalars, points)
        let pippenger = EdwardsPoint.multiscalarMultiplyPippenger(scalars, points)
        let automatic = EdwardsPoint.multiscalarMultiplyVariableTime(scalars, points)
        #expect(straus.equalsAsEdwards(expected), "Straus, \(scalars.count) terms", sourceLocation: sourceLocation)
        #expect(pippenger.equalsAsEdwards(expected), "Pippenger, \(scalars.count) terms", sourceLocation: sourceLocation)
        #expect(automatic.equalsAsEdwards(expected), "automatic, \(scalars.count) terms", sourceLocation: sourceLocation)
    }

    @Test(arguments: [0, 1, 2, 3, 7, 16, 63, 189, 190, 191, 300, 1025, 3000])
    func randomInputsMatchNaiveSum(count: Int) {
        var random = TestRandom(seed: 1000 + UInt64(count))
        let points = (0..<count).map { Self.randomPoint($0, using: &random) }
        // Full-size scalars for half the terms and 128-bit ones for the other half: the shape of a batch check.
        let scalars = (0..<count).map { index in
            index % 2 == 0 ? Scalar.random(using: &random) : Self.halfScalar(using: &random)
        }
        Self.expectAllMethodsAgree(scalars, points)
    }

    /// Every window width, on the same inputs (the cost model picks only a few of them).
    @Test func everyWindowWidthGivesTheSameSum() {
        var random = TestRandom(seed: 77)
        let points = (0..<40).map { Self.randomPoint($0, using: &random) }
        var scalars = (0..<40).map { _ in Scalar.random(using: &random) }
        scalars[3] = Self.orderMinusOne
        scalars[4] = .zero
        scalars[5] = Self.halfScalar(using: &random)
        let expected = Self.naiveSum(scalars, points)
        for width in 2...15 {
            let sum = EdwardsPoint.multiscalarMultiplyPippenger(scalars, points, width: width)
            #expect(sum.equalsAsEdwards(expected), "width \(width)")
        }
    }

    /// The signed digits of every width recompose to the scalar, stay within [−2^(c−1), 2^(c−1)], and the top
    /// one is not negative.
    @Test func signedDigitsRecompose() {
        var random = TestRandom(seed: 5)
        var scalars = (0..<20).map { _ in Scalar.random(using: &random) }
        scalars += [.zero, .one, Self.orderMinusOne, Self.orderMinusOne - .one, Self.halfScalar(using: &random)]
        // 2^252 and 2^253 − 1 mod ℓ, and all-ones patterns that carry through every window.
        var twoTo252 = Scalar.one
        for _ in 0..<252 { twoTo252 = twoTo252 + twoTo252 }
        scalars += [twoTo252, twoTo252 - .one, Scalar(UInt64.max)]
        for width in 2...15 {
            let maxBits = 253
            let windows = (maxBits + width) / width
            var words = [UInt64]()
            for scalar in scalars {
                let w = scalar.littleEndianWords
                words += [w.0, w.1, w.2, w.3]
            }
            let digits = EdwardsPoint.signedDigits(words, count: scalars.count, width: width, windows: windows)
            let half = 1 << (width - 1)
            for (term, scalar) in scalars.enumerated() {
                var value = Scalar.zero
                var radix = Scalar.one
                for window in 0..<windows {
                    let digit = Int(digits[window * scalars.count + term])
                    #expect(digit >= -half && digit <= half)
                    if window == windows - 1 { #expect(digit >= 0) }
                    let magnitude = Scalar(UInt64(abs(digit)))
                    value = digit < 0 ? value - magnitude * radix : value + magnitude * radix
                    radix = radix * Scalar(UInt64(1) << UInt64(width))
                }
                #expect(value == scalar, "width \(width), term \(term)")
            }
        }
    }

    @Test(arguments: [5, 250]) func edgeCases(count: Int) {
        var random = TestRandom(seed: 31 + UInt64(count))
        let points = (0..<count).map { Self.randomPoint($0, using: &random) }
        let scalars = (0..<count).map { _ in Scalar.random(using: &random) }

        // All scalars zero, and all points the identity.
        Self.expectAllMethodsAgree([Scalar](repeating: .zero, count: count), points)
        Self.expectAllMethodsAgree(scalars, [EdwardsPoint](repeating: .identity, count: count))
        // Some zero scalars, some identity points, ℓ − 1 (= −1) and 1.
        var mixedScalars = scalars
        var mixedPoints = points
        for index in stride(from: 0, to: count, by: 4) { mixedScalars[index] = .zero }
        for index in stride(from: 1, to: count, by: 4) { mixedPoints[index] = .identity }
        for index in stride(from: 2, to: count, by: 4) { mixedScalars[index] = Self.orderMinusOne }
        for index in stride(from: 3, to: count, by: 8) { mixedScalars[index] = .one }
        Self.expectAllMethodsAgree(mixedScalars, mixedPoints)
        // Every scalar ℓ − 1: the largest digits in every window.
        Self.expectAllMethodsAgree([Scalar](repeating: Self.orderMinusOne, count: count), points)
        // Duplicates: one point many times with one scalar (every term in the same buckets), and P with −P.
        Self.expectAllMethodsAgree(
            [Scalar](repeating: scalars[0], count: count), [EdwardsPoint](repeating: points[0], count: count))
        let cancelling = (0..<count).map { $0 % 2 == 0 ? points[$0] : points[$0 - 1].negated() }
        let paired = (0..<count).map { scalars[$0 - $0 % 2] }
        let sum = EdwardsPoint.multiscalarMultiplyPippenger(paired, cancelling)
        let expected = count % 2 == 1 ? points[count - 1].multiplied(by: scalars[count - 1]) : .identity
        #expect(sum.equalsAsEdwards(expected))
        #expect(EdwardsPoint.multiscalarMultiplyStraus(paired, cancelling).equalsAsEdwards(expected))
        // Small scalars only: one window holds every nonzero digit.
        let small = (0..<count).map { Scalar(UInt64($0 % 40)) }
        Self.expectAllMethodsAgree(small, points)
    }

    /// The public entry point with an explicit method agrees with the automatic one (ristretto255 level).
    @Test func groupElementEntryPointsAgree() {
        var random = TestRandom(seed: 12)
        let elements = (0..<260).map { _ in GroupElement(uniformBytes: randomBytes(64, using: &random)) }
        let scalars = (0..<260).map { _ in Scalar.random(using: &random) }
        let automatic = GroupElement.multiscalarVariableTime(scalars, elements)
        for algorithm in MultiscalarAlgorithm.allCases {
            #expect(GroupElement.multiscalarVariableTime(scalars, elements, algorithm: algorithm) == automatic)
        }
    }

    /// Batches above the threshold take the Pippenger path: valid ones verify with every method, and a batch
    /// with a bad signature fails with every method and is attributed to that signature.
    @Test func signatureBatchVerdictsDoNotDependOnTheMethod() throws {
        let size = 150
        var random = TestRandom(seed: 4242)
        let signers = try (1...size).map { index in
            try NodeIdentity(index: index, seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
        let messages = (0..<size).map { Array("request \($0)".utf8) }
        let signatures = signers.indices.map { index in
            Ed25519.sign(messages[index], with: Ed25519.ExpandedSecret(seed: signers[index].seed))
        }
        var valid = SignatureBatch()
        for index in signers.indices { valid.add(signatures[index], message: messages[index], key: signers[index].publicKey) }
        #expect(2 * size + 1 >= EdwardsPoint.pippengerThreshold)
        for algorithm in MultiscalarAlgorithm.allCases { #expect(valid.verify(algorithm: algorithm)) }
        #expect(valid.verify())

        var forged = SignatureBatch()
        for index in signers.indices {
            var signature = signatures[index]
            if index == 77 { signature[40] ^= 1 }
            forged.add(signature, message: messages[index], key: signers[index].publicKey)
        }
        for algorithm in MultiscalarAlgorithm.allCases { #expect(!forged.verify(algorithm: algorithm)) }
        #expect(forged.invalidIndices() == [77])
    }
}
