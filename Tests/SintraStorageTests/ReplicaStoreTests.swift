import Foundation
import GRDB
import Testing

@testable import SintraStorage

/// The replica store on real SQLite files in a temporary folder.
@Suite struct ReplicaStoreTests {
    static let owner = ReplicaStore.Owner(clusterIdentifier: Array(repeating: 7, count: 16), member: 2)

    /// A fresh folder per test, removed at the end.
    final class Folder {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("sintra-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        func path(_ name: String = "replica.sqlite") -> String { url.appendingPathComponent(name).path }
        deinit { try? FileManager.default.removeItem(at: url) }
    }

    static func entry(_ round: UInt64, bytes: Int = 100) -> ReplicaStore.LogEntry {
        ReplicaStore.LogEntry(round: round, batch: (0..<bytes).map { UInt8(truncatingIfNeeded: Int(round) &* 31 &+ $0) })
    }

    static func flipped(_ bytes: [UInt8], bit: Int) -> [UInt8] {
        var bytes = bytes
        bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        return bytes
    }

    static func expectError(_ expected: (StoreError) -> Bool, _ body: () throws(StoreError) -> Void) {
        do {
            try body()
            Issue.record("expected a StoreError")
        } catch {
            #expect(expected(error), "got \(error)")
        }
    }

    @Test func logSnapshotAndHorizonSurviveReopening() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        #expect(store.lastRound == 0 && store.sendHorizon == 0)
        try store.commit([Self.entry(1), Self.entry(2)], sendHorizon: 6)
        try store.commit([Self.entry(3)], sendHorizon: 7)
        try store.saveSnapshot(ReplicaStore.Snapshot(round: 3, state: [1, 2, 3]), keepRounds: 1)
        try store.commit([Self.entry(4)], sendHorizon: 5)  // a lower horizon never lowers it
        store.close()

        let reopened = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        let recovery = try reopened.recover()
        #expect(recovery.snapshot == ReplicaStore.Snapshot(round: 3, state: [1, 2, 3]))
        // Rounds 1 and 2 are at or below 3 - keepRounds: pruned with the snapshot.
        #expect(recovery.log == [Self.entry(3), Self.entry(4)])
        #expect(recovery.sendHorizon == 7)
        #expect(recovery.lastRound == 4)
        #expect(reopened.lastRound == 4)
        reopened.close()
    }

