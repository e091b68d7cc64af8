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

    /// Records written with one `writev` at most: three pieces each (header, entry, checksum) stay under
    /// the system's `IOV_MAX` of 1024, and the entries' buffers are held open for it by nested closures,
    /// one level per record.
    static let recordsPerWrite = 64

    /// Appends `records` (and fsyncs if `syncEachAppend`).
    ///
    /// Each record's header and checksum are built in a small side buffer and written with its entry by
    /// `writev`, from where the entry lies: the entries are not copied into one buffer first. That copy,
    /// of every byte journaled, was 1.4 % of a replica's samples at 4,000 callers (BENCHMARKS.md). A call
    /// with more than `recordsPerWrite` records takes several writes; a crash between them leaves whole
    /// records and at most one torn one at the end, as a crash inside one write could.
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
        let sideBytes = Self.headerBytes + checksumBytes
        var side = [UInt8](repeating: 0, count: records.count * sideBytes)
        var total = 0
        var highest = segments[segments.count - 1].highestRound
        var position = next
        for (index, record) in records.enumerated() {
            guard record.entry.count <= Self.entryBytesMax else {
                throw .io(path: folder, action: "journaling", detail: "an entry of \(record.entry.count) bytes")
            }
            side.withUnsafeMutableBytes { raw in
                let base = index * sideBytes
                raw.storeBytes(of: UInt32(record.entry.count).bigEndian, toByteOffset: base, as: UInt32.self)
                raw.storeBytes(of: position.bigEndian, toByteOffset: base + 4, as: UInt64.self)
                raw.storeBytes(of: record.round.bigEndian, toByteOffset: base + 12, as: UInt64.self)
                let header = UnsafeRawBufferPointer(rebasing: raw[base..<(base + Self.headerBytes)])
                let checksum = record.entry.withUnsafeBytes {
                    JournalChecksum.hash(header, $0, seed: Self.checksumSeed)
                }
                raw.storeBytes(of: checksum.bigEndian, toByteOffset: base + Self.headerBytes, as: UInt64.self)
            }
            total += sideBytes + record.entry.count
            highest = max(highest, record.round)
            position += 1
        }
        var first = 0
        while first < records.count {
            let last = min(first + Self.recordsPerWrite, records.count)
            let failure = side.withUnsafeBytes { side in
                Self.writeRecords(descriptor, records[first..<last], side: side, sideBytes: sideBytes)
            }
            if failure != 0 {
                throw .io(path: segments[segments.count - 1].path, action: "journaling", detail: String(cString: strerror(failure)))
            }
            first = last
        }
        next = position
        if syncEachAppend, fsync(descriptor) != 0 {
            throw .io(path: segments[segments.count - 1].path, action: "syncing the journal", detail: String(cString: strerror(errno)))
        }
        segments[segments.count - 1].bytes += total
        segments[segments.count - 1].highestRound = highest
    }

    /// Writes `records` (the header and checksum of the record at index i at `i · sideBytes` in `side`, its
    /// entry between them) to `descriptor` completely; returns 0, or the `errno` of the failed write.
    private static func writeRecords(
        _ descriptor: Int32, _ records: ArraySlice<ReplicaStore.JournalRecord>, side: UnsafeRawBufferPointer,
        sideBytes: Int
    ) -> Int32 {
        var pieces = [iovec]()
        pieces.reserveCapacity(records.count * 3)
        // One closure level per record keeps its entry's buffer valid until the writes are done.
        func gather(_ index: Int) -> Int32 {
            guard index < records.endIndex else { return writeAll(descriptor, &pieces) }
            return records[index].entry.withUnsafeBytes { entry in
                let base = index * sideBytes
                pieces.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: side.baseAddress! + base), iov_len: headerBytes))
                if entry.count > 0 {
                    pieces.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: entry.baseAddress!), iov_len: entry.count))
                }
                pieces.append(
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: side.baseAddress! + base + headerBytes), iov_len: sideBytes - headerBytes))
                return gather(index + 1)
            }
        }
        return gather(records.startIndex)
    }

    /// `writev` until every piece is written (a regular file may take fewer bytes than asked, and a signal
    /// may interrupt); returns 0 or the `errno` of a failure.
    private static func writeAll(_ descriptor: Int32, _ pieces: inout [iovec]) -> Int32 {
        var first = 0
        while first < pieces.count {
            let written = pieces[first...].withUnsafeBufferPointer { writev(descriptor, $0.baseAddress!, Int32($0.count)) }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            var remaining = written
            while first < pieces.count, remaining >= pieces[first].iov_len {
                remaining -= pieces[first].iov_len
                first += 1
            }
            if remaining > 0 {
                pieces[first].iov_base += remaining
                pieces[first].iov_len -= remaining
            }
        }
        return 0
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
