/// Scalar multiplication on edwards25519.
///
/// - `multiply(_:by:)`: constant time, for secret scalars (shares, nonces): fixed 4-bit signed windows,
///   every table entry read for every window.
/// - `multiplyBase(by:)`: constant time with a precomputed table of the base point (radix 16, the
///   even/odd digit split of the ref10 code of Bernstein et al.), about three times faster.
/// - `multiscalarMultiplyVariableTime`: for verification with public scalars only (its running time depends
///   on the scalars): Straus's method with width-5 NAF tables for few terms, Pippenger's bucket method
///   (Pippenger.swift) from `pippengerThreshold` terms on.
extension EdwardsPoint {
    /// Writes [P, 2P, …, 8P] in cached form into `table` (8 entries).
    @inline(__always)
    private func initializeMultiplesTable(_ table: UnsafeMutableBufferPointer<CachedPoint>) {
        let first = cached
        table[0] = first
        var current = self
        for index in 1..<8 {
            current = current + first
            table[index] = current.cached
        }
    }

    /// Constant-time selection of digit·P from `table` = [P, …, 8P], digit ∈ [−8, 8]: every entry is read
    /// and masked, so neither the memory access pattern nor a branch depends on the digit.
    @inline(__always)
    private static func select(_ table: UnsafeMutableBufferPointer<CachedPoint>, digit: Int8) -> CachedPoint {
        let negative = Choice(unchecked: UInt64(UInt8(bitPattern: digit) >> 7))
        let magnitude = UInt64(Int64(digit) &* (1 &- 2 &* Int64(negative.bit)))
        var result = CachedPoint.identity
        for index in 0..<8 {
            result.conditionalAssign(table[index], Choice.equal(magnitude, UInt64(index + 1)))
        }
        result.conditionalNegate(negative)
        return result
    }

    /// scalar·self in constant time.
    ///
    /// Per window of four bits: four doublings, then one addition of the selected multiple. The sum stays a
    /// completed point and goes to the next doubling through projective coordinates (three multiplications),
    /// so the extended T coordinate is only computed where an addition needs it. The table and the digits
    /// live on the stack: nothing is allocated on the heap.
    func multiplied(by scalar: Scalar) -> EdwardsPoint {
        // A homogeneous tuple is laid out like a C array and lives on the stack; a temporary allocation of the
        // same 1280 bytes would go to the heap (Swift keeps only small temporary allocations on the stack).
        var storage = (
            CachedPoint.identity, CachedPoint.identity, CachedPoint.identity, CachedPoint.identity,
            CachedPoint.identity, CachedPoint.identity, CachedPoint.identity, CachedPoint.identity)
        return withUnsafeMutableBytes(of: &storage) { bytes in
            // The memory of a homogeneous tuple is bound to its element type, so it can be indexed as a buffer.
            let first = bytes.baseAddress!.assumingMemoryBound(to: CachedPoint.self)
            let table = UnsafeMutableBufferPointer(start: first, count: 8)
            initializeMultiplesTable(table)
            return scalar.withRadix16Digits { digits in
                var sum = EdwardsPoint.identity.adding(EdwardsPoint.select(table, digit: digits[63]))
                for index in (0..<63).reversed() {
                    var doubled = sum.projective.doubled()
                    doubled = doubled.projective.doubled()
                    doubled = doubled.projective.doubled()
                    doubled = doubled.projective.doubled()
                    sum = doubled.extended.adding(EdwardsPoint.select(table, digit: digits[index]))
                }
                return sum.extended
            }
        }
    }

    /// scalar·B in constant time, with the precomputed base table.
    static func multiplyBase(by scalar: Scalar) -> EdwardsPoint {
        BasePointTable.shared.entries.withUnsafeBufferPointer { table in
            scalar.withRadix16Digits { digits in
                // Odd digits first: Σ d_(2i+1)·16^(2i)·B, then ·16, then add Σ d_(2i)·16^(2i)·B.
                var accumulator = EdwardsPoint.identity
                for index in stride(from: 1, to: 64, by: 2) {
                    let entry = BasePointTable.select(table, window: index / 2, digit: digits[index])
                    accumulator = accumulator.adding(entry).extended
                }
                accumulator = accumulator.multipliedByPowerOfTwo(4)
                for index in stride(from: 0, to: 64, by: 2) {
                    let entry = BasePointTable.select(table, window: index / 2, digit: digits[index])
                    accumulator = accumulator.adding(entry).extended
                }
                return accumulator
            }
        }
    }

    /// The number of terms from which Pippenger's method is faster than Straus's. Measured with
    /// crypto-compare's method rows (BENCHMARKS.md, "Pippenger"): with full-size scalars the two are even
    /// at 96–128 terms; a `SignatureBatch` of N signatures has 2N + 1 terms, half of them with 128-bit
    /// scalars, which favours Pippenger further (Straus pays a full table for every term).
    static let pippengerThreshold = 128