    @Test func roundsThatDoNotContinueTheLogAreRefused() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        try store.commit([Self.entry(1)], sendHorizon: 1)
        Self.expectError({ $0 == .outOfOrder(expected: 2, got: 3) }) { () throws(StoreError) in
            try store.commit([Self.entry(3)], sendHorizon: 9)
        }
        Self.expectError({ $0 == .outOfOrder(expected: 2, got: 1) }) { () throws(StoreError) in
            try store.commit([Self.entry(1)], sendHorizon: 9)
        }
        // Nothing of a refused commit was written, the horizon included.
        #expect(try store.recover() == ReplicaStore.Recovery(snapshot: nil, log: [Self.entry(1)], sendHorizon: 1))
        store.close()
    }

    @Test func aDatabaseOfAnotherMemberOrClusterIsRefused() throws {
        let folder = try Folder()
        try ReplicaStore.open(path: folder.path(), owner: Self.owner).close()
        let otherMember = ReplicaStore.Owner(clusterIdentifier: Self.owner.clusterIdentifier, member: 3)
        Self.expectError({ $0 == .foreignDatabase(path: folder.path(), expected: otherMember, found: Self.owner) }) {
            () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: otherMember)
        }
        let otherCluster = ReplicaStore.Owner(clusterIdentifier: Array(repeating: 8, count: 16), member: 2)
        Self.expectError({ if case .foreignDatabase = $0 { true } else { false } }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: otherCluster)
        }
        // The right owner still opens it.
        try ReplicaStore.open(path: folder.path(), owner: Self.owner).close()
    }

    @Test func aFlippedBitInARowIsFoundAtOpen() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        try store.commit((1...3).map { Self.entry($0) }, sendHorizon: 4)
        store.close()
        // Change one byte of round 2's batch behind the store's back, as a bad disk would: SQLite sees a
        // valid page, only the checksum can tell.
        let queue = try DatabaseQueue(path: folder.path())
        try queue.write { db in
            try db.execute(sql: "UPDATE delivered SET batch = ? WHERE round = 2", arguments: [Data(Self.flipped(Self.entry(2).batch, bit: 13))])
        }
        try queue.close()
        Self.expectError({ $0 == .corrupted(path: folder.path(), detail: "checksum mismatch in delivered round 2") }) {
            () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        }
    }

    @Test func aTruncatedFileIsRefused() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        try store.commit((1...40).map { Self.entry($0, bytes: 3000) }, sendHorizon: 44)
        store.close()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: folder.path())[.size] as? Int)
        #expect(size > 100_000)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder.path()))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        Self.expectError({ if case .corrupted = $0 { true } else { false } }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        }
    }

    @Test func overwrittenPagesAreRefused() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        try store.commit((1...40).map { Self.entry($0, bytes: 3000) }, sendHorizon: 44)
        store.close()
        // Zero a stretch in the middle of the file: b-tree pages lose their headers.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder.path()))
        try handle.seek(toOffset: 4096 * 3)
        handle.write(Data(repeating: 0xA5, count: 4096 * 4))
        try handle.close()
        Self.expectError({ if case .corrupted = $0 { true } else { false } }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        }
    }

    @Test func aFileThatIsNotADatabaseIsRefused() throws {
        let folder = try Folder()
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: folder.path()))
        Self.expectError({ if case .corrupted = $0 { true } else { false } }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        }
        // Another program's SQLite database is refused too, and left untouched.
        let queue = try DatabaseQueue(path: folder.path("other.sqlite"))
        try queue.write { db in try db.execute(sql: "CREATE TABLE accounts (id INTEGER PRIMARY KEY)") }
        try queue.close()
        Self.expectError({ $0 == .notAReplicaStore(path: folder.path("other.sqlite")) }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path("other.sqlite"), owner: Self.owner)
        }
    }

    @Test func aDatabaseFromANewerBuildIsRefused() throws {
        let folder = try Folder()
        try ReplicaStore.open(path: folder.path(), owner: Self.owner).close()
        let queue = try DatabaseQueue(path: folder.path())
        try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99')") }
        try queue.close()
        Self.expectError({ $0 == .newerSchema(path: folder.path(), known: ReplicaStore.schemaVersion) }) {
            () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: Self.owner)
        }
    }

    /// A crash in the middle of a transaction: the files as the crash leaves them (copied while a large
    /// transaction is open and has already spilled uncommitted pages into the WAL) open to exactly the
    /// committed state, and the store goes on from there.
    @Test func aCrashDuringATransactionLosesOnlyThatTransaction() throws {
        let folder = try Folder()
        let path = folder.path()
        let store = try ReplicaStore.open(path: path, owner: Self.owner)
        try store.commit((1...5).map { Self.entry($0) }, sendHorizon: 9)
        let walBefore = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0

        let crashed = folder.path("crashed.sqlite")
        let writer = try DatabaseQueue(path: path)
        try writer.inTransaction { db in
            // About 16 MiB, far over SQLite's default 2 MiB page cache: pages spill to the WAL uncommitted.
            for round in 6...(6 + 255) {
                try db.execute(
                    sql: "INSERT INTO delivered (round, batch, checksum) VALUES (?, ?, ?)",
                    arguments: [round, Data(repeating: 1, count: 64 << 10), Data(repeating: 0, count: 32)])
            }
            let walDuring = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
            #expect(walDuring > walBefore + (4 << 20), "the open transaction wrote uncommitted frames")
            try FileManager.default.copyItem(atPath: path, toPath: crashed)
            try FileManager.default.copyItem(atPath: path + "-wal", toPath: crashed + "-wal")
            return .rollback
        }
        try writer.close()
        store.close()

        let recovered = try ReplicaStore.open(path: crashed, owner: Self.owner)
        #expect(recovered.lastRound == 5)
        #expect(try recovered.recover() == ReplicaStore.Recovery(snapshot: nil, log: (1...5).map { Self.entry($0) }, sendHorizon: 9))
        try recovered.commit([Self.entry(6)], sendHorizon: 10)
        recovered.close()
        #expect(try ReplicaStore.open(path: crashed, owner: Self.owner).recover().lastRound == 6)
    }

    /// A crash while the WAL was being written: the last commit's frames are torn, so that commit is lost
    /// and the one before it stands.
    @Test func aTornWriteOfTheLastCommitLosesOnlyThatCommit() throws {
        let folder = try Folder()
        let path = folder.path()
        let store = try ReplicaStore.open(path: path, owner: Self.owner)
        try store.commit((1...5).map { Self.entry($0) }, sendHorizon: 9)
        try store.commit([Self.entry(6, bytes: 2000)], sendHorizon: 10)
        let crashed = folder.path("crashed.sqlite")
        try FileManager.default.copyItem(atPath: path, toPath: crashed)
        try FileManager.default.copyItem(atPath: path + "-wal", toPath: crashed + "-wal")
        store.close()
        let wal = try #require(try FileManager.default.attributesOfItem(atPath: crashed + "-wal")[.size] as? Int)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: crashed + "-wal"))
        try handle.truncate(atOffset: UInt64(wal - 100))
        try handle.close()

        let recovered = try ReplicaStore.open(path: crashed, owner: Self.owner)
        let recovery = try recovered.recover()
        #expect(recovery.lastRound == 5)
        #expect(recovery.sendHorizon == 9)
        recovered.close()
    }
}

