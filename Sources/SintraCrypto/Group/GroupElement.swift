/// An element of ristretto255 (RFC 9496), the prime-order group of order ℓ in which all of Sintra's
/// threshold cryptography lives.
///
/// Internally an edwards25519 point standing for its coset modulo the 4-torsion; equality, encoding and
/// decoding follow RFC 9496 §4.3, so encodings interoperate with libsodium, dalek and every other
/// ristretto255 implementation. Operations with a secret scalar are constant time.
public struct GroupElement: Sendable, CustomStringConvertible {
    @usableFromInline var point: EdwardsPoint

    @inlinable
    init(point: EdwardsPoint) {
        self.point = point
    }

    /// The identity element (encoded as 32 zero bytes).
    public static let identity = GroupElement(point: .identity)

    /// The canonical generator (the edwards25519 base point).
    public static let generator = GroupElement(point: .basePoint)

    /// Length of an encoding in bytes.
    public static let encodedLength = 32

    // MARK: Decoding and encoding (RFC 9496 §4.3.1, §4.3.2)

    /// Decodes a 32-byte encoding, rejecting every non-canonical or invalid one (RFC 9496 §4.3.1).
    public init(encoded bytes: some Collection<UInt8>) throws(DecodingError) {
        let s = Array(bytes)
        guard s.count == 32 else {
            throw DecodingError(.wrongLength(expected: 32, actual: s.count), in: "ristretto255 element")
        }
        let field = FieldElement(littleEndian: s)
        // Canonical: the top bit is clear and re-encoding gives the same bytes; and s is non-negative.
        let canonical = constantTimeEqual(field.encoded(), s)
        guard canonical, !field.isNegative.isTrue else {
            throw DecodingError(.nonCanonicalElement, in: "ristretto255 element")
        }
        let ss = field.squared()
        let u1 = FieldElement.one - ss
        let u2 = FieldElement.one + ss
        let u2Squared = u2.squared()
        let v = (FieldElement.d * u1.squared()).negated() - u2Squared
        let (wasSquare, inverseSqrt) = FieldElement.sqrtRatioM1(.one, v * u2Squared)
        let denominatorX = inverseSqrt * u2
        let denominatorY = inverseSqrt * denominatorX * v
        let twoS = field + field
        let x = (twoS * denominatorX).absolute()
        let y = u1 * denominatorY
        let t = x * y
        guard wasSquare.isTrue, !t.isNegative.isTrue, !y.isZero.isTrue else {
            throw DecodingError(.invalidElement, in: "ristretto255 element")
        }
        point = EdwardsPoint(x: x, y: y, z: .one, t: t)
    }

    /// The canonical 32-byte encoding (RFC 9496 §4.3.2).
    public var encoded: [UInt8] {
        let p = point
        let u1 = (p.z + p.y) * (p.z - p.y)
        let u2 = p.x * p.y
        let (_, inverseSqrt) = FieldElement.sqrtRatioM1(.one, u1 * u2.squared())
        let denominator1 = inverseSqrt * u1
        let denominator2 = inverseSqrt * u2
        let zInverse = denominator1 * denominator2 * p.t
        let ix = p.x * FieldElement.sqrtMinusOne
        let iy = p.y * FieldElement.sqrtMinusOne
        let enchantedDenominator = denominator1 * FieldElement.invSqrtAMinusD
        let rotate = (p.t * zInverse).isNegative
        var x = p.x
        var y = p.y
        x.conditionalAssign(iy, rotate)
        y.conditionalAssign(ix, rotate)
        var denominatorInverse = denominator2
        denominatorInverse.conditionalAssign(enchantedDenominator, rotate)
        y = y.conditionallyNegated((x * zInverse).isNegative)
        let s = (denominatorInverse * (p.z - y)).absolute()
        return s.encoded()
    }

    public var description: String { "GroupElement(\(Hex.encode(encoded)))" }

    // MARK: Element derivation (RFC 9496 §4.3.4)

