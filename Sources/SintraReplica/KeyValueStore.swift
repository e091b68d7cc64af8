import Crypto
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import SintraCrypto

/// SintraKV: a replicated key-value store with put, get, delete, compare-and-swap and range scan.
///
/// Operations and results have canonical binary encodings; the state is kept in key order, so snapshots
/// and digests are identical on every replica that applied the same operations.
public struct KeyValueStore: StateMachine {
    public static let keyBytesMax = 1024
    public static let valueBytesMax = 64 << 10
    public static let scanCountMax = 1000
    /// Encoded bytes of a scan's entries (each key and value with their 4-byte lengths). A scan returns
    /// fewer entries than asked once the next one would pass this, so that its reply always fits one client
    /// record (`ClientPorts.recordBytesMax`, 1 MiB + 256) with its framing; 1,000 values of 64 KiB would not.
    public static let scanBytesMax = (1 << 20) - 1024

    /// Operations one batch holds at most (`Operation.batch`).
    public static let batchCountMax = 4096
    /// Encoded bytes of a batch's results at most, each with its 4-byte length: a batch's reply fits one
    /// client record as a scan's does (`scanBytesMax`).
    public static let batchResultBytesMax = scanBytesMax
    /// The encoded result an operation of a batch gets when the batch's remaining reply budget cannot hold
    /// its largest possible result (`perform(_:)`, `.batch`).
    public static let overBudget = Result.invalid("over the batch's reply budget")
    /// Budget every later operation of a batch keeps back, so that even its refusal fits: the encoded
    /// `overBudget` and its length.
    static let batchResultBytesReserved = overBudget.encoded.count + 4

    /// A run of entries in increasing key order, with each key's `KeyPrefix`.
    private struct Chunk: Sendable {
        var keys: [[UInt8]]
        var values: [[UInt8]]
        var prefixes: [KeyPrefix]
    }

    /// A key's first 16 bytes as two big-endian words, zero-padded: a key's place in the order, as far as
    /// 16 bytes tell it, in one contiguous value.
    ///
    /// Why: the searches compared the probe with keys that are separate heap arrays, one cache miss per
    /// step of the binary search (about 19 steps with 400,000 keys); `position(of:)` was 4.7 % of a
    /// replica's samples at 4,000 callers. Searching over arrays of prefixes reads contiguous memory, and
    /// a key itself is read only when the prefixes are equal.
    ///
    /// Sound: if `KeyPrefix(a) < KeyPrefix(b)` then `a` precedes `b`. At the first byte where the padded
    /// prefixes differ, `b`'s is not padding (it is above `a`'s); if `a`'s is a real byte the keys differ
    /// there first, else `a` ended and is a proper prefix of `b`. Equal prefixes decide nothing (`ab` and
    /// `ab\0` pad alike, and keys longer than 16 bytes share them): the keys are compared then.
    struct KeyPrefix: Sendable, Equatable {
        var high: UInt64
        var low: UInt64

        @inline(__always)
        init(_ key: UnsafeBufferPointer<UInt8>) {
            if key.count >= 16 {
                let raw = UnsafeRawBufferPointer(key)
                high = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
                low = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                return
            }
            high = 0
            low = 0
            for index in 0..<key.count {
                if index < 8 {
                    high |= UInt64(key[index]) << UInt64(56 - 8 * index)
                } else {
                    low |= UInt64(key[index]) << UInt64(56 - 8 * (index - 8))
                }
            }
        }

        init(_ key: [UInt8]) {
            self = key.withUnsafeBufferPointer { KeyPrefix($0) }
        }

        /// Negative, zero or positive as `self` sorts before, with or after `other`.
        @inline(__always)
        func order(_ other: KeyPrefix) -> Int {
            high != other.high ? (high < other.high ? -1 : 1) : low != other.low ? (low < other.low ? -1 : 1) : 0
        }
    }

