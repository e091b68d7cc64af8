/// An integer modulo ℓ = 2^252 + 27742317777372353535851937790883648493, the order of ristretto255.
///
/// Always canonical (below ℓ). Arithmetic is constant time (Montgomery multiplication in radix 2^52,
/// no secret-dependent branch or index), so scalars may be secret keys, shares and nonces.
/// The wire encoding is 32 bytes little-endian (RFC 9496 / RFC 9591 SerializeScalar).
public struct Scalar: Sendable, CustomStringConvertible {
    @usableFromInline var limbs: Limbs52

    @inlinable
    init(limbs: Limbs52) {
        self.limbs = limbs
    }

    public static let zero = Scalar(limbs: Limbs52(0, 0, 0, 0, 0))
    public static let one = Scalar(limbs: Limbs52(1, 0, 0, 0, 0))

    /// The scalar for a small integer.
    public init(_ value: UInt64) {
        let mask: UInt64 = (1 << 52) - 1
        limbs = Limbs52(value & mask, value >> 52, 0, 0, 0)
    }

    /// Decodes 32 little-endian bytes, rejecting values ≥ ℓ (RFC 9496 / RFC 8032 canonical scalars).
    public init(canonicalBytes bytes: some Collection<UInt8>) throws(DecodingError) {
        let array = Array(bytes)
        guard array.count == 32 else {
            throw DecodingError(.wrongLength(expected: 32, actual: array.count), in: "scalar")
        }
        let unreduced = Limbs52(bytes32: array)
        // Canonical iff subtracting ℓ borrows.
        let (_, borrow) = Limbs52.subtractWithBorrow(unreduced, Limbs52.order)
        guard borrow.isTrue else {
            throw DecodingError(.nonCanonicalScalar, in: "scalar")
        }
        limbs = unreduced
    }

    /// Reduces 32 little-endian bytes modulo ℓ.
    public init(reducing32 bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        precondition(array.count == 32, "reducing32 takes 32 bytes")
        // x·R/R reduces any 256-bit x to [0, 2ℓ), and the final subtraction inside montgomeryMultiply to [0, ℓ).
        limbs = Limbs52.montgomeryMultiply(Limbs52(bytes32: array), Limbs52.montgomeryR)
    }

    /// Reduces 64 little-endian bytes modulo ℓ; a uniform 64-byte string gives a uniform scalar
    /// (bias below 2^−259). Used for hash-to-scalar and random scalars.
    public init(reducing64 bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        precondition(array.count == 64, "reducing64 takes 64 bytes")
        let (low, high) = Limbs52.split512(array)
        let lowReduced = Limbs52.montgomeryMultiply(low, Limbs52.montgomeryR)  // low
        let highReduced = Limbs52.montgomeryMultiply(high, Limbs52.montgomeryRSquared)  // high·2^260
        limbs = Limbs52.add(lowReduced, highReduced)
    }

    /// A uniformly random scalar from a cryptographically secure generator.
    public static func random<Generator: RandomNumberGenerator>(using generator: inout Generator) -> Scalar {
        Scalar(reducing64: randomBytes(64, using: &generator))
    }

