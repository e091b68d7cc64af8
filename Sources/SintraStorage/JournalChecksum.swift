/// The checksum of a journal record (format 2): XXH64 (Yann Collet's xxHash, 64-bit variant, as specified
/// in the xxHash repository's doc/xxhash_spec.md), written here from the specification.
///
/// Why not SHA-256 any more: the journal checksum is there to find torn appends and damaged bytes, not an
/// adversary (whoever can write the file can also rewrite a SHA-256 over it; the entries' authenticity is
/// the protocol's business, and it checks what it replays as it checked it live). Every byte a replica
/// receives in a binding message is journaled, so at 32 clients × 8 KB the SHA-256 over the records was
/// 4.6 % of a replica's samples, the largest single use of SHA-256 (BENCHMARKS.md, "Cheaper bytes"). XXH64
/// reads 32 bytes per step with four independent multiply–rotate lanes, several times faster than SHA-256
/// even with the SHA extensions, and a 64-bit value misses a random corruption with probability 2⁻⁶⁴,
/// against 2⁻³² for the CRC-32 that file systems and SQLite's WAL settle for.
enum JournalChecksum {
    private static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) private static func rotated(_ value: UInt64, _ count: UInt64) -> UInt64 {
        value << count | value >> (64 - count)
    }

    @inline(__always) private static func round(_ accumulator: UInt64, _ input: UInt64) -> UInt64 {
        rotated(accumulator &+ input &* prime2, 31) &* prime1
    }

    @inline(__always) private static func merge(_ accumulator: UInt64, _ lane: UInt64) -> UInt64 {
        (accumulator ^ round(0, lane)) &* prime1 &+ prime4
    }

    /// XXH64 of `head` followed by `tail` with `seed`, without joining them: equal to `hash(_:seed:)` of
    /// their concatenation. A journal record's checksum covers its header and its entry, and the entry is
    /// written from where it lies (`JournalFile.append`), so the two are never contiguous in memory.
    ///
    /// The 32-byte stripes that lie within either part are read in place; only the stripe that straddles
    /// the boundary (the head is a 20-byte header) is copied, into 32 bytes on the stack.
    static func hash(_ head: UnsafeRawBufferPointer, _ tail: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { staging in
            let count = head.count + tail.count
            guard count >= 32 else {
                // Short: both fit the staging space, and the one-shot function does the rest.
                staging.copyMemory(from: head)
                UnsafeMutableRawBufferPointer(rebasing: staging[head.count...]).copyMemory(from: tail)
                return hash(UnsafeRawBufferPointer(rebasing: staging[..<count]), seed: seed)
            }
            var lanes = (seed &+ prime1 &+ prime2, seed &+ prime2, seed, seed &- prime1)
            func stripe(_ bytes: UnsafeRawBufferPointer, _ at: Int) {
                func word(_ offset: Int) -> UInt64 {
                    UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at + offset, as: UInt64.self))
                }
                lanes = (
                    round(lanes.0, word(0)), round(lanes.1, word(8)), round(lanes.2, word(16)), round(lanes.3, word(24))
                )
            }
            // The head's whole stripes, then the stripe of the head's rest and the tail's first bytes, then
            // the tail's whole stripes; what is left (under 32 bytes) is in `staging` or at the tail's end.
            var offset = 0
            while head.count - offset >= 32 {
                stripe(head, offset)
                offset += 32
            }
            let headRest = head.count - offset
            var rest = UnsafeRawBufferPointer(rebasing: tail[...])
            if headRest > 0 {
                let fromTail = min(32 - headRest, tail.count)
                staging.copyMemory(from: UnsafeRawBufferPointer(rebasing: head[offset...]))
                UnsafeMutableRawBufferPointer(rebasing: staging[headRest...])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: tail[..<fromTail]))
                if headRest + fromTail == 32 {
                    stripe(UnsafeRawBufferPointer(staging), 0)
                    rest = UnsafeRawBufferPointer(rebasing: tail[fromTail...])
                } else {
                    rest = UnsafeRawBufferPointer(rebasing: staging[..<(headRest + fromTail)])
                }
            }
            if rest.count >= 32 {
                var consumed = 0
                while rest.count - consumed >= 32 {
                    stripe(rest, consumed)
                    consumed += 32
                }
                rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
            }
            var result = rotated(lanes.0, 1) &+ rotated(lanes.1, 7) &+ rotated(lanes.2, 12) &+ rotated(lanes.3, 18)
            result = merge(result, lanes.0)
            result = merge(result, lanes.1)
            result = merge(result, lanes.2)
            result = merge(result, lanes.3)
            result &+= UInt64(count)
            return finish(result, rest)
        }
    }

    /// XXH64 of `bytes` with `seed`.
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        let count = bytes.count
        var offset = 0
        @inline(__always) func word(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        var result: UInt64
        if count >= 32 {
            var lane1 = seed &+ prime1 &+ prime2
            var lane2 = seed &+ prime2
            var lane3 = seed
            var lane4 = seed &- prime1
            while count - offset >= 32 {
                lane1 = round(lane1, word(offset))
                lane2 = round(lane2, word(offset + 8))
                lane3 = round(lane3, word(offset + 16))
                lane4 = round(lane4, word(offset + 24))
                offset += 32
            }
            result = rotated(lane1, 1) &+ rotated(lane2, 7) &+ rotated(lane3, 12) &+ rotated(lane4, 18)
            result = merge(result, lane1)
            result = merge(result, lane2)
            result = merge(result, lane3)
            result = merge(result, lane4)
        } else {
            result = seed &+ prime5
        }
        result &+= UInt64(count)
        return finish(result, UnsafeRawBufferPointer(rebasing: bytes[offset...]))
    }

    /// The end of XXH64: the last fewer than 32 bytes, `rest`, mixed into `accumulator`, then the avalanche.
    @inline(__always)
    private static func finish(_ accumulator: UInt64, _ rest: UnsafeRawBufferPointer) -> UInt64 {
        var result = accumulator
        var offset = 0
        let count = rest.count
        while count - offset >= 8 {
            result ^= round(0, UInt64(littleEndian: rest.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
            result = rotated(result, 27) &* prime1 &+ prime4
            offset += 8
        }
        if count - offset >= 4 {
            let half = UInt64(UInt32(littleEndian: rest.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            result ^= half &* prime1
            result = rotated(result, 23) &* prime2 &+ prime3
            offset += 4
        }
        while offset < count {
            result ^= UInt64(rest[offset]) &* prime5
            result = rotated(result, 11) &* prime1
            offset += 1
        }
        result ^= result >> 33
        result &*= prime2
        result ^= result >> 29
        result &*= prime3
        result ^= result >> 32
        return result
    }
}