/// Schema v2: checkpoint snapshots, certificates, state-transfer installs, reseeding.
@Suite struct ReplicaStoreCheckpointTests {
    typealias Folder = ReplicaStoreTests.Folder

    /// A file made by the v1 schema (before checkpoints) opens, migrates, and reads as before: its snapshot
    /// is format 1, it has no certificate, its rows' SHA-256 checksums verify, and new writes go on.
    @Test func aVersion1FileOpensAndMigrates() throws {
        let folder = try Folder()
        let queue = try DatabaseQueue(path: folder.path())
        try ReplicaStore.migrator.migrate(queue, upTo: "v1")
        let owner = ReplicaStoreTests.owner
        try queue.write { db in
            try db.execute(
                sql: "INSERT INTO header (id, cluster, member, schemaVersion) VALUES (1, ?, ?, 1)",
                arguments: [Data(owner.clusterIdentifier), owner.member])
            for round in 3...5 {
                let entry = ReplicaStoreTests.entry(UInt64(round))
                try db.execute(
                    sql: "INSERT INTO delivered (round, batch, checksum) VALUES (?, ?, ?)",
                    arguments: [
                        round, Data(entry.batch),
                        Data(ReplicaStore.legacyChecksum(kind: "delivered", round: entry.round, entry.batch)),
                    ])
            }
            try db.execute(
                sql: "INSERT INTO snapshot (round, state, checksum) VALUES (4, ?, ?)",
                arguments: [Data([9, 9]), Data(ReplicaStore.legacyChecksum(kind: "snapshot", round: 4, [9, 9]))])
        }
        try queue.close()
        let store = try ReplicaStore.open(path: folder.path(), owner: owner)
        let recovery = try store.recover()
        #expect(recovery.snapshot == ReplicaStore.Snapshot(round: 4, state: [9, 9], format: 1))
        #expect(recovery.certificate == nil && !recovery.reseeding)
        #expect(recovery.log.map(\.round) == [3, 4, 5])
        try store.commit([ReplicaStoreTests.entry(6)], sendHorizon: 7)
        try store.saveSnapshot(ReplicaStore.Snapshot(round: 6, state: [1], format: 2), keepRounds: 0)
        store.close()
        let reopened = try ReplicaStore.open(path: folder.path(), owner: owner)
        #expect(try reopened.recover().snapshot == ReplicaStore.Snapshot(round: 6, state: [1], format: 2))
        #expect(try reopened.recover().log.isEmpty)
        reopened.close()
    }