    /// Σ scalars[i]·points[i] in variable time (public inputs only). Both methods give the same point.
    static func multiscalarMultiplyVariableTime(
        _ scalars: [Scalar], _ points: [EdwardsPoint], algorithm: MultiscalarAlgorithm = .automatic
    ) -> EdwardsPoint {
        switch algorithm {
        case .automatic:
            return scalars.count < pippengerThreshold
                ? multiscalarMultiplyStraus(scalars, points) : multiscalarMultiplyPippenger(scalars, points)
        case .straus:
            return multiscalarMultiplyStraus(scalars, points)
        case .pippenger:
            return multiscalarMultiplyPippenger(scalars, points)
        }
    }

    /// Σ scalars[i]·points[i] by Straus's method ("Addition chains of vectors", 1964): one shared chain of
    /// doublings, and per point a table of its odd multiples P, 3P, …, 15P indexed by width-5 NAF digits.
    static func multiscalarMultiplyStraus(_ scalars: [Scalar], _ points: [EdwardsPoint]) -> EdwardsPoint {
        precondition(scalars.count == points.count, "one scalar per point")
        if scalars.isEmpty { return .identity }
        let width = 5
        let nafs = scalars.map { $0.nonAdjacentForm(width: width) }
        // Odd multiples [P, 3P, 5P, …, 15P] of every point.
        let tables: [[CachedPoint]] = points.map { point in
            var table = [point.cached]
            let doubled = point.doubled()
            var current = point
            for _ in 1..<(1 << (width - 2)) {
                current = current + doubled
                table.append(current.cached)
            }
            return table
        }
        var top = 255
        while top >= 0 && nafs.allSatisfy({ $0[top] == 0 }) {
            top -= 1
        }
        var accumulator = ProjectivePoint(x: .zero, y: .one, z: .one)
        var index = top
        while index >= 0 {
            var completed = accumulator.doubled()
            for (naf, table) in zip(nafs, tables) {
                let digit = naf[index]
                if digit > 0 {
                    completed = completed.extended.adding(table[Int(digit) / 2])
                } else if digit < 0 {
                    completed = completed.extended.subtracting(table[Int(-digit) / 2])
                }
            }
            accumulator = completed.projective
            index -= 1
        }
        return accumulator.extended
    }
}

/// Which multi-scalar multiplication to run. Only benchmarks and tests choose; everything else uses
/// `automatic`, which picks the faster method for the number of terms.
@_spi(Benchmarks)
public enum MultiscalarAlgorithm: Sendable, CaseIterable {
    case automatic
    case straus
    case pippenger
}

/// Multiples j·256^i·B for i < 32 and j = 1…8, in affine cached form. Built once, on first use
/// (about 256 additions and one batched inversion).
final class BasePointTable: Sendable {
    static let shared = BasePointTable()

    let entries: [AffineCachedPoint]

    private init() {
        var points = [EdwardsPoint]()
        points.reserveCapacity(256)
        var windowBase = EdwardsPoint.basePoint
        for _ in 0..<32 {
            var current = windowBase
            let baseCached = windowBase.cached
            for _ in 0..<8 {
                points.append(current)
                current = current + baseCached
            }
            windowBase = windowBase.multipliedByPowerOfTwo(8)
        }
        // Batch inversion of the Z coordinates (Montgomery's trick).
        var prefix = [FieldElement]()
        prefix.reserveCapacity(points.count)
        var running = FieldElement.one
        for point in points {
            prefix.append(running)
            running = running * point.z
        }
        var inverse = running.inverted()
        var zInverses = [FieldElement](repeating: .zero, count: points.count)
        for index in stride(from: points.count - 1, through: 0, by: -1) {
            zInverses[index] = inverse * prefix[index]
            inverse = inverse * points[index].z
        }
        entries = zip(points, zInverses).map { point, zInverse in
            let x = point.x * zInverse
            let y = point.y * zInverse
            return AffineCachedPoint(yPlusX: y + x, yMinusX: y - x, xy2d: x * y * FieldElement.d2)
        }
    }

    /// Constant-time selection of digit·256^window·B, digit ∈ [−8, 8].
    @inline(__always)
    static func select(_ entries: UnsafeBufferPointer<AffineCachedPoint>, window: Int, digit: Int8)
        -> AffineCachedPoint
    {
        let negative = Choice(unchecked: UInt64(UInt8(bitPattern: digit) >> 7))
        let magnitude = UInt64(Int64(digit) &* (1 &- 2 &* Int64(negative.bit)))
        var result = AffineCachedPoint.identity
        let base = window * 8
        for index in 0..<8 {
            result.conditionalAssign(entries[base + index], Choice.equal(magnitude, UInt64(index + 1)))
        }
        result.conditionalNegate(negative)
        return result
    }
}
