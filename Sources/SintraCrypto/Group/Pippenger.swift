/// Multi-scalar multiplication Σ s_i·P_i by Pippenger's bucket method, variable time (public inputs only).
///
/// The method (N. Pippenger, "On the evaluation of powers and monomials", SIAM J. Comput. 1980; the bucket
/// form used for batch verification is described in Bernstein, Doumen, Lange, Oosterwijk, "Faster batch
/// forgery identification", INDOCRYPT 2012, §4): write every scalar in signed radix 2^c, digits
/// d ∈ [−2^(c−1), 2^(c−1)]. For each window j, from the top down, put ±P_i into bucket |d_ij| (one addition
/// per nonzero digit, no precomputed multiples), then form Σ_k k·B_k with two running sums
/// (2·2^(c−1) additions), and fold it in as acc ← 2^c·acc + window sum. A term costs about 254/c additions
/// instead of Straus's ≈ 254/6 plus a table of 8, while the bucket sums cost a fixed 2^c·⌈254/c⌉ additions
/// per multiplication; so the method wins once there are a few hundred terms, and c grows with the number
/// of terms (`windowWidth`).
///
/// Details that matter for `SignatureBatch`, whose 2N + 1 terms are N keys with 253-bit scalars, N
/// commitments with 128-bit scalars and the base point:
/// - zero digits cost nothing, so a 128-bit scalar costs half the bucket additions of a 253-bit one (its
///   upper windows are all zero) without splitting anything;
/// - the points are added in affine form (Z = 1: one multiplication less per addition, 7 instead of 8).
///   Decoded points (Ed25519 keys and R values) already have Z = 1; others are normalised with one
///   batched inversion (Montgomery's trick);
/// - the first point put into a bucket is copied, not added to the identity.
extension EdwardsPoint {
    /// Σ scalars[i]·points[i] by Pippenger's method. Equal to `multiscalarMultiplyStraus` for all inputs;
    /// faster above `pippengerThreshold` terms. `width` overrides the window chosen by `windowWidth` (tests).
    static func multiscalarMultiplyPippenger(_ scalars: [Scalar], _ points: [EdwardsPoint], width: Int? = nil)
        -> EdwardsPoint
    {
        precondition(scalars.count == points.count, "one scalar per point")
        precondition(width.map { (2...15).contains($0) } ?? true, "window width out of range")
        let count = scalars.count
        if count == 0 { return .identity }

        // The scalars as 64-bit words, their total and largest bit length.
        var words = [UInt64](repeating: 0, count: 4 * count)
        var totalBits = 0
        var maxBits = 0
        for (index, scalar) in scalars.enumerated() {
            let w = scalar.littleEndianWords
            words[4 * index] = w.0
            words[4 * index + 1] = w.1
            words[4 * index + 2] = w.2
            words[4 * index + 3] = w.3
            let bits: Int
            if w.3 != 0 {
                bits = 256 - w.3.leadingZeroBitCount
            } else if w.2 != 0 {
                bits = 192 - w.2.leadingZeroBitCount
            } else if w.1 != 0 {
                bits = 128 - w.1.leadingZeroBitCount
            } else {
                bits = 64 - w.0.leadingZeroBitCount
            }
            totalBits += bits
            maxBits = max(maxBits, bits)
        }
        if maxBits == 0 { return .identity }

        let width = width ?? windowWidth(totalBits: totalBits, maxBits: maxBits)
        // c·windows ≥ maxBits + 1: the top digit then absorbs the last carry without leaving [0, 2^(c−1)].
        let windows = (maxBits + width) / width
        let digits = signedDigits(words, count: count, width: width, windows: windows)
        let (affine, cached) = affinePoints(points)

        let bucketCount = 1 << (width - 1)
        var buckets = [EdwardsPoint](repeating: .identity, count: bucketCount)
        var occupied = [Bool](repeating: false, count: bucketCount)
        var accumulator = EdwardsPoint.identity
        var accumulatorIsIdentity = true

        digits.withUnsafeBufferPointer { digits in
            affine.withUnsafeBufferPointer { affine in
                cached.withUnsafeBufferPointer { cached in
                    buckets.withUnsafeMutableBufferPointer { buckets in
                        occupied.withUnsafeMutableBufferPointer { occupied in
                            for window in stride(from: windows - 1, through: 0, by: -1) {
                                for bucket in 0..<bucketCount { occupied[bucket] = false }
                                let row = window * count
                                // Fill the buckets: B_k = Σ_{d_i = k} P_i − Σ_{d_i = −k} P_i.
                                for term in 0..<count {
                                    let digit = Int(digits[row + term])
                                    if digit > 0 {
                                        let bucket = digit - 1
                                        if occupied[bucket] {
                                            buckets[bucket] = buckets[bucket].adding(cached[term]).extended
                                        } else {
                                            buckets[bucket] = affine[term]
                                            occupied[bucket] = true
                                        }
                                    } else if digit < 0 {
                                        let bucket = -digit - 1
                                        if occupied[bucket] {
                                            buckets[bucket] = buckets[bucket].subtracting(cached[term]).extended
                                        } else {
                                            buckets[bucket] = affine[term].negated()
                                            occupied[bucket] = true
                                        }
                                    }
                                }
                                // Σ k·B_k = Σ_k (B_h + … + B_k): a running sum from the top bucket down, added
                                // into the window sum at every step.
                                var running = EdwardsPoint.identity
                                var runningIsIdentity = true
                                var windowSum = EdwardsPoint.identity
                                var windowSumIsIdentity = true
                                for bucket in stride(from: bucketCount - 1, through: 0, by: -1) {
                                    if occupied[bucket] {
                                        running = runningIsIdentity ? buckets[bucket] : running + buckets[bucket]
                                        runningIsIdentity = false
                                    }
                                    if !runningIsIdentity {
                                        windowSum = windowSumIsIdentity ? running : windowSum + running
                                        windowSumIsIdentity = false
                                    }
                                }
                                if !accumulatorIsIdentity {
                                    accumulator = accumulator.multipliedByPowerOfTwo(width)
                                }
                                if !windowSumIsIdentity {
                                    accumulator = accumulatorIsIdentity ? windowSum : accumulator + windowSum
                                    accumulatorIsIdentity = false
                                }
                            }
                        }
                    }
                }
            }
        }
        return accumulator
    }