    /// Installing a checkpoint replaces snapshot, log and certificate in one step; the reseeding mark is
    /// persisted until then; a flipped bit in the certificate or a changed snapshot format is found at open.
    @Test func installingACheckpointReplacesTheLog() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: ReplicaStoreTests.owner)
        try store.markReseeding()
        try store.commit((1...3).map { ReplicaStoreTests.entry($0) }, sendHorizon: 4)
        store.close()
        let reopened = try ReplicaStore.open(path: folder.path(), owner: ReplicaStoreTests.owner)
        #expect(reopened.reseeding)
        ReplicaStoreTests.expectError({ $0 == .outOfOrder(expected: 4, got: 2) }) { () throws(StoreError) in
            try reopened.installCheckpoint(
                ReplicaStore.Snapshot(round: 2, state: [1], format: 2),
                certificate: ReplicaStore.Certificate(round: 2, bytes: [2]), sendHorizon: 0)
        }
        try reopened.installCheckpoint(
            ReplicaStore.Snapshot(round: 64, state: [5, 6], format: 2),
            certificate: ReplicaStore.Certificate(round: 64, bytes: [7, 8]), sendHorizon: 65)
        #expect(reopened.lastRound == 64 && reopened.sendHorizon == 65 && !reopened.reseeding)
        try reopened.commit([ReplicaStoreTests.entry(65)], sendHorizon: 0)
        let recovery = try reopened.recover()
        #expect(recovery.snapshot == ReplicaStore.Snapshot(round: 64, state: [5, 6], format: 2))
        #expect(recovery.certificate == ReplicaStore.Certificate(round: 64, bytes: [7, 8]))
        #expect(recovery.log.map(\.round) == [65])
        #expect(!recovery.reseeding)
        reopened.close()

        let queue = try DatabaseQueue(path: folder.path())
        try queue.write { db in try db.execute(sql: "UPDATE certificate SET certificate = x'0708ff'") }
        try queue.close()
        ReplicaStoreTests.expectError({ if case .corrupted = $0 { true } else { false } }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: ReplicaStoreTests.owner)
        }
        let again = try DatabaseQueue(path: folder.path())
        try again.write { db in
            try db.execute(
                sql: "UPDATE certificate SET certificate = ?, checksum = ?",
                arguments: [Data([7, 8]), Data(ReplicaStore.checksum(kind: "certificate", round: 64, [7, 8]))])
            try db.execute(sql: "UPDATE snapshot SET format = 1")
        }
        try again.close()
        ReplicaStoreTests.expectError({ if case .corrupted = $0 { true } else { false } }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: ReplicaStoreTests.owner)
        }
    }
}

/// Schema v3: the protocol journal (durability stage 2), the randomness seed, and what a reboot does.
@Suite struct ReplicaStoreJournalTests {
    typealias Folder = ReplicaStoreTests.Folder
    static let owner = ReplicaStoreTests.owner

    static func record(_ round: UInt64, _ tag: UInt8) -> ReplicaStore.JournalRecord {
        ReplicaStore.JournalRecord(round: round, entry: [tag, UInt8(truncatingIfNeeded: round), 1, 2, 3])
    }