    /// Entries in increasing key order, split into chunks of at most `chunkCountMax` (every chunk holds at
    /// least one entry). Why not one sorted array: inserting a new key moved every later entry, so a put
    /// cost O(n); with 100,000 keys that was 1.6 MB of memory moved per put, 4 % of a replica's CPU in a
    /// bench, growing with the store. Here an insert moves at most one chunk's entries, plus the list of
    /// chunks when one splits (once per `chunkCountMax / 2` inserts into it).
    private var chunks: [Chunk] = []
    /// The last key of each chunk, in a list of its own: the search for a key's chunk reads only this, not
    /// one chunk after another (each probe retained and released a chunk's arrays; the search was 6.5 % of a
    /// replica's samples with 400,000 keys in a batched bench).
    private var lastKeys: [[UInt8]] = []
    /// The prefixes of `lastKeys`.
    private var lastPrefixes: [KeyPrefix] = []
    /// Entries held.
    public private(set) var count = 0
    /// Entries per chunk at most; a fuller chunk splits in halves.
    static let chunkCountMax = 512

    public init() {}

    public enum Operation: Sendable, Equatable {
        case put(key: [UInt8], value: [UInt8])
        case get(key: [UInt8])
        case delete(key: [UInt8])
        /// Sets `new` if the current value equals `expected` (nil: the key must be absent).
        case compareAndSwap(key: [UInt8], expected: [UInt8]?, new: [UInt8])
        /// Keys in [from, to), at most `limit` (capped at `scanCountMax`) and at most `scanBytesMax` encoded
        /// bytes of entries: a short result does not mean the range is exhausted; scan again from after the
        /// last key returned.
        case scan(from: [UInt8], to: [UInt8], limit: Int)
        /// Several operations applied in order as one, each with its own result (`Result.batch`): a client
        /// that signs one request for many operations (`OperationBatching`, the client's `OperationBatcher`)
        /// pays one signature check per batch at every replica instead of one per operation. At most
        /// `batchCountMax`, none of them a batch; the results share `batchResultBytesMax` (`perform(_:)`).
        case batch([Operation])

        public var encoded: [UInt8] {
            var writer = ByteWriter()
            switch self {
            case .put(let key, let value):
                writer.write(UInt8(0))
                writer.writeVariable(key)
                writer.writeVariable(value)
            case .get(let key):
                writer.write(UInt8(1))
                writer.writeVariable(key)
            case .delete(let key):
                writer.write(UInt8(2))
                writer.writeVariable(key)
            case .compareAndSwap(let key, let expected, let new):
                writer.write(UInt8(3))
                writer.writeVariable(key)
                writer.write(UInt8(expected == nil ? 0 : 1))
                if let expected { writer.writeVariable(expected) }
                writer.writeVariable(new)
            case .scan(let from, let to, let limit):
                writer.write(UInt8(4))
                writer.writeVariable(from)
                writer.writeVariable(to)
                writer.write(UInt32(clamping: limit))
            case .batch(let operations):
                return KeyValueStore.Batching().batch(operations.map(\.encoded))
            }
            return writer.bytes
        }

