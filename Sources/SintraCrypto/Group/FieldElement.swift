/// An element of the prime field GF(2^255 − 19), the base field of edwards25519.
///
/// Five unsigned 64-bit limbs in radix 2^51: value = l0 + l1·2^51 + l2·2^102 + l3·2^153 + l4·2^204.
/// Limbs are kept "weakly reduced" (each below about 2^52) between operations; only `encoded()`
/// produces the unique canonical representative. Every operation here is constant time: no branch and
/// no memory index depends on the value, so field elements may hold secrets.
///
/// Bounds (checked by the property tests against a big-integer reference):
/// - `*` and `squared()` accept limbs below 2^54 and return limbs below 2^51 + 2^13;
/// - `+` does not carry: adding two outputs of `*` gives limbs below 2^52 + 2^14;
/// - `-` and `negated()` accept a right-hand side with limbs below 2^55 and carry the result.
@usableFromInline
struct FieldElement: Sendable {
    @usableFromInline var l0: UInt64
    @usableFromInline var l1: UInt64
    @usableFromInline var l2: UInt64
    @usableFromInline var l3: UInt64
    @usableFromInline var l4: UInt64

    @usableFromInline static let limbMask: UInt64 = (1 << 51) - 1

    @inlinable @inline(__always)
    init(_ l0: UInt64, _ l1: UInt64, _ l2: UInt64, _ l3: UInt64, _ l4: UInt64) {
        self.l0 = l0
        self.l1 = l1
        self.l2 = l2
        self.l3 = l3
        self.l4 = l4
    }

    @usableFromInline static let zero = FieldElement(0, 0, 0, 0, 0)
    @usableFromInline static let one = FieldElement(1, 0, 0, 0, 0)

    /// Edwards curve constant d = −121665/121666.
    @usableFromInline static let d = FieldElement(
        0x34dca135978a3, 0x1a8283b156ebd, 0x5e7a26001c029, 0x739c663a03cbb, 0x52036cee2b6ff)
    /// 2·d, used by the cached point formulas.
    @usableFromInline static let d2 = FieldElement(
        0x69b9426b2f159, 0x35050762add7a, 0x3cf44c0038052, 0x6738cc7407977, 0x2406d9dc56dff)
    /// The non-negative square root of −1 (RFC 9496 SQRT_M1).
    @usableFromInline static let sqrtMinusOne = FieldElement(
        0x61b274a0ea0b0, 0xd5a5fc8f189d, 0x7ef5e9cbd0c60, 0x78595a6804c9e, 0x2b8324804fc1d)
    /// RFC 9496 INVSQRT_A_MINUS_D = 1/sqrt(a − d), a = −1.
    @usableFromInline static let invSqrtAMinusD = FieldElement(
        0xfdaa805d40ea, 0x2eb482e57d339, 0x7610274bc58, 0x6510b613dc8ff, 0x786c8905cfaff)
    /// RFC 9496 SQRT_AD_MINUS_ONE = sqrt(a·d − 1), the root the RFC prints (it is the negative one).
    @usableFromInline static let sqrtADMinusOne = FieldElement(
        0x7f6a0497b2e1b, 0x1836f0a97afd2, 0x7d747f6be7638, 0x456079e7e6498, 0x376931bf2b834)
    /// RFC 9496 ONE_MINUS_D_SQ = 1 − d².
    @usableFromInline static let oneMinusDSquared = FieldElement(
        0x409c1945fc176, 0x719abc6a1fc4f, 0x1c37f90b20684, 0x6bccca55eedf, 0x29072a8b2b3e)
    /// RFC 9496 D_MINUS_ONE_SQ = (d − 1)².
    @usableFromInline static let dMinusOneSquared = FieldElement(
        0x55aaa44ed4d20, 0x59603c3332635, 0x26d3baf4a7928, 0x120a66e6997a9, 0x5968b37af66c2)

    // MARK: Encoding

