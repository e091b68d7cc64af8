import Testing

@testable import SintraCrypto

@Suite struct ShamirTests {
    /// RFC 9591 Appendix E.3: the shares and the group public key follow from the published polynomial;
    /// any two shares interpolate to the group secret.
    @Test func frostRistrettoVectorShares() throws {
        let file = try loadVectors("frost-ristretto255-sha512-rfc9591")
        let inputs = try #require(file["inputs"] as? [String: Any])
        let secret = try Scalar(canonicalBytes: hex(try #require(inputs["group_secret_key"] as? String)))
        let publicKey = hex(try #require(inputs["group_public_key"] as? String))
        let coefficients = try #require(inputs["share_polynomial_coefficients"] as? [String])
        let polynomial = Shamir.Polynomial(
            coefficients: [secret] + (try coefficients.map { try Scalar(canonicalBytes: hex($0)) }))
        #expect(GroupElement.generatorMultiple(secret).encoded == publicKey)
        #expect(polynomial.commitments.publicKey.encoded == publicKey)
        let shares = try #require(inputs["participant_shares"] as? [[String: Any]])
        var parsed = [(index: Int, value: Scalar)]()
        for share in shares {
            let index = try #require(share["identifier"] as? Int)
            let value = try Scalar(canonicalBytes: hex(try #require(share["participant_share"] as? String)))
            #expect(polynomial.share(for: index) == value)
            #expect(polynomial.commitments.verifies(share: value, for: index))
            parsed.append((index, value))
        }
        for first in 0..<parsed.count {
            for second in (first + 1)..<parsed.count {
                #expect(Shamir.interpolate([parsed[first], parsed[second]]) == secret)
            }
        }
    }

    @Test(arguments: [(4, 1), (7, 2), (10, 3), (31, 10)]) func interpolationOfRandomPolynomials(n: Int, t: Int) {
        var random = TestRandom(seed: UInt64(n * 100 + t))
        let secret = Scalar.random(using: &random)
        let polynomial = Shamir.randomPolynomial(secret: secret, degree: t, using: &random)
        let shares = (1...n).map { (index: $0, value: polynomial.share(for: $0)) }
        // Several random subsets of t + 1 shares give the secret; t shares do not.
        for _ in 0..<5 {
            var generator = random
            let subset = Array(shares.shuffled(using: &generator).prefix(t + 1))
            random = generator
            #expect(Shamir.interpolate(subset) == secret)
            #expect(Shamir.interpolate(Array(subset.prefix(t))) != secret)
            let point = Scalar(UInt64(n + 5))
            #expect(Shamir.interpolate(subset, at: point) == polynomial.evaluate(at: point))
        }
        // Interpolation in the exponent and Feldman verification.
        let commitments = polynomial.commitments
        let inExponent = shares.prefix(t + 1).map { (index: $0.index, value: GroupElement.generatorMultiple($0.value)) }
        #expect(Shamir.interpolateInExponent(Array(inExponent)) == commitments.publicKey)
        for share in shares {
            #expect(commitments.verifies(share: share.value, for: share.index))
            #expect(!commitments.verifies(share: share.value + .one, for: share.index))
        }
        // Single and batched Lagrange coefficients agree.
        let indices = Array(1...(t + 1))
        let batch = Shamir.lagrangeCoefficients(for: indices)
        for (position, index) in indices.enumerated() {
            #expect(Shamir.lagrangeCoefficient(for: index, among: indices) == batch[position])
        }
    }
}
