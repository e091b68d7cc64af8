/// Bytes as a dictionary or set key, hashed eight bytes at a time.
///
/// `[UInt8]`'s own `Hashable` feeds the hasher one byte per call; for the 32-byte request digests that key
/// the replica's hottest tables (delivered, pending, verified, held requests) that made hashing and
/// lookups about a tenth of a replica's CPU under load. Equality is the arrays' equality.
public struct ByteKey: Hashable, Sendable {
    public let bytes: [UInt8]

    @inlinable public init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inlinable public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    @inlinable public static func == (a: ByteKey, b: ByteKey) -> Bool { a.bytes == b.bytes }
}
