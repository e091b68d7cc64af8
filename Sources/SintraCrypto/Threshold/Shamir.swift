/// Shamir secret sharing over scalars modulo ℓ, with Lagrange interpolation and Feldman commitments.
///
/// Party indices are 1…n (index 0 is the secret itself). A degree-t polynomial f with f(0) = secret gives
/// share f(i) to party i; any t + 1 shares determine f(0), any t reveal nothing about it (Shamir 1979).
/// Feldman (1987) publishes C_j = a_j·G for the coefficients a_j, so that party i checks its share with
/// f(i)·G = Σ_j i^j·C_j without learning anything beyond the public key C_0.
public enum Shamir {
    /// A random polynomial of the given degree with constant term `secret`.
    public static func randomPolynomial<Generator: RandomNumberGenerator>(
        secret: Scalar, degree: Int, using generator: inout Generator
    ) -> Polynomial {
        precondition(degree >= 0, "a polynomial has a non-negative degree")
        var coefficients = [secret]
        for _ in 0..<degree {
            coefficients.append(Scalar.random(using: &generator))
        }
        return Polynomial(coefficients: coefficients)
    }

    /// The Lagrange coefficient λ_j(x) = Π_{m ∈ indices, m ≠ j} (x − m)/(j − m) for interpolating at x
    /// from the shares of `indices`. The indices must be distinct and contain `index`.
    public static func lagrangeCoefficient(for index: Int, among indices: [Int], at x: Scalar = .zero) -> Scalar {
        precondition(indices.contains(index), "the index must be one of the interpolation points")
        precondition(Set(indices).count == indices.count, "interpolation points must be distinct")
        var numerator = Scalar.one
        var denominator = Scalar.one
        let j = Scalar(UInt64(index))
        for other in indices where other != index {
            let m = Scalar(UInt64(other))
            numerator *= x - m
            denominator *= j - m
        }
        return numerator * denominator.inverted()
    }

    /// All Lagrange coefficients for `indices` at x, in the order of `indices`, with a single inversion.
    public static func lagrangeCoefficients(for indices: [Int], at x: Scalar = .zero) -> [Scalar] {
        precondition(Set(indices).count == indices.count, "interpolation points must be distinct")
        let points = indices.map { Scalar(UInt64($0)) }
        var numerators = [Scalar]()
        var denominators = [Scalar]()
        for (position, j) in points.enumerated() {
            var numerator = Scalar.one
            var denominator = Scalar.one
            for (otherPosition, m) in points.enumerated() where otherPosition != position {
                numerator *= x - m
                denominator *= j - m
            }
            numerators.append(numerator)
            denominators.append(denominator)
        }
        let inverses = batchInvert(denominators)
        return zip(numerators, inverses).map { $0 * $1 }
    }

    /// Interpolates f(x) from (index, f(index)) pairs with distinct indices.
    public static func interpolate(_ shares: [(index: Int, value: Scalar)], at x: Scalar = .zero) -> Scalar {
        let coefficients = lagrangeCoefficients(for: shares.map(\.index), at: x)
        var result = Scalar.zero
        for (share, coefficient) in zip(shares, coefficients) {
            result += share.value * coefficient
        }
        return result
    }

    /// Interpolates in the exponent: given (index, f(index)·P) pairs, returns f(x)·P. Variable time (the
    /// inputs are public shares).
    public static func interpolateInExponent(_ shares: [(index: Int, value: GroupElement)], at x: Scalar = .zero)
        -> GroupElement
    {
        let coefficients = lagrangeCoefficients(for: shares.map(\.index), at: x)
        return GroupElement.multiscalarVariableTime(coefficients, shares.map(\.value))
    }

    /// Inverts every scalar with one inversion (Montgomery's trick). Zero inputs are not allowed.
    static func batchInvert(_ values: [Scalar]) -> [Scalar] {
        var prefixes = [Scalar]()
        prefixes.reserveCapacity(values.count)
        var running = Scalar.one
        for value in values {
            prefixes.append(running)
            running *= value
        }
        precondition(!running.isZero, "cannot invert zero")
        var inverse = running.inverted()
        var result = [Scalar](repeating: .zero, count: values.count)
        for index in stride(from: values.count - 1, through: 0, by: -1) {
            result[index] = inverse * prefixes[index]
            inverse *= values[index]
        }
        return result
    }

    /// A polynomial over scalars, lowest coefficient first. Holds secrets; never logged.
    public struct Polynomial: Sendable {
        public let coefficients: [Scalar]

        public init(coefficients: [Scalar]) {
            precondition(!coefficients.isEmpty, "a polynomial has at least a constant term")
            self.coefficients = coefficients
        }

        public var degree: Int { coefficients.count - 1 }

        /// f(x) by Horner's rule (constant time in the coefficients).
        public func evaluate(at x: Scalar) -> Scalar {
            var result = Scalar.zero
            for coefficient in coefficients.reversed() {
                result = result * x + coefficient
            }
            return result
        }

        /// The share of party `index` (1-based): f(index).
        public func share(for index: Int) -> Scalar {
            precondition(index >= 1, "party indices start at 1")
            return evaluate(at: Scalar(UInt64(index)))
        }

        /// Feldman commitments C_j = a_j·G.
        public var commitments: FeldmanCommitments {
            FeldmanCommitments(coefficients: coefficients.map(GroupElement.generatorMultiple))
        }
    }
}

/// Feldman commitments to a sharing polynomial: C_j = a_j·G, so C_0 is the public key of the secret.
public struct FeldmanCommitments: Sendable, Equatable {
    public let coefficients: [GroupElement]

    public init(coefficients: [GroupElement]) {
        precondition(!coefficients.isEmpty, "at least the constant term is committed")
        self.coefficients = coefficients
    }

    /// The polynomial's degree t (threshold − 1).
    public var degree: Int { coefficients.count - 1 }

    /// The committed secret's public key, a_0·G.
    public var publicKey: GroupElement { coefficients[0] }

    /// f(index)·G = Σ_j index^j·C_j: the public verification key of party `index`.
    public func verificationKey(for index: Int) -> GroupElement {
        precondition(index >= 0, "party indices are non-negative")
        let x = Scalar(UInt64(index))
        var power = Scalar.one
        var powers = [Scalar]()
        for _ in coefficients {
            powers.append(power)
            power *= x
        }
        return GroupElement.multiscalarVariableTime(powers, coefficients)
    }

    /// Whether `share` is f(index) for the committed polynomial.
    public func verifies(share: Scalar, for index: Int) -> Bool {
        GroupElement.generatorMultiple(share) == verificationKey(for: index)
    }
}