    /// Loads 32 little-endian bytes, ignoring the top bit (RFC 7748 style). The value may be
    /// non-canonical (≥ p); callers that need canonicity compare `encoded()` with the input.
    init<Bytes: RandomAccessCollection>(littleEndian bytes: Bytes) where Bytes.Element == UInt8, Bytes.Index == Int {
        precondition(bytes.count == 32, "a field element is encoded in 32 bytes")
        let base = bytes.startIndex
        func word(_ offset: Int) -> UInt64 {
            var value: UInt64 = 0
            for byte in 0..<8 {
                value |= UInt64(bytes[base + offset + byte]) << (8 * byte)
            }
            return value
        }
        let w0 = word(0), w1 = word(8), w2 = word(16), w3 = word(24)
        let mask = FieldElement.limbMask
        self.init(
            w0 & mask,
            ((w0 >> 51) | (w1 << 13)) & mask,
            ((w1 >> 38) | (w2 << 26)) & mask,
            ((w2 >> 25) | (w3 << 39)) & mask,
            (w3 >> 12) & mask)
    }

    /// The canonical 32-byte little-endian encoding of the fully reduced value.
    func encoded() -> [UInt8] {
        let limbs = fullyReducedLimbs()
        let w0 = limbs.0 | (limbs.1 << 51)
        let w1 = (limbs.1 >> 13) | (limbs.2 << 38)
        let w2 = (limbs.2 >> 26) | (limbs.3 << 25)
        let w3 = (limbs.3 >> 39) | (limbs.4 << 12)
        // Written in place, without an array of the four words: every element encoding goes through here.
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

    /// Limbs of the unique representative in [0, p), each below 2^51.
    private func fullyReducedLimbs() -> (UInt64, UInt64, UInt64, UInt64, UInt64) {
        let r = self.carried()
        let mask = FieldElement.limbMask
        // q = 1 exactly when the value is ≥ p, found by propagating the carry of value + 19.
        var q = (r.l0 &+ 19) >> 51
        q = (r.l1 &+ q) >> 51
        q = (r.l2 &+ q) >> 51
        q = (r.l3 &+ q) >> 51
        q = (r.l4 &+ q) >> 51
        var l0 = r.l0 &+ 19 &* q
        var l1 = r.l1 &+ (l0 >> 51)
        l0 &= mask
        var l2 = r.l2 &+ (l1 >> 51)
        l1 &= mask
        var l3 = r.l3 &+ (l2 >> 51)
        l2 &= mask
        var l4 = r.l4 &+ (l3 >> 51)
        l3 &= mask
        l4 &= mask  // drops 2^255, i.e. subtracts p together with the +19 above
        return (l0, l1, l2, l3, l4)
    }

    /// Whether the canonical value is odd (RFC 9496 IS_NEGATIVE).
    var isNegative: Choice {
        Choice(unchecked: fullyReducedLimbs().0 & 1)
    }

    /// Whether the value is 0 mod p.
    var isZero: Choice {
        let l = fullyReducedLimbs()
        return Choice.isZero(l.0 | l.1 | l.2 | l.3 | l.4)
    }

    /// Constant-time equality of the values mod p.
    func equals(_ other: FieldElement) -> Choice {
        let a = fullyReducedLimbs(), b = other.fullyReducedLimbs()
        return Choice.isZero((a.0 ^ b.0) | (a.1 ^ b.1) | (a.2 ^ b.2) | (a.3 ^ b.3) | (a.4 ^ b.4))
    }

    // MARK: Arithmetic

    /// One parallel carry pass: limbs below 2^51 + 2^13 afterwards.
    @inlinable @inline(__always)
    func carried() -> FieldElement {
        let mask = FieldElement.limbMask
        let c0 = l0 >> 51, c1 = l1 >> 51, c2 = l2 >> 51, c3 = l3 >> 51, c4 = l4 >> 51
        return FieldElement(
            (l0 & mask) &+ c4 &* 19,
            (l1 & mask) &+ c0,
            (l2 & mask) &+ c1,
            (l3 & mask) &+ c2,
            (l4 & mask) &+ c3)
    }

    @inlinable @inline(__always)
    static func + (a: FieldElement, b: FieldElement) -> FieldElement {
        FieldElement(a.l0 &+ b.l0, a.l1 &+ b.l1, a.l2 &+ b.l2, a.l3 &+ b.l3, a.l4 &+ b.l4)
    }

    /// a − b computed as (a + 16p) − b, then carried, so no limb underflows.
    @inlinable @inline(__always)
    static func - (a: FieldElement, b: FieldElement) -> FieldElement {
        FieldElement(
            (a.l0 &+ 0x7ffffffffffed0) &- b.l0,
            (a.l1 &+ 0x7ffffffffffff0) &- b.l1,
            (a.l2 &+ 0x7ffffffffffff0) &- b.l2,
            (a.l3 &+ 0x7ffffffffffff0) &- b.l3,
            (a.l4 &+ 0x7ffffffffffff0) &- b.l4
        ).carried()
    }

    @inlinable @inline(__always)
    func negated() -> FieldElement {
        FieldElement.zero - self
    }

    @inlinable @inline(__always)
    static func wide(_ a: UInt64, _ b: UInt64) -> UInt128 {
        UInt128(a) &* UInt128(b)
    }

    /// Carries five 128-bit column sums into a weakly reduced element.
    @inlinable @inline(__always)
    static func carryColumns(_ c0: UInt128, _ c1: UInt128, _ c2: UInt128, _ c3: UInt128, _ c4: UInt128)
        -> FieldElement
    {
        let mask = FieldElement.limbMask
        var c1 = c1, c2 = c2, c3 = c3, c4 = c4
        c1 &+= c0 >> 51
        var r0 = UInt64(truncatingIfNeeded: c0) & mask
        c2 &+= c1 >> 51
        let r1 = UInt64(truncatingIfNeeded: c1) & mask
        c3 &+= c2 >> 51
        let r2 = UInt64(truncatingIfNeeded: c2) & mask
        c4 &+= c3 >> 51
        let r3 = UInt64(truncatingIfNeeded: c3) & mask
        let carry = UInt64(truncatingIfNeeded: c4 >> 51)
        let r4 = UInt64(truncatingIfNeeded: c4) & mask
        r0 &+= carry &* 19
        let r1b = r1 &+ (r0 >> 51)
        r0 &= mask
        return FieldElement(r0, r1b, r2, r3, r4)
    }

    @inlinable @inline(__always)
    static func * (a: FieldElement, b: FieldElement) -> FieldElement {
        let b1x19 = b.l1 &* 19, b2x19 = b.l2 &* 19, b3x19 = b.l3 &* 19, b4x19 = b.l4 &* 19
        let c0 = wide(a.l0, b.l0) &+ wide(a.l4, b1x19) &+ wide(a.l3, b2x19) &+ wide(a.l2, b3x19)
            &+ wide(a.l1, b4x19)
        let c1 = wide(a.l1, b.l0) &+ wide(a.l0, b.l1) &+ wide(a.l4, b2x19) &+ wide(a.l3, b3x19)
            &+ wide(a.l2, b4x19)
        let c2 = wide(a.l2, b.l0) &+ wide(a.l1, b.l1) &+ wide(a.l0, b.l2) &+ wide(a.l4, b3x19)
            &+ wide(a.l3, b4x19)
        let c3 = wide(a.l3, b.l0) &+ wide(a.l2, b.l1) &+ wide(a.l1, b.l2) &+ wide(a.l0, b.l3)
            &+ wide(a.l4, b4x19)
        let c4 = wide(a.l4, b.l0) &+ wide(a.l3, b.l1) &+ wide(a.l2, b.l2) &+ wide(a.l1, b.l3)
            &+ wide(a.l0, b.l4)
        return carryColumns(c0, c1, c2, c3, c4)
    }

    @inlinable @inline(__always)
    func squared() -> FieldElement {
        let d0 = l0 &* 2, d1 = l1 &* 2
        let l3x19 = l3 &* 19, l4x19 = l4 &* 19
        let d4x19 = l4x19 &* 2
        let c0 = FieldElement.wide(l0, l0) &+ FieldElement.wide(d1, l4x19) &+ FieldElement.wide(l2 &* 2, l3x19)
        let c1 = FieldElement.wide(d0, l1) &+ FieldElement.wide(l2, d4x19) &+ FieldElement.wide(l3, l3x19)
        let c2 = FieldElement.wide(d0, l2) &+ FieldElement.wide(l1, l1) &+ FieldElement.wide(l3, d4x19)
        let c3 = FieldElement.wide(d0, l3) &+ FieldElement.wide(d1, l2) &+ FieldElement.wide(l4, l4x19)
        let c4 = FieldElement.wide(d0, l4) &+ FieldElement.wide(d1, l3) &+ FieldElement.wide(l2, l2)
        return FieldElement.carryColumns(c0, c1, c2, c3, c4)
    }

    /// self^(2^k), k ≥ 1.
    @inlinable
    func squared(times k: Int) -> FieldElement {
        var x = self.squared()
        for _ in 1..<k {
            x = x.squared()
        }
        return x
    }

    /// Returns (self^(2^250 − 1), self^11), the common prefix of inversion and the square-root power.
    private func pow22501() -> (FieldElement, FieldElement) {
        let t0 = self.squared()  // 2
        let t1 = t0.squared(times: 2)  // 8
        let t2 = self * t1  // 9
        let t3 = t0 * t2  // 11
        let t4 = t3.squared()  // 22
        let t5 = t2 * t4  // 2^5 − 1
        let t6 = t5.squared(times: 5)
        let t7 = t6 * t5  // 2^10 − 1
        let t8 = t7.squared(times: 10)
        let t9 = t8 * t7  // 2^20 − 1
        let t10 = t9.squared(times: 20)
        let t11 = t10 * t9  // 2^40 − 1
        let t12 = t11.squared(times: 10)
        let t13 = t12 * t7  // 2^50 − 1
        let t14 = t13.squared(times: 50)
        let t15 = t14 * t13  // 2^100 − 1
        let t16 = t15.squared(times: 100)
        let t17 = t16 * t15  // 2^200 − 1
        let t18 = t17.squared(times: 50)
        let t19 = t18 * t13  // 2^250 − 1
        return (t19, t3)
    }

    /// self^(p − 2): the inverse for non-zero values, 0 for 0. Constant time.
    func inverted() -> FieldElement {
        let (t19, t3) = pow22501()
        return t19.squared(times: 5) * t3  // 2^255 − 32 + 11 = p − 2
    }

    /// self^((p − 5)/8) = self^(2^252 − 3).
    private func powPMinus5Over8() -> FieldElement {
        let (t19, _) = pow22501()
        return t19.squared(times: 2) * self
    }

    /// RFC 9496 §4.2 SQRT_RATIO_M1: returns (wasSquare, r) with r the non-negative square root of u/v
    /// when it exists, and otherwise the non-negative square root of SQRT_M1·u/v.
    static func sqrtRatioM1(_ u: FieldElement, _ v: FieldElement) -> (wasSquare: Choice, root: FieldElement) {
        let v3 = v.squared() * v
        let v7 = v3.squared() * v
        var r = (u * v3) * (u * v7).powPMinus5Over8()
        let check = v * r.squared()
        let uNegated = u.negated()
        let correctSignSqrt = check.equals(u)
        let flippedSignSqrt = check.equals(uNegated)
        let flippedSignSqrtI = check.equals(uNegated * FieldElement.sqrtMinusOne)
        let rPrime = FieldElement.sqrtMinusOne * r
        r.conditionalAssign(rPrime, flippedSignSqrt.or(flippedSignSqrtI))
        r = r.absolute()
        return (correctSignSqrt.or(flippedSignSqrt), r)
    }

    // MARK: Constant-time selection

    @inlinable @inline(__always)
    mutating func conditionalAssign(_ other: FieldElement, _ choice: Choice) {
        let mask = choice.mask
        l0 ^= (l0 ^ other.l0) & mask
        l1 ^= (l1 ^ other.l1) & mask
        l2 ^= (l2 ^ other.l2) & mask
        l3 ^= (l3 ^ other.l3) & mask
        l4 ^= (l4 ^ other.l4) & mask
    }

    @inlinable @inline(__always)
    static func conditionalSwap(_ a: inout FieldElement, _ b: inout FieldElement, _ choice: Choice) {
        let mask = choice.mask
        var x = (a.l0 ^ b.l0) & mask
        a.l0 ^= x; b.l0 ^= x
        x = (a.l1 ^ b.l1) & mask
        a.l1 ^= x; b.l1 ^= x
        x = (a.l2 ^ b.l2) & mask
        a.l2 ^= x; b.l2 ^= x
        x = (a.l3 ^ b.l3) & mask
        a.l3 ^= x; b.l3 ^= x
        x = (a.l4 ^ b.l4) & mask
        a.l4 ^= x; b.l4 ^= x
    }

    /// Negates when `choice` is set.
    func conditionallyNegated(_ choice: Choice) -> FieldElement {
        var result = self
        result.conditionalAssign(self.negated(), choice)
        return result
    }

    /// RFC 9496 CT_ABS: the non-negative one of ±self.
    func absolute() -> FieldElement {
        conditionallyNegated(isNegative)
    }
}