        public init(encoded bytes: [UInt8]) throws(DecodingError) {
            var reader = ByteReader(bytes, context: "kv operation")
            func key() throws(DecodingError) -> [UInt8] { try reader.readVariable(maximum: KeyValueStore.keyBytesMax) }
            func value() throws(DecodingError) -> [UInt8] { try reader.readVariable(maximum: KeyValueStore.valueBytesMax) }
            switch try reader.readUInt8() {
            case 0: self = .put(key: try key(), value: try value())
            case 1: self = .get(key: try key())
            case 2: self = .delete(key: try key())
            case 3:
                let key = try key()
                let flag = try reader.readUInt8()
                guard flag <= 1 else { throw DecodingError(.invalidValue("flag \(flag)"), in: "kv operation") }
                let expected = flag == 1 ? try value() : nil
                self = .compareAndSwap(key: key, expected: expected, new: try value())
            case 4:
                self = .scan(from: try key(), to: try key(), limit: Int(try reader.readUInt32()))
            case 5:
                let count = Int(try reader.readUInt32())
                guard count <= KeyValueStore.batchCountMax else {
                    throw DecodingError(.tooLong(maximum: KeyValueStore.batchCountMax, actual: count), in: "kv batch")
                }
                var operations = [Operation]()
                operations.reserveCapacity(count)
                for _ in 0..<count {
                    let operation = try Operation(encoded: reader.readVariable(maximum: ClientRequest.operationBytesMax))
                    if case .batch = operation {
                        throw DecodingError(.invalidValue("a batch inside a batch"), in: "kv batch")
                    }
                    operations.append(operation)
                }
                self = .batch(operations)
            case let tag:
                throw DecodingError(.invalidValue("unknown operation \(tag)"), in: "kv operation")
            }
            try reader.finish()
        }
    }

    /// A result: a status byte, then the payload of that status.
    public enum Result: Sendable, Equatable {
        case ok
        case value([UInt8])
        case notFound
        /// Compare-and-swap failed; carries the current value (nil if absent).
        case conflict(current: [UInt8]?)
        case entries([(key: [UInt8], value: [UInt8])])
        case invalid(String)
        /// The results of an `Operation.batch`, one per operation in order.
        case batch([Result])

        public static func == (a: Result, b: Result) -> Bool { a.encoded == b.encoded }

        /// The encoding, written into a writer sized once (`encodedCount`).
        public var encoded: [UInt8] {
            var writer = ByteWriter(capacity: encodedCount)
            encode(into: &writer)
            return writer.bytes
        }

        /// The length of `encoded`, computed without encoding. A batch's execution needs each result's
        /// length for its reply budget; encoding every result for it, and again inside the batch's encoding,
        /// allocated two arrays per operation (and the batch's writer grew from 64 bytes, copying itself).
        public var encodedCount: Int {
            switch self {
            case .ok, .notFound: 1
            case .value(let value): 5 + value.count
            case .conflict(let current): 2 + (current.map { 4 + $0.count } ?? 0)
            case .entries(let entries): entries.reduce(5) { $0 + 8 + $1.key.count + $1.value.count }
            case .invalid(let reason): 5 + reason.utf8.count
            case .batch(let results): results.reduce(5) { $0 + 4 + $1.encodedCount }
            }
        }

        /// Appends `encoded` to `writer`; a batch writes its results in place.
        public func encode(into writer: inout ByteWriter) {
            switch self {
            case .ok: writer.write(UInt8(0))
            case .value(let value):
                writer.write(UInt8(1))
                writer.writeVariable(value)
            case .notFound: writer.write(UInt8(2))
            case .conflict(let current):
                writer.write(UInt8(3))
                writer.write(UInt8(current == nil ? 0 : 1))
                if let current { writer.writeVariable(current) }
            case .entries(let entries):
                writer.write(UInt8(4))
                writer.write(UInt32(entries.count))
                for entry in entries {
                    writer.writeVariable(entry.key)
                    writer.writeVariable(entry.value)
                }
            case .invalid(let reason):
                writer.write(UInt8(5))
                writer.writeVariable(Array(reason.utf8))
            case .batch(let results):
                writer.write(UInt8(6))
                writer.write(UInt32(results.count))
                for result in results {
                    writer.write(UInt32(result.encodedCount))
                    result.encode(into: &writer)
                }
            }
        }

