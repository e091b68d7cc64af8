/// RFC 8032 §5.1.3 point decoding for edwards25519, used to vet Ed25519 public keys.
extension EdwardsPoint {
    /// Decodes a 32-byte Ed25519 point encoding strictly: y must be below p, and x = 0 must not carry a
    /// set sign bit. Returns nil for anything else.
    init?(ed25519Encoding bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        let sign = bytes[31] >> 7
        var yBytes = bytes
        yBytes[31] &= 0x7f
        let y = FieldElement(littleEndian: yBytes)
        guard y.encoded() == yBytes else { return nil }  // y ≥ p
        // x² = (y² − 1)/(d·y² + 1).
        let yy = y.squared()
        let u = yy - .one
        let v = FieldElement.d * yy + .one
        let (wasSquare, root) = FieldElement.sqrtRatioM1(u, v)
        guard wasSquare.isTrue else { return nil }
        let isZero = root.isZero.isTrue
        if isZero && sign == 1 { return nil }  // "x = −0"
        let x = root.conditionallyNegated(Choice(unchecked: UInt64(sign)))  // root is non-negative
        self.init(x: x, y: y, z: .one, t: x * y)
    }

    /// Whether the point lies in the prime-order subgroup (ℓ·P = identity), i.e. has no low-order component.
    var isTorsionFree: Bool {
        let orderMinusOne = Scalar.zero - .one
        return (multiplied(by: orderMinusOne) + self).equalsAsEdwards(.identity)
    }
}
