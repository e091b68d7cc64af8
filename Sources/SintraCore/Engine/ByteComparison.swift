#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether two byte arrays are equal, compared with `memcmp`.
///
/// Why not `==`: `Array.==` compares element by element unless both share one buffer, about a byte per cycle,
/// while payloads compared here (a c-send against the proposal a party broadcast, a yes-vote's proposal
/// against the one delivered) are whole vectors of queues, tens of kilobytes, received as separate buffers.
/// `memcmp` compares them several times faster; the result is the same.
@inlinable package func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return a.withUnsafeBytes { left in
        b.withUnsafeBytes { right in
            left.isEmpty || left.baseAddress == right.baseAddress
                || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0
        }
    }
}