    /// A uniformly random scalar from the system's secure generator.
    public static func random() -> Scalar {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// The canonical 32-byte little-endian encoding.
    public var bytes: [UInt8] { limbs.bytes32() }

    public var description: String { "Scalar(\(Hex.encode(bytes)))" }

    /// Whether this is zero. Reveals only that bit.
    public var isZero: Bool { limbs.isZero.isTrue }

    public static func + (a: Scalar, b: Scalar) -> Scalar {
        Scalar(limbs: Limbs52.add(a.limbs, b.limbs))
    }

    public static func - (a: Scalar, b: Scalar) -> Scalar {
        Scalar(limbs: Limbs52.subtract(a.limbs, b.limbs))
    }

    public static prefix func - (a: Scalar) -> Scalar {
        Scalar(limbs: Limbs52.subtract(Limbs52.zero, a.limbs))
    }

    public static func * (a: Scalar, b: Scalar) -> Scalar {
        // (a·b/R)·R²/R = a·b.
        let montgomery = Limbs52.montgomeryMultiply(a.limbs, b.limbs)
        return Scalar(limbs: Limbs52.montgomeryMultiply(montgomery, Limbs52.montgomeryRSquared))
    }

    public static func += (a: inout Scalar, b: Scalar) { a = a + b }
    public static func -= (a: inout Scalar, b: Scalar) { a = a - b }
    public static func *= (a: inout Scalar, b: Scalar) { a = a * b }

    /// The multiplicative inverse (self^(ℓ−2)); zero maps to zero. Constant time.
    public func inverted() -> Scalar {
        // Work in the Montgomery domain: m = self·R.
        let m = Limbs52.montgomeryMultiply(limbs, Limbs52.montgomeryRSquared)
        var result = Limbs52.montgomeryR  // 1 in the Montgomery domain
        // Left-to-right square-and-multiply over the public exponent ℓ − 2.
        let exponent = Scalar.orderMinusTwoBytes
        for byteIndex in stride(from: 31, through: 0, by: -1) {
            let byte = exponent[byteIndex]
            for bit in stride(from: 7, through: 0, by: -1) {
                result = Limbs52.montgomeryMultiply(result, result)
                if (byte >> UInt8(bit)) & 1 == 1 {
                    result = Limbs52.montgomeryMultiply(result, m)
                }
            }
        }
        return Scalar(limbs: Limbs52.montgomeryMultiply(result, Limbs52(1, 0, 0, 0, 0)))
    }

    private static let orderMinusTwoBytes: [UInt8] = {
        var bytes = Limbs52.order.bytes32()
        bytes[0] -= 2  // ℓ ends in 0xed, no borrow
        return bytes
    }()

    /// Calls `body` with the signed radix-16 digits d_i ∈ [−8, 8) of self = Σ d_i·16^i (64 digits; the top one
    /// may be 8). The digits live in stack memory only for the duration of the call, so the constant-time
    /// scalar multiplications allocate nothing per call. Constant time: no branch or index depends on a digit.
    @inline(__always)
    func withRadix16Digits<Result>(_ body: (UnsafeBufferPointer<Int8>) -> Result) -> Result {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 64) { digits in
            // A 52-bit limb holds exactly 13 nibbles, so nibble i is bits 4·(i mod 13) of limb i / 13.
            @inline(__always) func spread(_ limb: UInt64, from first: Int, count: Int) {
                for offset in 0..<count {
                    digits.initializeElement(
                        at: first + offset, to: Int8(truncatingIfNeeded: (limb >> UInt64(4 * offset)) & 15))
                }
            }
            spread(limbs.w0, from: 0, count: 13)
            spread(limbs.w1, from: 13, count: 13)
            spread(limbs.w2, from: 26, count: 13)
            spread(limbs.w3, from: 39, count: 13)
            spread(limbs.w4, from: 52, count: 12)  // a canonical scalar is below 2^253: nibble 63 is its top
            // Recentre each digit into [−8, 8) and carry into the next; the arithmetic shift makes it branch-free.
            for index in 0..<63 {
                let carry = (digits[index] &+ 8) >> 4
                digits[index] &-= carry << 4
                digits[index + 1] &+= carry
            }
            return body(UnsafeBufferPointer(digits))
        }
    }

    /// The value as four little-endian 64-bit words (the top one below 2^61, as the scalar is below ℓ).
    var littleEndianWords: (UInt64, UInt64, UInt64, UInt64) {
        (
            limbs.w0 | (limbs.w1 << 52), (limbs.w1 >> 12) | (limbs.w2 << 40), (limbs.w2 >> 24) | (limbs.w3 << 28),
            (limbs.w3 >> 36) | (limbs.w4 << 16)
        )
    }