    /// Maps 64 uniformly random bytes to an element, uniformly (RFC 9496 §4.3.4 FROM_UNIFORM_BYTES):
    /// the sum of the Elligator images of the two halves.
    public init(uniformBytes bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        precondition(array.count == 64, "element derivation takes 64 bytes")
        let first = GroupElement.elligator(FieldElement(littleEndian: array[0..<32]))
        let second = GroupElement.elligator(FieldElement(littleEndian: array[32..<64]))
        point = first + second.cached
    }

    /// RFC 9496 MAP: the ristretto Elligator map from a field element to a point.
    private static func elligator(_ t: FieldElement) -> EdwardsPoint {
        let one = FieldElement.one
        let r = FieldElement.sqrtMinusOne * t.squared()
        let u = (r + one) * FieldElement.oneMinusDSquared
        let v = (one.negated() - r * FieldElement.d) * (r + FieldElement.d)
        let ratio = FieldElement.sqrtRatioM1(u, v)
        let wasSquare = ratio.wasSquare
        var s = ratio.root
        let sPrime = (s * t).absolute().negated()
        s.conditionalAssign(sPrime, wasSquare.not)
        var c = one.negated()
        c.conditionalAssign(r, wasSquare.not)
        let n = c * (r - one) * FieldElement.dMinusOneSquared - v
        let w0 = (s + s) * v
        let w1 = n * FieldElement.sqrtADMinusOne
        let sSquared = s.squared()
        let w2 = one - sSquared
        let w3 = one + sSquared
        return EdwardsPoint(x: w0 * w3, y: w2 * w1, z: w1 * w3, t: w0 * w2)
    }

    // MARK: Group operations

    public static func + (a: GroupElement, b: GroupElement) -> GroupElement {
        GroupElement(point: a.point + b.point.cached)
    }

    public static func - (a: GroupElement, b: GroupElement) -> GroupElement {
        GroupElement(point: a.point - b.point.cached)
    }

    public static prefix func - (a: GroupElement) -> GroupElement {
        GroupElement(point: a.point.negated())
    }

    /// scalar·element in constant time (safe for secret scalars).
    public static func * (scalar: Scalar, element: GroupElement) -> GroupElement {
        GroupElement(point: element.point.multiplied(by: scalar))
    }

    /// scalar·generator in constant time, using a precomputed table.
    public static func generatorMultiple(_ scalar: Scalar) -> GroupElement {
        GroupElement(point: EdwardsPoint.multiplyBase(by: scalar))
    }

    /// Σ scalars[i]·elements[i] in variable time. Only for public scalars (verification).
    public static func multiscalarVariableTime(_ scalars: [Scalar], _ elements: [GroupElement]) -> GroupElement {
        GroupElement(point: EdwardsPoint.multiscalarMultiplyVariableTime(scalars, elements.map(\.point)))
    }

    /// Σ scalars[i]·elements[i] in variable time with a chosen method, for benchmarks comparing them.
    @_spi(Benchmarks)
    public static func multiscalarVariableTime(
        _ scalars: [Scalar], _ elements: [GroupElement], algorithm: MultiscalarAlgorithm
    ) -> GroupElement {
        GroupElement(
            point: EdwardsPoint.multiscalarMultiplyVariableTime(scalars, elements.map(\.point), algorithm: algorithm))
    }

    /// Whether this is the identity element.
    public var isIdentity: Bool { self == .identity }
}

extension GroupElement: Equatable {
    /// RFC 9496 §4.3.3: equal as ristretto255 elements (x1·y2 = y1·x2 or y1·y2 = x1·x2). Constant time.
    public static func == (a: GroupElement, b: GroupElement) -> Bool {
        let p = a.point, q = b.point
        let first = (p.x * q.y).equals(p.y * q.x)
        let second = (p.y * q.y).equals(p.x * q.x)
        return first.or(second).isTrue
    }
}

extension GroupElement: Hashable {
    /// Hashes the canonical encoding, consistent with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(encoded)
    }
}