    /// Entries come back in the order written, across segments; a commit with delivered rounds deletes the
    /// segments whose entries are all of rounds below `journalKeptFrom`; the seed is made once and kept.
    @Test func theJournalKeepsItsOrderAndIsPrunedWithDeliveries() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        let seed = store.randomSeed
        #expect(seed.count == 32 && Set(seed).count > 4)
        try store.commit([], sendHorizon: 0, journal: [Self.record(2, 1), Self.record(1, 2), Self.record(3, 3)])
        try store.commit([], sendHorizon: 0, journal: [Self.record(2, 4)])
        #expect(try store.recover().journal == [Self.record(2, 1), Self.record(1, 2), Self.record(3, 3), Self.record(2, 4)])
        // The last segment is never deleted: a commit with a delivered round keeps it.
        try store.commit([ReplicaStoreTests.entry(1)], sendHorizon: 1, journal: [Self.record(4, 5)], journalKeptFrom: 9)
        #expect(try store.recover().journal.count == 5)
        // Fill a segment with rounds 10..., so that a later segment starts; then prune below 20.
        let big = (0..<5).map { ReplicaStore.JournalRecord(round: 10 + UInt64($0), entry: [UInt8](repeating: 7, count: 1 << 20)) }
        try store.commit([], sendHorizon: 0, journal: big)
        try store.commit([], sendHorizon: 0, journal: [Self.record(30, 6)])
        let before = store.journalBytes
        try store.commit([ReplicaStoreTests.entry(2)], sendHorizon: 2, journal: [], journalKeptFrom: 20)
        #expect(store.journalBytes < before - (4 << 20))
        store.close()
        let reopened = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        #expect(reopened.journalTrusted)
        #expect(reopened.randomSeed == seed)
        let recovery = try reopened.recover()
        #expect(recovery.journal == [Self.record(30, 6)])
        #expect(recovery.silentThrough == 0)
        // Positions go on after the pruned segments.
        try reopened.commit([], sendHorizon: 0, journal: [Self.record(31, 7)])
        #expect(try reopened.recover().journal == [Self.record(30, 6), Self.record(31, 7)])
        reopened.close()
    }

    /// Journal-only commits are not fsynced, so after a reboot (another boot identity) the journal may miss
    /// its last commits: it is dropped, and the replica stays silent up to its send horizon (fsynced with
    /// every commit that raised it) instead, in this life and the next.
    @Test func aJournalFromBeforeARebootIsDroppedForSilence() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        try store.commit([ReplicaStoreTests.entry(1)], sendHorizon: 3, journal: [Self.record(2, 1)])
        try store.commit([], sendHorizon: 0, journal: [Self.record(3, 2)])
        store.close()
        let rebooted = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-b")
        #expect(!rebooted.journalTrusted)
        var recovery = try rebooted.recover()
        #expect(recovery.journal.isEmpty && recovery.silentThrough == 3)
        // New entries of this boot are trusted at the next restart in it, and the silence stays.
        try rebooted.commit([], sendHorizon: 0, journal: [Self.record(4, 3)])
        rebooted.close()
        let again = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-b")
        #expect(again.journalTrusted)
        recovery = try again.recover()
        #expect(recovery.journal == [Self.record(4, 3)] && recovery.silentThrough == 3)
        // Where the boot is unknown every commit is fsynced, so that journal is always trusted.
        try again.resetJournal(silentThrough: 0)
        again.close()
        let unknown = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: nil)
        try unknown.commit([], sendHorizon: 0, journal: [Self.record(5, 4)])
        unknown.close()
        let later = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-c")
        let laterJournal = try later.recover().journal
        #expect(later.journalTrusted && laterJournal == [Self.record(5, 4)])
        later.close()
    }

    /// The one segment file of a store's journal.
    static func segment(_ folder: Folder) throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path() + ".journal")
        #expect(names.count == 1)
        return folder.path() + ".journal/" + names[0]
    }

    /// A torn last entry (a crash in the middle of an append) is cut off at open: nothing that followed
    /// from it was sent. The entries before it stay, and new ones follow them.
    @Test func aTornLastEntryIsCutOff() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        try store.commit([], sendHorizon: 0, journal: [Self.record(2, 1), Self.record(2, 2)])
        store.close()
        let path = try Self.segment(folder)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: path))
        let reopened = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        #expect(try reopened.recover().journal == [Self.record(2, 1)])
        try reopened.commit([], sendHorizon: 0, journal: [Self.record(3, 3)])
        #expect(try reopened.recover().journal == [Self.record(2, 1), Self.record(3, 3)])
        reopened.close()
    }

    /// A flipped bit in an entry that is not the last one is damage, found at open.
    @Test func aDamagedJournalEntryIsFoundAtOpen() throws {
        let folder = try Folder()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        try store.commit([], sendHorizon: 0, journal: [Self.record(2, 1), Self.record(2, 2)])
        try store.commit([], sendHorizon: 0, journal: [Self.record(2, 3)])
        store.close()
        let path = try Self.segment(folder)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[22] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        ReplicaStoreTests.expectError({
            if case .corrupted(_, let detail) = $0 { return detail.contains("journal entry 1") }
            return false
        }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        }
    }

    /// A file from before the journal (schema v2) may have sent messages it has no journal of: migrated, it
    /// stays silent up to its send horizon once.
    @Test func aVersion2FileIsSilentUpToItsHorizon() throws {
        let folder = try Folder()
        let queue = try DatabaseQueue(path: folder.path())
        try ReplicaStore.migrator.migrate(queue, upTo: "v2")
        try queue.write { db in
            try db.execute(
                sql: "INSERT INTO header (id, cluster, member, schemaVersion) VALUES (1, ?, ?, 2)",
                arguments: [Data(Self.owner.clusterIdentifier), Self.owner.member])
            try db.execute(sql: "UPDATE progress SET sendHorizon = 7 WHERE id = 1")
        }
        try queue.close()
        let store = try ReplicaStore.open(path: folder.path(), owner: Self.owner, boot: "boot-a")
        #expect(try store.recover().silentThrough == 7)
        store.close()
    }
}

