/// A point of the twisted Edwards curve −x² + y² = 1 + d·x²·y² (edwards25519) in extended coordinates
/// (X : Y : Z : T) with x = X/Z, y = Y/Z, x·y = T/Z (Hisil–Wong–Carter–Dawson 2008).
///
/// Internal: ristretto255 (`GroupElement`) is the only group the rest of Sintra sees. The addition
/// formulas are complete for a = −1 and a non-square d, so they need no special cases and run in
/// constant time.
@usableFromInline
struct EdwardsPoint: Sendable {
    @usableFromInline var x: FieldElement
    @usableFromInline var y: FieldElement
    @usableFromInline var z: FieldElement
    @usableFromInline var t: FieldElement

    @inlinable @inline(__always)
    init(x: FieldElement, y: FieldElement, z: FieldElement, t: FieldElement) {
        self.x = x
        self.y = y
        self.z = z
        self.t = t
    }

    static let identity = EdwardsPoint(x: .zero, y: .one, z: .one, t: .zero)

    /// The edwards25519 base point (RFC 8032 B; RFC 9496 uses it as the ristretto255 generator).
    static let basePoint = EdwardsPoint(
        x: FieldElement(0x62d608f25d51a, 0x412a4b4f6592a, 0x75b7171a4b31d, 0x1ff60527118fe, 0x216936d3cd6e5),
        y: FieldElement(0x6666666666658, 0x4cccccccccccc, 0x1999999999999, 0x3333333333333, 0x6666666666666),
        z: .one,
        t: FieldElement(0x68ab3a5b7dda3, 0xeea2a5eadbb, 0x2af8df483c27e, 0x332b375274732, 0x67875f0fd78b7))

    @inlinable @inline(__always)
    var projective: ProjectivePoint { ProjectivePoint(x: x, y: y, z: z) }

    /// The cached form for repeated additions.
    @inlinable @inline(__always)
    var cached: CachedPoint {
        CachedPoint(yPlusX: y + x, yMinusX: y - x, z: z, t2d: t * FieldElement.d2)
    }

    @inlinable @inline(__always)
    func doubled() -> EdwardsPoint { projective.doubled().extended }

    @inlinable @inline(__always)
    static func + (p: EdwardsPoint, q: CachedPoint) -> EdwardsPoint { p.adding(q).extended }

    @inlinable @inline(__always)
    static func - (p: EdwardsPoint, q: CachedPoint) -> EdwardsPoint { p.subtracting(q).extended }

    @inlinable @inline(__always)
    static func + (p: EdwardsPoint, q: EdwardsPoint) -> EdwardsPoint { p + q.cached }

    @inlinable @inline(__always)
    func negated() -> EdwardsPoint {
        EdwardsPoint(x: x.negated(), y: y, z: z, t: t.negated())
    }

    /// p + q as a completed point.
    @inlinable @inline(__always)
    func adding(_ q: CachedPoint) -> CompletedPoint {
        let yPlusX = y + x
        let yMinusX = y - x
        let pp = yPlusX * q.yPlusX
        let mm = yMinusX * q.yMinusX
        let tt2d = t * q.t2d
        let zz = z * q.z
        let zz2 = zz + zz
        return CompletedPoint(x: pp - mm, y: pp + mm, z: zz2 + tt2d, t: zz2 - tt2d)
    }

    /// p − q as a completed point.
    @inlinable @inline(__always)
    func subtracting(_ q: CachedPoint) -> CompletedPoint {
        let yPlusX = y + x
        let yMinusX = y - x
        let pm = yPlusX * q.yMinusX
        let mp = yMinusX * q.yPlusX
        let tt2d = t * q.t2d
        let zz = z * q.z
        let zz2 = zz + zz
        return CompletedPoint(x: pm - mp, y: pm + mp, z: zz2 - tt2d, t: zz2 + tt2d)
    }

    /// p + q for an affine q (z = 1) as a completed point.
    @inlinable @inline(__always)
    func adding(_ q: AffineCachedPoint) -> CompletedPoint {
        let yPlusX = y + x
        let yMinusX = y - x
        let pp = yPlusX * q.yPlusX
        let mm = yMinusX * q.yMinusX
        let txy2d = t * q.xy2d
        let z2 = z + z
        return CompletedPoint(x: pp - mm, y: pp + mm, z: z2 + txy2d, t: z2 - txy2d)
    }

    /// p − q for an affine q (z = 1) as a completed point: −q swaps y + x with y − x and negates 2d·x·y.
    @inlinable @inline(__always)
    func subtracting(_ q: AffineCachedPoint) -> CompletedPoint {
        let yPlusX = y + x
        let yMinusX = y - x
        let pm = yPlusX * q.yMinusX
        let mp = yMinusX * q.yPlusX
        let txy2d = t * q.xy2d
        let z2 = z + z
        return CompletedPoint(x: pm - mp, y: pm + mp, z: z2 - txy2d, t: z2 + txy2d)
    }

    /// 2^k·p.
    func multipliedByPowerOfTwo(_ k: Int) -> EdwardsPoint {
        precondition(k > 0)
        var s = projective
        for _ in 0..<(k - 1) {
            s = s.doubled().projective
        }
        return s.doubled().extended
    }

