/// Canonical binary encoding: fixed-width big-endian integers and length-prefixed fields, each with its
/// own maximum. Used for every encoding of cryptographic objects and for hash transcripts.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) {
        bytes.append(value)
    }

    public mutating func write(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xff))
    }

    public mutating func write(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    public mutating func write(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    /// Raw bytes of a fixed, known length (no prefix).
    public mutating func writeFixed(_ data: some Sequence<UInt8>) {
        bytes.append(contentsOf: data)
    }

    /// A 32-bit length prefix followed by the bytes.
    public mutating func writeVariable(_ data: some Collection<UInt8>) {
        precondition(data.count <= Int(UInt32.max), "field too long to encode")
        write(UInt32(data.count))
        bytes.append(contentsOf: data)
    }

    public mutating func write(_ element: GroupElement) {
        bytes.append(contentsOf: element.encoded)
    }

    public mutating func write(_ scalar: Scalar) {
        bytes.append(contentsOf: scalar.bytes)
    }
}

/// Reads what `ByteWriter` wrote. Every read checks the remaining length and throws instead of trapping.
public struct ByteReader: Sendable {
    private let bytes: [UInt8]
    private var position: Int
    /// Names the object being decoded, for error messages.
    public let context: String

    public init(_ bytes: some Sequence<UInt8>, context: String) {
        self.bytes = Array(bytes)
        self.position = 0
        self.context = context
    }

    public var remainingCount: Int { bytes.count - position }

    public mutating func readFixed(_ count: Int) throws(DecodingError) -> [UInt8] {
        guard count >= 0, remainingCount >= count else {
            throw DecodingError(.truncated, in: context)
        }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    // The integers are read in place: going through `readFixed` allocated an array per integer read, and a
    // frame's decoding reads several per layer and per request.
    public mutating func readUInt8() throws(DecodingError) -> UInt8 {
        try readInteger(UInt8.self)
    }

    public mutating func readUInt16() throws(DecodingError) -> UInt16 {
        try readInteger(UInt16.self)
    }

    public mutating func readUInt32() throws(DecodingError) -> UInt32 {
        try readInteger(UInt32.self)
    }

    public mutating func readUInt64() throws(DecodingError) -> UInt64 {
        try readInteger(UInt64.self)
    }

    /// A big-endian integer of `T`'s width.
    private mutating func readInteger<T: FixedWidthInteger>(_: T.Type) throws(DecodingError) -> T {
        let count = MemoryLayout<T>.size
        guard remainingCount >= count else { throw DecodingError(.truncated, in: context) }
        var value: T = 0
        for index in position..<(position + count) { value = value << 8 | T(bytes[index]) }
        position += count
        return value
    }

    /// A length-prefixed field of at most `maximum` bytes.
    public mutating func readVariable(maximum: Int) throws(DecodingError) -> [UInt8] {
        let length = Int(try readUInt32())
        guard length <= maximum else {
            throw DecodingError(.tooLong(maximum: maximum, actual: length), in: context)
        }
        return try readFixed(length)
    }

    /// A canonical ristretto255 element; the identity is rejected unless allowed.
    public mutating func readElement(allowIdentity: Bool = false) throws(DecodingError) -> GroupElement {
        let raw = try readFixed(GroupElement.encodedLength)
        let element: GroupElement
        do throws(DecodingError) {
            element = try GroupElement(encoded: raw)
        } catch {
            throw DecodingError(error.reason, in: context)
        }
        if !allowIdentity && element.isIdentity {
            throw DecodingError(.identityElement, in: context)
        }
        return element
    }

    /// A canonical scalar.
    public mutating func readScalar() throws(DecodingError) -> Scalar {
        let raw = try readFixed(32)
        do throws(DecodingError) {
            return try Scalar(canonicalBytes: raw)
        } catch {
            throw DecodingError(error.reason, in: context)
        }
    }

    /// Throws unless every byte was consumed.
    public func finish() throws(DecodingError) {
        guard remainingCount == 0 else {
            throw DecodingError(.trailingBytes(count: remainingCount), in: context)
        }
    }
}