    /// Width-w non-adjacent form (variable time; public scalars only): 256 digits, each zero or odd
    /// with |d| < 2^(w−1).
    func nonAdjacentForm(width: Int) -> [Int8] {
        precondition((2...8).contains(width), "wNAF width out of range")
        let bytes = self.bytes
        var words = [UInt64](repeating: 0, count: 5)
        for index in 0..<32 {
            words[index / 8] |= UInt64(bytes[index]) << (8 * UInt64(index % 8))
        }
        var naf = [Int8](repeating: 0, count: 256)
        let windowWidth = UInt64(1) << UInt64(width)
        let windowMask = windowWidth - 1
        var position = 0
        var carry: UInt64 = 0
        while position < 256 {
            let wordIndex = position / 64
            let bitIndex = UInt64(position % 64)
            let bitBuffer: UInt64
            if bitIndex < 64 - UInt64(width) {
                bitBuffer = words[wordIndex] >> bitIndex
            } else {
                bitBuffer = (words[wordIndex] >> bitIndex) | (words[wordIndex + 1] << (64 - bitIndex))
            }
            let window = carry + (bitBuffer & windowMask)
            if window & 1 == 0 {
                position += 1
                continue
            }
            if window < windowWidth / 2 {
                carry = 0
                naf[position] = Int8(window)
            } else {
                carry = 1
                naf[position] = Int8(Int64(window) - Int64(windowWidth))
            }
            position += width
        }
        return naf
    }
}

extension Scalar: Equatable {
    /// Constant-time comparison.
    public static func == (a: Scalar, b: Scalar) -> Bool {
        let x = a.limbs, y = b.limbs
        return Choice.isZero((x.w0 ^ y.w0) | (x.w1 ^ y.w1) | (x.w2 ^ y.w2) | (x.w3 ^ y.w3) | (x.w4 ^ y.w4)).isTrue
    }
}

/// Five 52-bit limbs of a scalar (dalek's "Scalar52" layout), with Montgomery arithmetic, R = 2^260.
@usableFromInline
struct Limbs52: Sendable {
    @usableFromInline var w0, w1, w2, w3, w4: UInt64

    @usableFromInline static let mask: UInt64 = (1 << 52) - 1

    @inlinable
    init(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64, _ w4: UInt64) {
        (self.w0, self.w1, self.w2, self.w3, self.w4) = (w0, w1, w2, w3, w4)
    }

    static let zero = Limbs52(0, 0, 0, 0, 0)
    /// ℓ.
    static let order = Limbs52(0x2631a5cf5d3ed, 0xdea2f79cd6581, 0x14def9, 0x0, 0x100000000000)
    /// R mod ℓ with R = 2^260.
    static let montgomeryR = Limbs52(0xf48bd6721e6ed, 0x3bab5ac67e45a, 0xfffffeb35e51b, 0xfffffffffffff, 0xfffffffffff)
    /// R² mod ℓ.
    static let montgomeryRSquared = Limbs52(
        0x9d265e952d13b, 0xd63c715bea69f, 0x5be65cb687604, 0x3dceec73d217f, 0x9411b7c309a)
    /// −ℓ^(−1) mod 2^52.
    static let montgomeryFactor: UInt64 = 0x51da312547e1b

    /// The little-endian 64-bit word at byte offset 8·index of `bytes`, read without an intermediate array.
    @inline(__always)
    static func word(_ bytes: [UInt8], _ index: Int) -> UInt64 {
        var value: UInt64 = 0
        for byte in 0..<8 {
            value |= UInt64(bytes[8 * index + byte]) << UInt64(8 * byte)
        }
        return value
    }

    /// Unpacks 32 bytes (any 256-bit value; the top limb holds 48 bits).
    init(bytes32 bytes: [UInt8]) {
        precondition(bytes.count >= 32)
        let (w0, w1) = (Limbs52.word(bytes, 0), Limbs52.word(bytes, 1))
        let (w2, w3) = (Limbs52.word(bytes, 2), Limbs52.word(bytes, 3))
        let mask = Limbs52.mask
        self.init(
            w0 & mask,
            ((w0 >> 52) | (w1 << 12)) & mask,
            ((w1 >> 40) | (w2 << 24)) & mask,
            ((w2 >> 28) | (w3 << 36)) & mask,
            w3 >> 16)
    }

    /// Splits 64 bytes into the low 260 bits and the high 252 bits.
    static func split512(_ bytes: [UInt8]) -> (Limbs52, Limbs52) {
        precondition(bytes.count >= 64)
        let (w0, w1, w2, w3) = (word(bytes, 0), word(bytes, 1), word(bytes, 2), word(bytes, 3))
        let (w4, w5, w6, w7) = (word(bytes, 4), word(bytes, 5), word(bytes, 6), word(bytes, 7))
        let m = mask
        let low = Limbs52(
            w0 & m,
            ((w0 >> 52) | (w1 << 12)) & m,
            ((w1 >> 40) | (w2 << 24)) & m,
            ((w2 >> 28) | (w3 << 36)) & m,
            ((w3 >> 16) | (w4 << 48)) & m)
        let high = Limbs52(
            (w4 >> 4) & m,
            ((w4 >> 56) | (w5 << 8)) & m,
            ((w5 >> 44) | (w6 << 20)) & m,
            ((w6 >> 32) | (w7 << 32)) & m,
            w7 >> 20)
        return (low, high)
    }