/// The journal's record checksum (format 2, XXH64) and reading segments of the older format 1 (SHA-256).
@Suite struct JournalChecksumTests {
    /// Known answers of the reference implementation (libxxhash 0.8.1, `XXH64(data, length, seed)`), covering
    /// the short path, the 4- and 1-byte tails and the four 32-byte lanes.
    @Test func xxh64MatchesTheReference() {
        func hash(_ bytes: [UInt8], _ seed: UInt64) -> UInt64 {
            bytes.withUnsafeBytes { JournalChecksum.hash($0, seed: seed) }
        }
        #expect(hash([], 0) == 0xef46_db37_51d8_e999)
        #expect(hash(Array("a".utf8), 0) == 0xd24e_c4f1_a98c_6e5b)
        #expect(hash(Array("abc".utf8), 0) == 0x44bc_2cf5_ad77_0999)
        #expect(hash((0..<37).map { UInt8($0) }, 0) == 0xd93f_a2df_ee5c_24c9)
        #expect(hash((0..<100).map { UInt8($0) }, JournalFile.checksumSeed) == 0x6ef4_7e0d_31f9_02d0)
        #expect(hash(Array("sintra journal record".utf8), 7) == 0xa0c6_2717_92bf_81b9)
    }

    /// Every single-bit flip of a record (header or entry) changes its checksum.
    @Test func everyBitFlipOfARecordChangesItsChecksum() {
        let record = (0..<77).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let original = record.withUnsafeBytes { JournalFile.checksum(record: $0) }
        for index in record.indices {
            for bit in 0..<8 {
                var flipped = record
                flipped[index] ^= 1 << bit
                #expect(flipped.withUnsafeBytes { JournalFile.checksum(record: $0) } != original)
            }
        }
    }

