import Crypto

/// Hashing into ristretto255 and into scalars (RFC 9380 expand_message_xmd with SHA-512, as RFC 9496
/// §4.3.4 and RFC 9497 use it).
public enum HashToGroup {
    /// The largest output expand_message_xmd(SHA-512) can produce: 255 blocks of 64 bytes.
    public static let expandedLengthMax = 255 * 64

    /// RFC 9380 §5.3.1 expand_message_xmd with SHA-512 (b_in_bytes = 64, s_in_bytes = 128).
    /// Domain separation tags longer than 255 bytes are first hashed (RFC 9380 §5.3.3).
    public static func expandMessage(_ message: some Sequence<UInt8>, domain: some Sequence<UInt8>, length: Int)
        -> [UInt8]
    {
        precondition(length > 0 && length <= expandedLengthMax && length <= 65535, "expand_message_xmd length")
        var domainBytes = Array(domain)
        if domainBytes.count > 255 {
            var hasher = SHA512()
            hasher.update(data: Array("H2C-OVERSIZE-DST-".utf8))
            hasher.update(data: domainBytes)
            domainBytes = Array(hasher.finalize())
        }
        let domainPrime = domainBytes + [UInt8(domainBytes.count)]
        let blockCount = (length + 63) / 64

        var hasher = SHA512()
        hasher.update(data: [UInt8](repeating: 0, count: 128))
        hasher.update(data: Array(message))
        hasher.update(data: [UInt8(length >> 8), UInt8(length & 0xff), 0])
        hasher.update(data: domainPrime)
        let b0 = Array(hasher.finalize())

        var output = [UInt8]()
        output.reserveCapacity(blockCount * 64)
        var previous = [UInt8](repeating: 0, count: 64)
        for index in 1...blockCount {
            var block = SHA512()
            block.update(data: zip(b0, previous).map { $0 ^ $1 })
            block.update(data: [UInt8(index)])
            block.update(data: domainPrime)
            previous = Array(block.finalize())
            output.append(contentsOf: previous)
        }
        return Array(output.prefix(length))
    }

    /// hash_to_ristretto255 (RFC 9380 Appendix B / RFC 9496 §4.3.4): expand to 64 bytes, then derive.
    public static func element(_ message: some Sequence<UInt8>, domain: some Sequence<UInt8>) -> GroupElement {
        GroupElement(uniformBytes: expandMessage(message, domain: domain, length: 64))
    }

    /// HashToScalar as in RFC 9497 §4.1: expand to 64 bytes and reduce modulo ℓ.
    public static func scalar(_ message: some Sequence<UInt8>, domain: some Sequence<UInt8>) -> Scalar {
        Scalar(reducing64: expandMessage(message, domain: domain, length: 64))
    }
}