        public init(encoded bytes: [UInt8]) throws(DecodingError) {
            var reader = ByteReader(bytes, context: "kv result")
            switch try reader.readUInt8() {
            case 0: self = .ok
            case 1: self = .value(try reader.readVariable(maximum: KeyValueStore.valueBytesMax))
            case 2: self = .notFound
            case 3:
                let present = try reader.readUInt8() == 1
                self = .conflict(current: present ? try reader.readVariable(maximum: KeyValueStore.valueBytesMax) : nil)
            case 4:
                let count = Int(try reader.readUInt32())
                guard count <= KeyValueStore.scanCountMax else {
                    throw DecodingError(.tooLong(maximum: KeyValueStore.scanCountMax, actual: count), in: "kv result")
                }
                var entries = [(key: [UInt8], value: [UInt8])]()
                for _ in 0..<count {
                    let key = try reader.readVariable(maximum: KeyValueStore.keyBytesMax)
                    entries.append((key, try reader.readVariable(maximum: KeyValueStore.valueBytesMax)))
                }
                self = .entries(entries)
            case 5: self = .invalid(String(decoding: try reader.readVariable(maximum: 1024), as: UTF8.self))
            case 6:
                var results = [Result]()
                for bytes in try KeyValueStore.Batching.results(&reader) {
                    let result = try Result(encoded: bytes)
                    if case .batch = result {
                        throw DecodingError(.invalidValue("a batch inside a batch"), in: "kv result")
                    }
                    results.append(result)
                }
                self = .batch(results)
            case let tag: throw DecodingError(.invalidValue("unknown result \(tag)"), in: "kv result")
            }
            try reader.finish()
        }
    }