    func bytes32() -> [UInt8] {
        let w0 = self.w0 | (w1 << 52)
        let w1 = (self.w1 >> 12) | (w2 << 40)
        let w2 = (self.w2 >> 24) | (w3 << 28)
        let w3 = (self.w3 >> 36) | (w4 << 16)
        // Written in place: encoding is on the path of every scalar that goes on the wire.
        return [UInt8](unsafeUninitializedCapacity: 32) { buffer, initializedCount in
            for byte in 0..<8 {
                let shift = UInt64(8 * byte)
                buffer[byte] = UInt8(truncatingIfNeeded: w0 >> shift)
                buffer[8 + byte] = UInt8(truncatingIfNeeded: w1 >> shift)
                buffer[16 + byte] = UInt8(truncatingIfNeeded: w2 >> shift)
                buffer[24 + byte] = UInt8(truncatingIfNeeded: w3 >> shift)
            }
            initializedCount = 32
        }
    }

    var isZero: Choice { Choice.isZero(w0 | w1 | w2 | w3 | w4) }

    /// a − b over 5×52 bits; returns the masked difference and whether it borrowed.
    static func subtractWithBorrow(_ a: Limbs52, _ b: Limbs52) -> (Limbs52, Choice) {
        var borrow: UInt64 = 0
        borrow = a.w0 &- (b.w0 &+ (borrow >> 63))
        let d0 = borrow & mask
        borrow = a.w1 &- (b.w1 &+ (borrow >> 63))
        let d1 = borrow & mask
        borrow = a.w2 &- (b.w2 &+ (borrow >> 63))
        let d2 = borrow & mask
        borrow = a.w3 &- (b.w3 &+ (borrow >> 63))
        let d3 = borrow & mask
        borrow = a.w4 &- (b.w4 &+ (borrow >> 63))
        let d4 = borrow & mask
        return (Limbs52(d0, d1, d2, d3, d4), Choice(unchecked: borrow >> 63))
    }

    /// (a − b) mod ℓ for a, b < ℓ (also correct for a < 2ℓ, b = ℓ): adds ℓ back when the subtraction
    /// borrows.
    static func subtract(_ a: Limbs52, _ b: Limbs52) -> Limbs52 {
        let (difference, borrowed) = subtractWithBorrow(a, b)
        let addMask = borrowed.mask
        var carry: UInt64 = 0
        carry = (carry >> 52) &+ difference.w0 &+ (order.w0 & addMask)
        let r0 = carry & mask
        carry = (carry >> 52) &+ difference.w1 &+ (order.w1 & addMask)
        let r1 = carry & mask
        carry = (carry >> 52) &+ difference.w2 &+ (order.w2 & addMask)
        let r2 = carry & mask
        carry = (carry >> 52) &+ difference.w3 &+ (order.w3 & addMask)
        let r3 = carry & mask
        carry = (carry >> 52) &+ difference.w4 &+ (order.w4 & addMask)
        let r4 = carry & mask
        return Limbs52(r0, r1, r2, r3, r4)
    }

    /// (a + b) mod ℓ for a, b < ℓ.
    static func add(_ a: Limbs52, _ b: Limbs52) -> Limbs52 {
        var carry: UInt64 = 0
        carry = a.w0 &+ b.w0
        let s0 = carry & mask
        carry = a.w1 &+ b.w1 &+ (carry >> 52)
        let s1 = carry & mask
        carry = a.w2 &+ b.w2 &+ (carry >> 52)
        let s2 = carry & mask
        carry = a.w3 &+ b.w3 &+ (carry >> 52)
        let s3 = carry & mask
        carry = a.w4 &+ b.w4 &+ (carry >> 52)
        let s4 = carry & mask
        return subtract(Limbs52(s0, s1, s2, s3, s4), order)
    }

