import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The protocol journal (durability stage 2, docs/DURABILITY.md) as append-only segment files in a folder
/// next to the replica's SQLite file.
///
/// Why not a SQLite table: the journal is written before every binding send, many times per round, and a
/// SQLite transaction that inserts a 40 KB proposal writes a dozen B-tree and overflow pages to the WAL and
/// later copies them again at the WAL checkpoint; measured, journaling in SQLite made rounds about 60 %
/// slower. An append is one `write` of the new records, nothing is ever rewritten, and pruning deletes whole
/// files. What SQLite gave for free is done here on purpose and small:
///
/// - Record: length (4 bytes), position (8), round (8), entry, and a checksum. Positions are consecutive
///   across segments. Two checksum formats, told apart by the segment's file name: format 2
///   (`segment-N.log2`, what is written now) ends a record with XXH64 over its length, position, round and
///   entry (8 bytes, `JournalChecksum`, which says why); format 1 (`segment-N.log`, written before) with a
///   SHA-256 over a tag, the position, round and entry (32). Both are read; appends go to a format 2 segment.
/// - A torn or garbled record at the very end of the last segment is what a crash in the middle of an
///   append leaves: it is cut off at open. Nothing that followed from it was sent (the node sends only after
///   the append returned), so forgetting it is safe. A bad record anywhere else is damage: `corrupted`.
/// - Segments: a new one begins once the current one holds `segmentBytes`; a segment is deleted once every
///   record in it is of a round below the kept one (`prune`). So the folder holds about the rounds a resumed
///   instance rebuilds, plus one segment.
/// - Durability: `append` writes without fsync unless `syncEachAppend`; `ReplicaStore` decides (a process
///   crash keeps written pages; after a reboot the journal is not trusted, see `ReplicaStore.journalTrusted`).
///
/// Not thread-safe: its `ReplicaStore` (one actor) calls it serially.
final class JournalFile {
    struct Segment {
        let first: UInt64
        let path: String
        /// The checksum format (see the type's comment): 1 for a segment from before XXH64, 2 since.
        let format: Int
        var bytes: Int
        var highestRound: UInt64
    }

    static let segmentBytes = 4 << 20
    /// The largest entry accepted (a frame's maximum, with room to spare).
    static let entryBytesMax = 8 << 20
    static let headerBytes = 4 + 8 + 8
    /// The checksum's length in a record of `format`.
    static func checksumBytes(format: Int) -> Int { format == 1 ? 32 : 8 }
    /// The format of new segments.
    static let currentFormat = 2
    /// The XXH64 seed of format 2 checksums: "sintra-j" in ASCII, so a record checks only as a journal record.
    static let checksumSeed: UInt64 = 0x7369_6E74_7261_2D6A

    let folder: String
    let syncEachAppend: Bool
    private(set) var segments: [Segment] = []
    /// The position of the next record.
    private(set) var next: UInt64 = 1
    private var descriptor: Int32 = -1

    /// Opens the folder (creating it), reads every segment, cuts a torn tail, and returns the records in
    /// order with `self`.
    static func open(folder: String, syncEachAppend: Bool) throws(StoreError)
        -> (JournalFile, [ReplicaStore.JournalRecord])
    {
        let journal = JournalFile(folder: folder, syncEachAppend: syncEachAppend)
        let records = try journal.load()
        return (journal, records)
    }

    private init(folder: String, syncEachAppend: Bool) {
        self.folder = folder
        self.syncEachAppend = syncEachAppend
    }

    deinit { closeDescriptor() }

    private func closeDescriptor() {
        if descriptor >= 0 { _ = close(descriptor) }
        descriptor = -1
    }

