/// A secret boolean for constant-time code: 0 or 1, never branched on.
///
/// Combine with `and`/`or`/`not` and consume through `mask` in selections; call `isTrue` only where
/// the value is public (for example after a decoding check whose outcome is revealed anyway).
@usableFromInline
struct Choice: Sendable {
    @usableFromInline let bit: UInt64

    /// `value` must be 0 or 1.
    @inlinable @inline(__always)
    init(unchecked value: UInt64) {
        bit = value & 1
    }

    @inlinable @inline(__always)
    init(_ value: Bool) {
        bit = value ? 1 : 0
    }

    /// All ones when set, all zeros otherwise.
    @inlinable @inline(__always)
    var mask: UInt64 { 0 &- bit }

    @inlinable @inline(__always)
    func and(_ other: Choice) -> Choice { Choice(unchecked: bit & other.bit) }

    @inlinable @inline(__always)
    func or(_ other: Choice) -> Choice { Choice(unchecked: bit | other.bit) }

    @inlinable @inline(__always)
    var not: Choice { Choice(unchecked: bit ^ 1) }

    /// Reveals the value. Only for results that are public.
    @inlinable @inline(__always)
    var isTrue: Bool { bit == 1 }

    /// Set when `word` is zero, without branching.
    @inlinable @inline(__always)
    static func isZero(_ word: UInt64) -> Choice {
        // (word | −word) has its top bit set exactly when word ≠ 0.
        Choice(unchecked: ((word | (0 &- word)) >> 63) ^ 1)
    }

    /// Set when `a == b`.
    @inlinable @inline(__always)
    static func equal(_ a: UInt64, _ b: UInt64) -> Choice { isZero(a ^ b) }
}

/// Constant-time equality of two byte strings of equal length (the length itself is public).
func constantTimeEqual<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
where A.Element == UInt8, B.Element == UInt8 {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) {
        difference |= x ^ y
    }
    return difference == 0
}