    /// The checksum of a header and an entry that lie apart equals the checksum of the two joined, wherever
    /// the boundary falls (inside the first stripe, on a stripe's edge, past it) and whatever the lengths.
    @Test func xxh64OfTwoPartsIsThatOfTheirConcatenation() {
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 73 &+ 11) }
        for total in [0, 1, 19, 20, 31, 32, 33, 51, 52, 63, 64, 65, 100, 131, 300] {
            let joined = bytes.prefix(total).withUnsafeBytes { JournalChecksum.hash($0, seed: JournalFile.checksumSeed) }
            for split in 0...total {
                let parts = bytes.prefix(split).withUnsafeBytes { head in
                    bytes[split..<total].withUnsafeBytes { JournalChecksum.hash(head, $0, seed: JournalFile.checksumSeed) }
                }
                #expect(parts == joined, "length \(total), split at \(split)")
            }
        }
    }

    /// `append` writes each record from where its entry lies (`writev`, `recordsPerWrite` records a write):
    /// the segment holds exactly the bytes of the records laid end to end (header, entry, XXH64 over both),
    /// for empty and large entries and more records than one write takes, and they read back.
    @Test func appendsWriteTheRecordsEndToEnd() throws {
        let folder = try ReplicaStoreTests.Folder()
        let path = folder.path("journal")
        let records = (0..<(2 * JournalFile.recordsPerWrite + 7)).map { index in
            ReplicaStore.JournalRecord(
                round: UInt64(index / 3 + 1),
                entry: (0..<[0, 1, 12, 33, 200, 5_000][index % 6]).map { UInt8(truncatingIfNeeded: $0 &+ index) })
        }
        let (journal, empty) = try JournalFile.open(folder: path, syncEachAppend: false)
        #expect(empty.isEmpty)
        try journal.append(Array(records[0..<3]))
        try journal.append(Array(records[3...]))
        var expected = [UInt8]()
        for (index, record) in records.enumerated() {
            let start = expected.count
            withUnsafeBytes(of: UInt32(record.entry.count).bigEndian) { expected += $0 }
            withUnsafeBytes(of: UInt64(index + 1).bigEndian) { expected += $0 }
            withUnsafeBytes(of: record.round.bigEndian) { expected += $0 }
            expected += record.entry
            expected += expected.withUnsafeBytes { JournalFile.checksum(record: UnsafeRawBufferPointer(rebasing: $0[start...])) }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
        #expect(names.count == 1)
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + "/" + names[0])))
        #expect(written == expected ? true : false, "the segment holds the records end to end")
        #expect(journal.byteCount == expected.count)
        #expect(try JournalFile.open(folder: path, syncEachAppend: false).1 == records ? true : false, "they read back")
    }

    /// A journal written before format 2 (a `.log` segment with SHA-256 checksums) is still read; new records
    /// go to a new format 2 segment after it, and damage in the old one is still found.
    @Test func aFormat1SegmentIsReadAndFollowedByAFormat2One() throws {
        let folder = try ReplicaStoreTests.Folder()
        let journal = folder.path() + ".journal"
        try FileManager.default.createDirectory(atPath: journal, withIntermediateDirectories: true)
        func format1(_ position: UInt64, _ record: ReplicaStore.JournalRecord) -> [UInt8] {
            var bytes = [UInt8]()
            withUnsafeBytes(of: UInt32(record.entry.count).bigEndian) { bytes += $0 }
            withUnsafeBytes(of: position.bigEndian) { bytes += $0 }
            withUnsafeBytes(of: record.round.bigEndian) { bytes += $0 }
            bytes += record.entry
            bytes += JournalFile.checksum(seq: position, round: record.round, record.entry)
            return bytes
        }
        let old = [ReplicaStoreJournalTests.record(2, 1), ReplicaStoreJournalTests.record(3, 2)]
        let oldBytes = format1(1, old[0]) + format1(2, old[1])
        let oldPath = journal + "/segment-00000000000000000001.log"
        try Data(oldBytes).write(to: URL(fileURLWithPath: oldPath))
        let store = try ReplicaStore.open(path: folder.path(), owner: ReplicaStoreJournalTests.owner, boot: "boot-a")
        #expect(try store.recover().journal == old)
        try store.commit([], sendHorizon: 0, journal: [ReplicaStoreJournalTests.record(4, 3)])
        #expect(try store.recover().journal == old + [ReplicaStoreJournalTests.record(4, 3)])
        store.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: journal).sorted()
        #expect(names == ["segment-00000000000000000001.log", "segment-00000000000000000003.log2"])
        // A flipped bit in the old segment's first entry is damage.
        var damaged = oldBytes
        damaged[22] ^= 0x10
        try Data(damaged).write(to: URL(fileURLWithPath: oldPath))
        ReplicaStoreTests.expectError({
            if case .corrupted(_, let detail) = $0 { return detail.contains("journal entry 1") }
            return false
        }) { () throws(StoreError) in
            _ = try ReplicaStore.open(path: folder.path(), owner: ReplicaStoreJournalTests.owner, boot: "boot-a")
        }
    }

    /// Row checksums: XXH64 (8 bytes) written now, SHA-256 (32) of older rows still verified; each binds the
    /// content, the kind and the round, and a checksum of any other length matches nothing.
    @Test func rowChecksumsOfBothFormatsBindContentKindAndRound() {
        let content: [UInt8] = [1, 2, 3, 4, 5]
        for stored in [
            ReplicaStore.checksum(kind: "delivered", round: 3, content),
            ReplicaStore.legacyChecksum(kind: "delivered", round: 3, content),
        ] {
            #expect(ReplicaStore.matches(stored, kind: "delivered", round: 3, content))
            #expect(!ReplicaStore.matches(stored, kind: "delivered", round: 4, content))
            #expect(!ReplicaStore.matches(stored, kind: "snapshot", round: 3, content))
            #expect(!ReplicaStore.matches(stored, kind: "delivered", round: 3, [1, 2, 3, 4, 6]))
            #expect(!ReplicaStore.matches(Array(stored.dropLast()), kind: "delivered", round: 3, content))
        }
        #expect(ReplicaStore.checksum(kind: "delivered", round: 3, content).count == 8)
    }
}