    /// Whether `a` sorts before `b`, bytes compared as unsigned numbers and a proper prefix first: the order
    /// of `lexicographicallyPrecedes`, by `memcmp`. The generic comparison walked the keys element by element
    /// through iterators and was 5 % of a replica's samples in a batched bench (every put searches the
    /// store).
    @inline(__always)
    static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let common = min(a.count, b.count)
        let order = a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in common == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, common) }
        }
        return order != 0 ? order < 0 : a.count < b.count
    }

    /// Whether the chunks are what the searches assume: none empty, keys increasing within and across them,
    /// `lastKeys` their last keys, `count` their total (for tests).
    /// The prefixes (`KeyPrefix`) of every chunk and of `lastKeys` are their keys'.
    var isConsistent: Bool {
        guard lastKeys.count == chunks.count, lastPrefixes.count == chunks.count,
            count == chunks.reduce(0, { $0 + $1.keys.count })
        else { return false }
        guard zip(lastKeys, lastPrefixes).allSatisfy({ KeyPrefix($0) == $1 }) else { return false }
        var previous: [UInt8]?
        for (chunk, last) in zip(chunks, lastKeys) {
            guard let final = chunk.keys.last, final == last, chunk.keys.count == chunk.values.count,
                chunk.prefixes.count == chunk.keys.count,
                zip(chunk.keys, chunk.prefixes).allSatisfy({ KeyPrefix($0) == $1 })
            else { return false }
            for key in chunk.keys {
                if let previous, !Self.precedes(previous, key) { return false }
                previous = key
            }
        }
        return true
    }

    /// The order of `a` against the bytes of `probe` (negative: before; zero: equal), as `precedes` orders.
    @inline(__always)
    private static func compare(_ a: [UInt8], _ probe: UnsafeBufferPointer<UInt8>) -> Int {
        a.withUnsafeBufferPointer { a in
            let common = min(a.count, probe.count)
            let order = common == 0 ? 0 : memcmp(a.baseAddress!, probe.baseAddress!, common)
            return order != 0 ? Int(order) : a.count - probe.count
        }
    }

    /// The order of the key at `index` against `probe` (whose prefix is `probePrefix`): by the prefixes,
    /// and by the keys' bytes only where those are equal.
    @inline(__always)
    private static func compare(
        _ index: Int, _ keys: UnsafeBufferPointer<[UInt8]>, _ prefixes: UnsafeBufferPointer<KeyPrefix>,
        _ probe: UnsafeBufferPointer<UInt8>, _ probePrefix: KeyPrefix
    ) -> Int {
        let order = prefixes[index].order(probePrefix)
        return order != 0 ? order : compare(keys[index], probe)
    }

    /// The first index of `keys` whose key is not below `probe`, and whether it equals it.
    @inline(__always)
    private static func search(
        _ keys: UnsafeBufferPointer<[UInt8]>, _ prefixes: UnsafeBufferPointer<KeyPrefix>,
        _ probe: UnsafeBufferPointer<UInt8>, _ probePrefix: KeyPrefix
    ) -> (Int, Bool) {
        var low = 0, high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if compare(middle, keys, prefixes, probe, probePrefix) < 0 { low = middle + 1 } else { high = middle }
        }
        return (low, low < keys.count && compare(low, keys, prefixes, probe, probePrefix) == 0)
    }

    /// Where `key` is, or where it would be inserted: the chunk (`chunks.count` when the key is above every
    /// key held) and the index in it. Both searches run over the arrays' buffers, without retaining keys,
    /// and read keys only where their prefixes equal the probe's (`KeyPrefix`).
    private func position(of key: [UInt8]) -> (chunk: Int, index: Int, found: Bool) {
        position(of: key, prefix: KeyPrefix(key))
    }

    private func position(of key: [UInt8], prefix: KeyPrefix) -> (chunk: Int, index: Int, found: Bool) {
        key.withUnsafeBufferPointer { probe in
            // The first chunk whose last key is not below `key`.
            let chunk = lastKeys.withUnsafeBufferPointer { keys in
                lastPrefixes.withUnsafeBufferPointer { Self.search(keys, $0, probe, prefix).0 }
            }
            guard chunk < chunks.count else { return (chunk, 0, false) }
            let (index, found) = chunks[chunk].keys.withUnsafeBufferPointer { keys in
                chunks[chunk].prefixes.withUnsafeBufferPointer { Self.search(keys, $0, probe, prefix) }
            }
            return (chunk, index, found)
        }
    }

    /// The value of `key`, if present.
    private func value(of key: [UInt8]) -> [UInt8]? {
        let (chunk, index, found) = position(of: key)
        return found ? chunks[chunk].values[index] : nil
    }

    private mutating func set(_ key: [UInt8], _ value: [UInt8]) {
        let prefix = KeyPrefix(key)
        var (chunk, index, found) = position(of: key, prefix: prefix)
        if found {
            chunks[chunk].values[index] = value
            return
        }
        if chunk == chunks.count {
            // Above every key: at the end of the last chunk, or in a first chunk.
            guard !chunks.isEmpty else {
                chunks.append(Chunk(keys: [key], values: [value], prefixes: [prefix]))
                lastKeys.append(key)
                lastPrefixes.append(prefix)
                count = 1
                return
            }
            chunk -= 1
            index = chunks[chunk].keys.count
            lastKeys[chunk] = key
            lastPrefixes[chunk] = prefix
        }
        chunks[chunk].keys.insert(key, at: index)
        chunks[chunk].values.insert(value, at: index)
        chunks[chunk].prefixes.insert(prefix, at: index)
        count += 1
        if chunks[chunk].keys.count > Self.chunkCountMax {
            let half = chunks[chunk].keys.count / 2
            let upper = Chunk(
                keys: Array(chunks[chunk].keys[half...]), values: Array(chunks[chunk].values[half...]),
                prefixes: Array(chunks[chunk].prefixes[half...]))
            chunks[chunk].keys.removeSubrange(half...)
            chunks[chunk].values.removeSubrange(half...)
            chunks[chunk].prefixes.removeSubrange(half...)
            chunks.insert(upper, at: chunk + 1)
            lastKeys[chunk] = chunks[chunk].keys[half - 1]
            lastPrefixes[chunk] = chunks[chunk].prefixes[half - 1]
            lastKeys.insert(upper.keys[upper.keys.count - 1], at: chunk + 1)
            lastPrefixes.insert(upper.prefixes[upper.prefixes.count - 1], at: chunk + 1)
        }
    }

    private mutating func remove(_ key: [UInt8]) -> Bool {
        let (chunk, index, found) = position(of: key)
        guard found else { return false }
        chunks[chunk].keys.remove(at: index)
        chunks[chunk].values.remove(at: index)
        chunks[chunk].prefixes.remove(at: index)
        count -= 1
        if chunks[chunk].keys.isEmpty {
            chunks.remove(at: chunk)
            lastKeys.remove(at: chunk)
            lastPrefixes.remove(at: chunk)
        } else if index == chunks[chunk].keys.count {
            lastKeys[chunk] = chunks[chunk].keys[index - 1]
            lastPrefixes[chunk] = chunks[chunk].prefixes[index - 1]
        }
        return true
    }

    public mutating func apply(_ operation: [UInt8]) -> [UInt8] {
        let decoded: Operation
        do {
            decoded = try Operation(encoded: operation)
        } catch {
            return Result.invalid(error.description).encoded
        }
        return perform(decoded).encoded
    }

    /// Applies a decoded operation.
    public mutating func perform(_ operation: Operation) -> Result {
        switch operation {
        case .put(let key, let value):
            set(key, value)
            return .ok
        case .get(let key):
            return value(of: key).map { .value($0) } ?? .notFound
        case .delete(let key):
            return remove(key) ? .ok : .notFound
        case .compareAndSwap(let key, let expected, let new):
            let current = value(of: key)
            guard current == expected else { return .conflict(current: current) }
            set(key, new)
            return .ok
        case .scan(let from, let to, let limit):
            return .entries(scan(from: from, to: to, limit: limit, bytesMax: KeyValueStore.scanBytesMax).entries)
        case .batch(let operations):
            return .batch(performBatch(operations))
        }
    }

    /// The largest encoded result of a compare-and-swap: a conflict carrying a value of `valueBytesMax`.
    static let compareAndSwapResultBytesMax = valueBytesMax + 6

    /// Applies a batch's operations in order, each seeing the effects of those before it.
    ///
    /// The results share `batchResultBytesMax` (with 4 bytes of length each), so that the reply fits one
    /// client record whatever the batch holds; every operation keeps `batchResultBytesReserved` back for each
    /// one after it, so that a refusal always fits. Within what is left for an operation:
    /// - put and delete always run (their results are a byte);
    /// - a compare-and-swap runs only if its largest result (a conflict with a value of `valueBytesMax`) fits,
    ///   so whether it ran never depends on the value found; otherwise it is not applied and answers
    ///   `overBudget`;
    /// - a get answers `overBudget` if the value it found does not fit (it changes nothing either way);
    /// - a scan returns the entries that fit, as a scan cut by `scanBytesMax` does, or `overBudget` if not even
    ///   the first one does (an empty result would read as an empty range).
    /// Every replica holds the same state before the batch, so every replica decides the same.
    private mutating func performBatch(_ operations: [Operation]) -> [Result] {
        var results = [Result]()
        results.reserveCapacity(operations.count)
        var budget = KeyValueStore.batchResultBytesMax
        for (index, operation) in operations.enumerated() {
            let available = budget - (operations.count - index - 1) * Self.batchResultBytesReserved
            let result: Result
            switch operation {
            case .put, .delete:
                result = perform(operation)
            case .compareAndSwap:
                result = available >= Self.compareAndSwapResultBytesMax + 4 ? perform(operation) : Self.overBudget
            case .get:
                let found = perform(operation)
                result = found.encodedCount + 4 <= available ? found : Self.overBudget
            case .scan(let from, let to, let limit):
                // Room for the entries: what is left, less the result's length, status byte and count.
                let scanned = scan(
                    from: from, to: to, limit: limit, bytesMax: min(KeyValueStore.scanBytesMax, available - 9))
                result = scanned.entries.isEmpty && scanned.cut ? Self.overBudget : .entries(scanned.entries)
            case .batch:
                // Not decodable (`Operation(encoded:)` refuses it); only code can build one.
                result = .invalid("a batch inside a batch")
            }
            budget -= result.encodedCount + 4
            results.append(result)
        }
        return results
    }

    /// Entries with keys in [from, to), at most `limit` (capped at `scanCountMax`) and at most `bytesMax` bytes
    /// of them as encoded (each key and value with 4 bytes of length); `cut` tells whether an entry in range
    /// was left out for the bytes.
    private func scan(
        from: [UInt8], to: [UInt8], limit: Int, bytesMax: Int
    ) -> (entries: [(key: [UInt8], value: [UInt8])], cut: Bool) {
        var entries = [(key: [UInt8], value: [UInt8])]()
        var (chunk, index, _) = position(of: from)
        let wanted = min(max(limit, 0), KeyValueStore.scanCountMax)
        var bytes = 0
        while chunk < chunks.count {
            let keys = chunks[chunk].keys
            while index < keys.count {
                guard entries.count < wanted, Self.precedes(keys[index], to) else { return (entries, false) }
                let value = chunks[chunk].values[index]
                bytes += 8 + keys[index].count + value.count
                guard bytes <= bytesMax else { return (entries, true) }
                entries.append((keys[index], value))
                index += 1
            }
            chunk += 1
            index = 0
        }
        return (entries, false)
    }

    public func snapshot() -> [UInt8] {
        var writer = ByteWriter(capacity: snapshotByteCount ?? 0)
        writeSnapshot(into: &writer)
        return writer.bytes
    }

    /// The count, then every key and value with 4 bytes of length, in key order, written chunk by chunk into
    /// a writer sized beforehand (`snapshotByteCount`). A checkpoint encodes the whole store: built by
    /// appending to a growing array through a lazy sequence, the encoding of 100,000 entries was 4 % of a
    /// replica's samples in a batched bench, most of it copies and fresh pages of the regrown array.
    public func writeSnapshot(into writer: inout ByteWriter) {
        writer.write(UInt64(count))
        for chunk in chunks {
            for (key, value) in zip(chunk.keys, chunk.values) {
                writer.writeVariable(key)
                writer.writeVariable(value)
            }
        }
    }

    public var snapshotByteCount: Int? {
        chunks.reduce(8) { total, chunk in
            zip(chunk.keys, chunk.values).reduce(total) { $0 + 8 + $1.0.count + $1.1.count }
        }
    }

    public init(snapshot: [UInt8]) throws(DecodingError) {
        var reader = ByteReader(snapshot, context: "kv snapshot")
        let count = try reader.readUInt64()
        var previous: [UInt8]?
        for _ in 0..<count {
            let key = try reader.readVariable(maximum: KeyValueStore.keyBytesMax)
            let value = try reader.readVariable(maximum: KeyValueStore.valueBytesMax)
            if let previous, !Self.precedes(previous, key) {
                throw DecodingError(.invalidValue("keys not strictly increasing"), in: "kv snapshot")
            }
            previous = key
            if chunks.isEmpty || chunks[chunks.count - 1].keys.count >= Self.chunkCountMax {
                chunks.append(Chunk(keys: [], values: [], prefixes: []))
            }
            let prefix = KeyPrefix(key)
            chunks[chunks.count - 1].keys.append(key)
            chunks[chunks.count - 1].values.append(value)
            chunks[chunks.count - 1].prefixes.append(prefix)
            if lastKeys.count < chunks.count {
                lastKeys.append(key)
                lastPrefixes.append(prefix)
            } else {
                lastKeys[lastKeys.count - 1] = key
                lastPrefixes[lastPrefixes.count - 1] = prefix
            }
            self.count += 1
        }
        try reader.finish()
    }

    public var digest: [UInt8] { Array(SHA256.hash(data: snapshot())) }
}