    @inline(__always)
    static func wide(_ a: UInt64, _ b: UInt64) -> UInt128 { UInt128(a) &* UInt128(b) }

    /// a·b/R mod ℓ, for a < 2^260 and b < ℓ (or both below ℓ). Result below ℓ.
    static func montgomeryMultiply(_ a: Limbs52, _ b: Limbs52) -> Limbs52 {
        let z0 = wide(a.w0, b.w0)
        let z1 = wide(a.w0, b.w1) &+ wide(a.w1, b.w0)
        let z2 = wide(a.w0, b.w2) &+ wide(a.w1, b.w1) &+ wide(a.w2, b.w0)
        let z3 = wide(a.w0, b.w3) &+ wide(a.w1, b.w2) &+ wide(a.w2, b.w1) &+ wide(a.w3, b.w0)
        let z4 = wide(a.w0, b.w4) &+ wide(a.w1, b.w3) &+ wide(a.w2, b.w2) &+ wide(a.w3, b.w1) &+ wide(a.w4, b.w0)
        let z5 = wide(a.w1, b.w4) &+ wide(a.w2, b.w3) &+ wide(a.w3, b.w2) &+ wide(a.w4, b.w1)
        let z6 = wide(a.w2, b.w4) &+ wide(a.w3, b.w3) &+ wide(a.w4, b.w2)
        let z7 = wide(a.w3, b.w4) &+ wide(a.w4, b.w3)
        let z8 = wide(a.w4, b.w4)
        return montgomeryReduce(z0, z1, z2, z3, z4, z5, z6, z7, z8)
    }

    /// Montgomery reduction of a 9-limb product: returns limbs·R^(−1) mod ℓ.
    static func montgomeryReduce(
        _ z0: UInt128, _ z1: UInt128, _ z2: UInt128, _ z3: UInt128, _ z4: UInt128,
        _ z5: UInt128, _ z6: UInt128, _ z7: UInt128, _ z8: UInt128
    ) -> Limbs52 {
        let l = order
        @inline(__always) func firstHalf(_ sum: UInt128) -> (UInt128, UInt64) {
            let n = (UInt64(truncatingIfNeeded: sum) &* montgomeryFactor) & mask
            return ((sum &+ wide(n, l.w0)) >> 52, n)
        }
        @inline(__always) func secondHalf(_ sum: UInt128) -> (UInt128, UInt64) {
            (sum >> 52, UInt64(truncatingIfNeeded: sum) & mask)
        }
        // First half: choose n_i so that adding n·ℓ clears the low 260 bits.
        let n0: UInt64
        var carry: UInt128
        (carry, n0) = firstHalf(z0)
        let n1: UInt64, n2: UInt64, n3: UInt64, n4: UInt64
        (carry, n1) = firstHalf(carry &+ z1 &+ wide(n0, l.w1))
        (carry, n2) = firstHalf(carry &+ z2 &+ wide(n0, l.w2) &+ wide(n1, l.w1))
        (carry, n3) = firstHalf(carry &+ z3 &+ wide(n1, l.w2) &+ wide(n2, l.w1))
        (carry, n4) = firstHalf(carry &+ z4 &+ wide(n0, l.w4) &+ wide(n2, l.w2) &+ wide(n3, l.w1))
        // Second half: the low 260 bits are zero now, so the upper limbs are the quotient by R.
        let r0: UInt64, r1: UInt64, r2: UInt64, r3: UInt64
        (carry, r0) = secondHalf(carry &+ z5 &+ wide(n1, l.w4) &+ wide(n3, l.w2) &+ wide(n4, l.w1))
        (carry, r1) = secondHalf(carry &+ z6 &+ wide(n2, l.w4) &+ wide(n4, l.w2))
        (carry, r2) = secondHalf(carry &+ z7 &+ wide(n3, l.w4))
        (carry, r3) = secondHalf(carry &+ z8 &+ wide(n4, l.w4))
        let r4 = UInt64(truncatingIfNeeded: carry)
        // The result is below 2ℓ; one conditional subtraction makes it canonical.
        return subtract(Limbs52(r0, r1, r2, r3, r4), order)
    }
}