    /// Whether the two points are equal as edwards25519 points (not as ristretto255 classes).
    func equalsAsEdwards(_ other: EdwardsPoint) -> Bool {
        (x * other.z).equals(other.x * z).and((y * other.z).equals(other.y * z)).isTrue
    }

    @inlinable @inline(__always)
    mutating func conditionalAssign(_ other: EdwardsPoint, _ choice: Choice) {
        x.conditionalAssign(other.x, choice)
        y.conditionalAssign(other.y, choice)
        z.conditionalAssign(other.z, choice)
        t.conditionalAssign(other.t, choice)
    }
}

/// (X : Y : Z) with x = X/Z, y = Y/Z: the cheapest input for doubling.
@usableFromInline
struct ProjectivePoint: Sendable {
    @usableFromInline var x, y, z: FieldElement

    @inlinable @inline(__always)
    init(x: FieldElement, y: FieldElement, z: FieldElement) {
        self.x = x
        self.y = y
        self.z = z
    }

    /// The same point in extended coordinates (X·Z, Y·Z, Z², X·Y).
    @inlinable @inline(__always)
    var extended: EdwardsPoint { EdwardsPoint(x: x * z, y: y * z, z: z.squared(), t: x * y) }

    /// 2·p (dbl-2008-hwcd with a = −1), as a completed point.
    @inlinable @inline(__always)
    func doubled() -> CompletedPoint {
        let xx = x.squared()
        let yy = y.squared()
        let zz = z.squared()
        let zz2 = zz + zz
        let xPlusYSquared = (x + y).squared()
        let yyPlusXX = yy + xx
        let yyMinusXX = yy - xx
        return CompletedPoint(x: xPlusYSquared - yyPlusXX, y: yyPlusXX, z: yyMinusXX, t: zz2 - yyMinusXX)
    }
}

/// ((X : Z), (Y : T)) with x = X/Z, y = Y/T: the output of an addition or doubling before conversion.
@usableFromInline
struct CompletedPoint: Sendable {
    @usableFromInline var x, y, z, t: FieldElement

    @inlinable @inline(__always)
    init(x: FieldElement, y: FieldElement, z: FieldElement, t: FieldElement) {
        self.x = x
        self.y = y
        self.z = z
        self.t = t
    }

    @inlinable @inline(__always)
    var projective: ProjectivePoint { ProjectivePoint(x: x * t, y: y * z, z: z * t) }

    @inlinable @inline(__always)
    var extended: EdwardsPoint { EdwardsPoint(x: x * t, y: y * z, z: z * t, t: x * y) }
}

/// (Y + X, Y − X, Z, 2d·T): a point prepared for being added many times.
@usableFromInline
struct CachedPoint: Sendable {
    @usableFromInline var yPlusX, yMinusX, z, t2d: FieldElement

    @inlinable @inline(__always)
    init(yPlusX: FieldElement, yMinusX: FieldElement, z: FieldElement, t2d: FieldElement) {
        self.yPlusX = yPlusX
        self.yMinusX = yMinusX
        self.z = z
        self.t2d = t2d
    }

    static let identity = CachedPoint(yPlusX: .one, yMinusX: .one, z: .one, t2d: .zero)

    @inlinable @inline(__always)
    mutating func conditionalAssign(_ other: CachedPoint, _ choice: Choice) {
        yPlusX.conditionalAssign(other.yPlusX, choice)
        yMinusX.conditionalAssign(other.yMinusX, choice)
        z.conditionalAssign(other.z, choice)
        t2d.conditionalAssign(other.t2d, choice)
    }

    /// −p when `choice` is set: swap Y+X with Y−X and negate 2dT.
    @inlinable @inline(__always)
    mutating func conditionalNegate(_ choice: Choice) {
        FieldElement.conditionalSwap(&yPlusX, &yMinusX, choice)
        t2d.conditionalAssign(t2d.negated(), choice)
    }
}

/// (y + x, y − x, 2d·x·y) of an affine point: the entries of the fixed-base table.
@usableFromInline
struct AffineCachedPoint: Sendable {
    @usableFromInline var yPlusX, yMinusX, xy2d: FieldElement

    @inlinable @inline(__always)
    init(yPlusX: FieldElement, yMinusX: FieldElement, xy2d: FieldElement) {
        self.yPlusX = yPlusX
        self.yMinusX = yMinusX
        self.xy2d = xy2d
    }

    static let identity = AffineCachedPoint(yPlusX: .one, yMinusX: .one, xy2d: .zero)

    @inlinable @inline(__always)
    mutating func conditionalAssign(_ other: AffineCachedPoint, _ choice: Choice) {
        yPlusX.conditionalAssign(other.yPlusX, choice)
        yMinusX.conditionalAssign(other.yMinusX, choice)
        xy2d.conditionalAssign(other.xy2d, choice)
    }

    @inlinable @inline(__always)
    mutating func conditionalNegate(_ choice: Choice) {
        FieldElement.conditionalSwap(&yPlusX, &yMinusX, choice)
        xy2d.conditionalAssign(xy2d.negated(), choice)
    }
}