    private func load() throws(StoreError) -> [ReplicaStore.JournalRecord] {
        let manager = FileManager.default
        do {
            try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw .io(path: folder, action: "creating the journal folder", detail: "\(error)")
        }
        let names: [String]
        do {
            names = try manager.contentsOfDirectory(atPath: folder)
        } catch {
            throw .io(path: folder, action: "listing the journal folder", detail: "\(error)")
        }
        let found = names.compactMap { name -> (UInt64, String, Int)? in
            guard name.hasPrefix("segment-") else { return nil }
            let format = name.hasSuffix(".log") ? 1 : name.hasSuffix(".log2") ? 2 : 0
            guard format > 0,
                let first = UInt64(name.dropFirst("segment-".count).dropLast(format == 1 ? ".log".count : ".log2".count))
            else { return nil }
            return (first, folder + "/" + name, format)
        }.sorted { $0.0 < $1.0 }
        var records = [ReplicaStore.JournalRecord]()
        for (index, (first, path, format)) in found.enumerated() {
            guard let data = manager.contents(atPath: path) else {
                throw .io(path: path, action: "reading a journal segment", detail: "unreadable")
            }
            let bytes = [UInt8](data)
            guard first == next || (records.isEmpty && index == 0) else {
                throw .corrupted(path: path, detail: "journal segment starts at \(first), expected \(next)")
            }
            next = first
            var offset = 0
            var highest: UInt64 = 0
            decoding: while offset < bytes.count {
                switch Self.decode(bytes, at: offset, position: next, format: format) {
                case .record(let record, let length):
                    records.append(record)
                    highest = max(highest, record.round)
                    offset += length
                    next += 1
                case .incomplete where index == found.count - 1:
                    // A crash in the middle of the last append: cut it off.
                    if truncate(path, off_t(offset)) != 0 {
                        throw .io(path: path, action: "cutting a torn journal tail", detail: String(cString: strerror(errno)))
                    }
                    break decoding
                case .incomplete, .invalid:
                    throw .corrupted(path: path, detail: "damaged journal entry \(next)")
                }
            }
            segments.append(
                Segment(first: first, path: path, format: format, bytes: min(offset, bytes.count), highestRound: highest))
        }
        return records
    }

    private enum Decoded {
        case record(ReplicaStore.JournalRecord, length: Int)
        /// The file ends inside the record: a torn append.
        case incomplete
        /// A whole record that is not right: damage.
        case invalid
    }