    /// The window c minimising an estimate of the field multiplications: 7 per bucket addition (about
    /// totalBits/c nonzero digits in all) and 2·9 per bucket and window for the running sums (c·windows ≥
    /// maxBits + 1). For a `SignatureBatch` of N signatures this gives c = 5 up to N ≈ 110, 6 to N ≈ 280, 7 to
    /// N ≈ 650, 8 to N ≈ 1,600, then 9.
    static func windowWidth(totalBits: Int, maxBits: Int) -> Int {
        var best = 4
        var bestCost = Double.infinity
        for width in 4...14 {
            let windows = (maxBits + width) / width
            let nonzeroDigits = Double(totalBits) / Double(width)
            let cost = 7 * nonzeroDigits + 18 * Double(windows) * Double(1 << (width - 1))
            if cost < bestCost {
                best = width
                bestCost = cost
            }
        }
        return best
    }

    /// Signed radix-2^c digits of every scalar, window-major (digit j of scalar i at j·count + i): each in
    /// [−2^(c−1), 2^(c−1)), the top one in [0, 2^(c−1)]. A digit of 2^(c−1) or more becomes digit − 2^c and
    /// carries one into the next window.
    static func signedDigits(_ words: [UInt64], count: Int, width: Int, windows: Int) -> [Int16] {
        var digits = [Int16](repeating: 0, count: windows * count)
        let mask = (UInt64(1) << UInt64(width)) - 1
        let half = 1 << (width - 1)
        for term in 0..<count {
            var carry = 0
            for window in 0..<windows {
                let bit = window * width
                let wordIndex = bit >> 6
                let shift = bit & 63
                var raw: UInt64 = 0
                if wordIndex < 4 {
                    raw = words[4 * term + wordIndex] >> UInt64(shift)
                    if shift + width > 64 && wordIndex + 1 < 4 {
                        raw |= words[4 * term + wordIndex + 1] << UInt64(64 - shift)
                    }
                    raw &= mask
                }
                var digit = Int(raw) + carry
                if window < windows - 1 && digit >= half {
                    digit -= 2 * half
                    carry = 1
                } else {
                    carry = 0
                }
                digits[window * count + term] = Int16(digit)
            }
            assert(carry == 0 && Int(digits[(windows - 1) * count + term]) <= half)
        }
        return digits
    }

    /// Every point with Z = 1, as an extended point (to start a bucket) and in affine cached form (to add).
    /// Points that do not have Z = 1 already are normalised with one batched inversion.
    static func affinePoints(_ points: [EdwardsPoint]) -> ([EdwardsPoint], [AffineCachedPoint]) {
        var affine = points
        var pending = [Int]()
        for index in points.indices where !points[index].z.equals(.one).isTrue {
            pending.append(index)
        }
        if !pending.isEmpty {
            // Montgomery's trick: prefix products, one inversion, then peel off one inverse per point.
            var prefix = [FieldElement]()
            prefix.reserveCapacity(pending.count)
            var running = FieldElement.one
            for index in pending {
                prefix.append(running)
                running = running * points[index].z
            }
            var inverse = running.inverted()
            for position in stride(from: pending.count - 1, through: 0, by: -1) {
                let point = points[pending[position]]
                let zInverse = inverse * prefix[position]
                inverse = inverse * point.z
                let x = point.x * zInverse
                let y = point.y * zInverse
                affine[pending[position]] = EdwardsPoint(x: x, y: y, z: .one, t: x * y)
            }
        }
        let cached = affine.map { point in
            AffineCachedPoint(yPlusX: point.y + point.x, yMinusX: point.y - point.x, xy2d: point.t * FieldElement.d2)
        }
        return (affine, cached)
    }
}