    /// The record at `offset`: whole, at `position`, with its checksum (of `format`) holding, or why not.
    private static func decode(_ bytes: [UInt8], at offset: Int, position: UInt64, format: Int) -> Decoded {
        let checksumBytes = Self.checksumBytes(format: format)
        guard bytes.count - offset >= headerBytes else { return .incomplete }
        func integer<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            var value: T = 0
            for index in 0..<MemoryLayout<T>.size { value = value << 8 | T(bytes[at + index]) }
            return value
        }
        let length = Int(integer(offset, UInt32.self))
        guard length <= entryBytesMax else { return .invalid }
        guard bytes.count - offset >= headerBytes + length + checksumBytes else { return .incomplete }
        let seq = integer(offset + 4, UInt64.self)
        let round = integer(offset + 12, UInt64.self)
        guard seq == position else { return .invalid }
        let entry = Array(bytes[(offset + headerBytes)..<(offset + headerBytes + length)])
        let stored = Array(bytes[(offset + headerBytes + length)..<(offset + headerBytes + length + checksumBytes)])
        let expected =
            format == 1
            ? checksum(seq: seq, round: round, entry)
            : bytes.withUnsafeBytes { checksum(record: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + headerBytes + length)])) }
        guard stored == expected else { return .invalid }
        return .record(ReplicaStore.JournalRecord(round: round, entry: entry), length: headerBytes + length + checksumBytes)
    }

    /// Whether `folder` holds a non-empty segment (without reading it).
    static func hasEntries(folder: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.contains { name in
            guard name.hasPrefix("segment-") else { return false }
            let size = (try? FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.size] as? Int) ?? 0
            return (size ?? 0) > 0
        }
    }

    /// Deletes every segment in `folder` without reading them (a journal that is not trusted may be garbled).
    static func discard(folder: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for name in names where name.hasPrefix("segment-") { _ = unlink(folder + "/" + name) }
    }

    /// A format 2 checksum: XXH64 over the record's header and entry, big-endian.
    static func checksum(record: UnsafeRawBufferPointer) -> [UInt8] {
        withUnsafeBytes(of: JournalChecksum.hash(record, seed: checksumSeed).bigEndian, Array.init)
    }

    /// A format 1 checksum (segments written before format 2; read, no longer written).
    static func checksum(seq: UInt64, round: UInt64, _ entry: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: Array("sintra-journal/".utf8))
        withUnsafeBytes(of: seq.bigEndian) { hasher.update(bufferPointer: $0) }
        withUnsafeBytes(of: round.bigEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(data: entry)
        return Array(hasher.finalize())
    }

    /// Appends `records` with one write (and an fsync if `syncEachAppend`).
    func append(_ records: [ReplicaStore.JournalRecord]) throws(StoreError) {
        guard !records.isEmpty else { return }
        // A format 1 segment left by an older version is not appended to: its records keep one format.
        if segments.isEmpty || segments[segments.count - 1].bytes >= Self.segmentBytes
            || segments[segments.count - 1].format != Self.currentFormat
        {
            try startSegment()
        }
        if descriptor < 0 { try openLast() }
        let checksumBytes = Self.checksumBytes(format: Self.currentFormat)
        var buffer = [UInt8]()
        buffer.reserveCapacity(records.reduce(0) { $0 + $1.entry.count + Self.headerBytes + checksumBytes })
        var highest = segments[segments.count - 1].highestRound
        for record in records {
            guard record.entry.count <= Self.entryBytesMax else {
                throw .io(path: folder, action: "journaling", detail: "an entry of \(record.entry.count) bytes")
            }
            let start = buffer.count
            withUnsafeBytes(of: UInt32(record.entry.count).bigEndian) { buffer.append(contentsOf: $0) }
            withUnsafeBytes(of: next.bigEndian) { buffer.append(contentsOf: $0) }
            withUnsafeBytes(of: record.round.bigEndian) { buffer.append(contentsOf: $0) }
            buffer.append(contentsOf: record.entry)
            // Over the record as it lies in the buffer: no copy of the entry for the checksum.
            let checksum = buffer.withUnsafeBytes { Self.checksum(record: UnsafeRawBufferPointer(rebasing: $0[start...])) }
            buffer.append(contentsOf: checksum)
            highest = max(highest, record.round)
            next += 1
        }
        var written = 0
        while written < buffer.count {
            let result = buffer.withUnsafeBytes { raw in
                write(descriptor, raw.baseAddress! + written, raw.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw .io(path: segments[segments.count - 1].path, action: "journaling", detail: String(cString: strerror(errno)))
            }
            written += result
        }
        if syncEachAppend, fsync(descriptor) != 0 {
            throw .io(path: segments[segments.count - 1].path, action: "syncing the journal", detail: String(cString: strerror(errno)))
        }
        segments[segments.count - 1].bytes += buffer.count
        segments[segments.count - 1].highestRound = highest
    }

    private func startSegment() throws(StoreError) {
        closeDescriptor()
        let path = folder + "/segment-\(String(next).leftPadded(to: 20)).log2"
        segments.append(Segment(first: next, path: path, format: Self.currentFormat, bytes: 0, highestRound: 0))
        try openLast()
    }

    private func openLast() throws(StoreError) {
        let path = segments[segments.count - 1].path
        descriptor = Glibc_open(path)
        guard descriptor >= 0 else {
            throw .io(path: path, action: "opening a journal segment", detail: String(cString: strerror(errno)))
        }
    }

    /// Deletes the closed segments whose records are all of rounds below `keptFrom`.
    func prune(keptFrom: UInt64) {
        while segments.count > 1, segments[0].highestRound < keptFrom {
            _ = unlink(segments[0].path)
            segments.removeFirst()
        }
    }

    /// Deletes every segment; positions go on from where they were.
    func removeAll() {
        closeDescriptor()
        for segment in segments { _ = unlink(segment.path) }
        segments = []
    }

    /// Bytes in the segments.
    var byteCount: Int { segments.reduce(0) { $0 + $1.bytes } }
}

/// `open(2)` for appending, created with owner-only permissions (the entries are as private as the store).
private func Glibc_open(_ path: String) -> Int32 {
    open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
