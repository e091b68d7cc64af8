import Crypto
import Foundation
import GRDB

/// A replica's durable state in one SQLite database (docs/DURABILITY.md): the delivered log (round → the
/// batch atomic broadcast delivered in it), the latest snapshot of the application, and the send horizon
/// (the highest round for which this replica may have sent a protocol message).
///
/// Durability rule: `commit` returns only after the transaction is on disk (WAL mode, `synchronous=FULL`,
/// so the WAL is fsynced at every commit). The replica commits each delivered batch before it executes it,
/// replies, or sends anything that followed from it, so no acknowledged request can be lost by a crash,
/// and after a restart the log says how far the replica got.
///
/// Every row carries a checksum over its identity (kind, round) and content: SQLite's `quick_check` finds
/// broken pages and b-trees, not a flipped bit inside a blob, and a replica must not run on state it cannot
/// trust. Rows written now carry XXH64 (8 bytes, `checksum`), rows written before a SHA-256 (32 bytes,
/// `legacyChecksum`); the stored length says which, and both are verified. A header row binds the file to one cluster and member.
///
/// Not thread-safe by design: one `ReplicaNode` actor owns it and calls it serially. `@unchecked Sendable`
/// because it moves into that actor once; GRDB's `DatabaseQueue` serializes access anyway.
public final class ReplicaStore: @unchecked Sendable {
    /// Who a database belongs to. A replica refuses a file of another cluster or member: running on it
    /// would replay someone else's history as its own.
    public struct Owner: Sendable, Equatable, CustomStringConvertible {
        public let clusterIdentifier: [UInt8]
        public let member: Int

        public init(clusterIdentifier: [UInt8], member: Int) {
            self.clusterIdentifier = clusterIdentifier
            self.member = member
        }

        public var description: String {
            "member \(member) of cluster \(clusterIdentifier.map { String(format: "%02x", $0) }.joined())"
        }
    }

    /// One delivered round.
    public struct LogEntry: Sendable, Equatable {
        public let round: UInt64
        public let batch: [UInt8]

        public init(round: UInt64, batch: [UInt8]) {
            self.round = round
            self.batch = batch
        }
    }

    /// The application state after `round` was executed.
    ///
    /// `format` says how `state` is encoded, which the store does not interpret: 1 is stage 1's execution
    /// chain ‖ executor snapshot (files written before checkpoints), 2 a checkpoint state (chain, executor
    /// snapshot and the recent delivered digests, the bytes a checkpoint certificate covers).
    public struct Snapshot: Sendable, Equatable {
        public let round: UInt64
        public let state: [UInt8]
        public let format: Int

        public init(round: UInt64, state: [UInt8], format: Int = 1) {
            self.round = round
            self.state = state
            self.format = format
        }
    }

    /// A stable checkpoint certificate (encoded by the caller) for the checkpoint of `round`.
    public struct Certificate: Sendable, Equatable {
        public let round: UInt64
        public let bytes: [UInt8]

        public init(round: UInt64, bytes: [UInt8]) {
            self.round = round
            self.bytes = bytes
        }
    }

    /// One journal entry of the protocol instance (stage 2, docs/DURABILITY.md): the round it concerns and
    /// its encoding, which the store does not interpret.
    public struct JournalRecord: Sendable, Equatable {
        public let round: UInt64
        public let entry: [UInt8]

        public init(round: UInt64, entry: [UInt8]) {
            self.round = round
            self.entry = entry
        }
    }

    /// What a restarting replica needs: the latest snapshot, every logged round after it (and the rounds
    /// kept before it for deduplication), in increasing order, and the send horizon.
    public struct Recovery: Sendable, Equatable {
        public let snapshot: Snapshot?
        public let log: [LogEntry]
        public let sendHorizon: UInt64
        /// The protocol journal in the order it was written (empty if it could not be trusted, see
        /// `ReplicaStore.journalTrusted`).
        public var journal: [JournalRecord] = []
        /// Rounds up to this one are silent after the restart (0: none): set when a journal could not be
        /// trusted (the send horizon then), or when a checkpoint was installed.
        public var silentThrough: UInt64 = 0
        /// The latest stable checkpoint certificate saved, if any.
        public var certificate: Certificate? = nil
        /// The store was re-created by `--reseed` and has not installed a checkpoint from peers yet: the
        /// replica forgot what it sent before, so it must stay silent until it has.
        public var reseeding = false

        /// The last delivered round (0 if none).
        public var lastRound: UInt64 { log.last?.round ?? snapshot?.round ?? 0 }
    }

    /// The schema version this build writes. Migrations are registered in `migrator`; a file migrated by
    /// a newer build is refused (`newerSchema`), never downgraded.
    public static let schemaVersion = 3

    public let path: String
    public let owner: Owner
    private let queue: DatabaseQueue
    /// The send horizon on disk, cached so that a commit that does not raise it skips the write.
    public private(set) var sendHorizon: UInt64
    public private(set) var lastRound: UInt64
    /// See `Recovery.reseeding`.
    public private(set) var reseeding: Bool
    /// The replica's 32-byte secret seed for its protocol randomness (`ProtocolRandom.keyed`), made once
    /// when the store was created: a replaying replica must draw the nonces it drew before.
    public let randomSeed: [UInt8]
    /// Whether the journal found at open could be trusted to be complete: it was written in this boot of
    /// the machine (a process crash loses no written page), or with every commit fsynced. After a reboot
    /// (power loss) the journal's last commits, made without fsync, may be missing: it is dropped and the
    /// replica stays silent up to its send horizon instead (stage 1), which is always fsynced.
    public private(set) var journalTrusted = true
    /// This boot's identity (Linux: /proc/sys/kernel/random/boot_id); nil where unknown, and then every
    /// journal commit is fsynced.
    private let boot: String?
    /// The protocol journal's segment files (`JournalFile`), in the folder `path + ".journal"`.
    private let journal: JournalFile

    /// Opens (creating if absent) the database at `path` for `owner`.
    ///
    /// Runs `PRAGMA quick_check` and reads the header and every checksum before returning, so that a
    /// truncated or corrupted file, a file of another replica, or one from a newer build is a typed
    /// `StoreError` at start instead of a crash or silent divergence later.
    public static func open(path: String, owner: Owner) throws(StoreError) -> ReplicaStore {
        try open(path: path, owner: owner, boot: currentBoot())
    }

    /// `open` with the boot identity given (tests of a reboot).
    static func open(path: String, owner: Owner, boot: String?) throws(StoreError) -> ReplicaStore {
        let existed = FileManager.default.fileExists(atPath: path)
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.label = "sintra.store"
        // FULL: in WAL mode the WAL is fsynced at every commit, so a committed batch survives power loss,
        // not only a process crash (NORMAL would lose the last commits on power loss).
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw classify(error, path: path, while: "opening")
        }
        do {
            let store = try ReplicaStore(path: path, owner: owner, queue: queue, existed: existed, boot: boot)
            return store
        } catch let error as StoreError {
            try? queue.close()
            throw error
        } catch {
            try? queue.close()
            throw classify(error, path: path, while: "checking")
        }
    }

    private init(path: String, owner: Owner, queue: DatabaseQueue, existed: Bool, boot: String?) throws {
        self.path = path
        self.owner = owner
        self.queue = queue
        // quick_check reads every page and b-tree (O(size), without the index cross-checks of
        // integrity_check): a truncated or overwritten file fails here.
        try queue.read { db in
            let problems = try String.fetchAll(db, sql: "PRAGMA quick_check")
            guard problems == ["ok"] else {
                throw StoreError.corrupted(path: path, detail: problems.prefix(3).joined(separator: "; "))
            }
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
            if existed, !tables.isEmpty, !tables.contains("grdb_migrations") {
                throw StoreError.notAReplicaStore(path: path)
            }
            if try ReplicaStore.migrator.hasBeenSuperseded(db) {
                throw StoreError.newerSchema(path: path, known: ReplicaStore.schemaVersion)
            }
        }
        try ReplicaStore.migrator.migrate(queue)
        let (horizon, last, reseeding) = try queue.write { db throws -> (UInt64, UInt64, Bool) in
            try ReplicaStore.checkHeader(db, owner: owner, path: path)
            try ReplicaStore.verifyChecksums(db, path: path)
            let horizon = try UInt64.fetchOne(db, sql: "SELECT sendHorizon FROM progress WHERE id = 1") ?? 0
            let reseeding = try Bool.fetchOne(db, sql: "SELECT reseeding FROM progress WHERE id = 1") ?? false
            let last = try UInt64.fetchOne(db, sql: "SELECT MAX(round) FROM delivered")
            let snapshotRound = try UInt64.fetchOne(db, sql: "SELECT MAX(round) FROM snapshot")
            return (horizon, max(last ?? 0, snapshotRound ?? 0), reseeding)
        }
        sendHorizon = horizon
        lastRound = last
        self.reseeding = reseeding
        self.boot = boot
        // The journal is trusted if it was written in this boot (or with every append fsynced: ""). If not,
        // the silence goes to disk first and the journal is deleted unread (it may be garbled), so a crash
        // in between leaves both, which is safe.
        let folder = path + ".journal"
        let written = try queue.read { db in try String.fetchOne(db, sql: "SELECT boot FROM progress WHERE id = 1") } ?? ""
        let trusted = written.isEmpty || written == boot || !JournalFile.hasEntries(folder: folder)
        if !trusted {
            try queue.write { db in
                try db.execute(
                    sql: "UPDATE progress SET silentThrough = MAX(silentThrough, sendHorizon) WHERE id = 1")
            }
            JournalFile.discard(folder: folder)
        }
        journalTrusted = trusted
        self.journal = try JournalFile.open(folder: folder, syncEachAppend: boot == nil).0
        randomSeed = try queue.write { db throws -> [UInt8] in
            var seed = (try Data.fetchOne(db, sql: "SELECT seed FROM progress WHERE id = 1")).map(Array.init) ?? []
            if seed.isEmpty {
                var generator = SystemRandomNumberGenerator()
                seed = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
                try db.execute(sql: "UPDATE progress SET seed = ? WHERE id = 1", arguments: [Data(seed)])
            } else if seed.count != 32 {
                throw StoreError.corrupted(path: path, detail: "the random seed is \(seed.count) bytes")
            }
            try db.execute(sql: "UPDATE progress SET boot = ? WHERE id = 1", arguments: [boot ?? ""])
            return seed
        }
    }

    /// The identity of this boot of the machine, or nil where there is none to read.
    static func currentBoot() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) else {
            return nil
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// Closes the database (the WAL is checkpointed into the main file).
    public func close() {
        try? queue.close()
    }

    /// Bytes of the protocol journal on disk.
    public var journalBytes: Int { journal.byteCount }

    // MARK: Writing

    /// Appends `journal` to the protocol journal, then appends delivered rounds and raises the send
    /// horizon to at least `sendHorizon` in one transaction (group commit: a call may carry several rounds),
    /// then deletes the journal segments of rounds below `journalKeptFrom` if rounds were delivered.
    ///
    /// Delivered rounds and a higher horizon are on disk when this returns (fsynced): a reply may follow.
    /// Journal entries are written without fsync where the boot is known (`journalTrusted` says why that is
    /// enough), so that journaling every protocol input costs a write, not a disk flush. The journal goes
    /// first: a crash between the two leaves a journal of rounds the log does not have yet, which a restart
    /// replays.
    ///
    /// Rounds must continue the log without gaps or repeats: anything else is a bug in the caller and is
    /// refused (`outOfOrder`) before anything is written.
    public func commit(
        _ entries: [LogEntry], sendHorizon: UInt64, journal: [JournalRecord] = [], journalKeptFrom: UInt64 = 0
    ) throws(StoreError) {
        var expected = lastRound + 1
        for entry in entries {
            guard entry.round == expected else {
                throw StoreError.outOfOrder(expected: expected, got: entry.round)
            }
            expected += 1
        }
        let horizon = max(self.sendHorizon, sendHorizon)
        try self.journal.append(journal)
        guard !entries.isEmpty || horizon > self.sendHorizon else { return }
        do {
            try queue.write { db in
                for entry in entries {
                    try ReplicaStore.withBlob(entry.batch) { batch in
                        try db.execute(
                            sql: "INSERT INTO delivered (round, batch, checksum) VALUES (?, ?, ?)",
                            arguments: [
                                Int64(entry.round), batch,
                                Data(ReplicaStore.checksum(kind: "delivered", round: entry.round, entry.batch)),
                            ])
                    }
                }
                if horizon > self.sendHorizon {
                    try db.execute(sql: "UPDATE progress SET sendHorizon = ? WHERE id = 1", arguments: [Int64(horizon)])
                }
            }
        } catch {
            throw ReplicaStore.classify(error, path: path, while: "committing")
        }
        lastRound = expected - 1
        self.sendHorizon = horizon
        if !entries.isEmpty, journalKeptFrom > 0 { self.journal.prune(keptFrom: journalKeptFrom) }
    }

    /// Drops the journal and makes rounds up to `silentThrough` silent after a restart: the node replaced
    /// its protocol instance (a checkpoint installed, a reseeded replica rejoining), and the old instance's
    /// journal does not describe the new one.
    public func resetJournal(silentThrough: UInt64) throws(StoreError) {
        do {
            try queue.write { db in
                try db.execute(
                    sql: "UPDATE progress SET silentThrough = MAX(silentThrough, ?) WHERE id = 1",
                    arguments: [Int64(silentThrough)])
            }
        } catch {
            throw ReplicaStore.classify(error, path: path, while: "resetting the journal")
        }
        journal.removeAll()
    }

    /// Replaces the snapshot with `snapshot` and deletes the log rounds at or below
    /// `snapshot.round - keepRounds` (they are in the snapshot; the last `keepRounds` stay for the
    /// protocol's deduplication memory), in one transaction.
    public func saveSnapshot(_ snapshot: Snapshot, keepRounds: UInt64) throws(StoreError) {
        guard snapshot.round <= lastRound else {
            throw StoreError.outOfOrder(expected: lastRound, got: snapshot.round)
        }
        do {
            try queue.write { db in
                try ReplicaStore.replaceSnapshot(db, snapshot)
                if snapshot.round > keepRounds {
                    try db.execute(
                        sql: "DELETE FROM delivered WHERE round <= ?", arguments: [Int64(snapshot.round - keepRounds)])
                }
            }
        } catch {
            throw ReplicaStore.classify(error, path: path, while: "saving a snapshot")
        }
    }

    /// Saves `certificate` as the latest stable checkpoint certificate (replacing the previous one).
    public func saveCertificate(_ certificate: Certificate) throws(StoreError) {
        do {
            try queue.write { db in try ReplicaStore.replaceCertificate(db, certificate) }
        } catch {
            throw ReplicaStore.classify(error, path: path, while: "saving a checkpoint certificate")
        }
    }

    /// Marks a store just re-created by `--reseed` (`Recovery.reseeding`) until `installCheckpoint`.
    public func markReseeding() throws(StoreError) {
        do {
            try queue.write { db in try db.execute(sql: "UPDATE progress SET reseeding = 1 WHERE id = 1") }
        } catch {
            throw ReplicaStore.classify(error, path: path, while: "marking the store as reseeding")
        }
        reseeding = true
    }

    /// Installs a checkpoint fetched from peers (state transfer): replaces the snapshot and the certificate,
    /// deletes the whole log (every logged round is at or below the checkpoint), raises the send horizon to
    /// at least `sendHorizon` and clears `reseeding`, in one transaction. The log continues at
    /// `snapshot.round + 1`.
    public func installCheckpoint(_ snapshot: Snapshot, certificate: Certificate, sendHorizon: UInt64) throws(StoreError) {
        guard snapshot.round > lastRound else {
            throw StoreError.outOfOrder(expected: lastRound + 1, got: snapshot.round)
        }
        let horizon = max(self.sendHorizon, sendHorizon)
        do {
            try queue.write { db in
                try ReplicaStore.replaceSnapshot(db, snapshot)
                try db.execute(sql: "DELETE FROM delivered")
                try ReplicaStore.replaceCertificate(db, certificate)
                try db.execute(
                    sql: "UPDATE progress SET sendHorizon = ?, reseeding = 0, silentThrough = MAX(silentThrough, ?) WHERE id = 1",
                    arguments: [Int64(horizon), Int64(horizon)])
            }
        } catch {
            throw ReplicaStore.classify(error, path: path, while: "installing a checkpoint")
        }
        lastRound = snapshot.round
        self.sendHorizon = horizon
        reseeding = false
        // The instance after the checkpoint is a new one, silent up to the horizon (now on disk).
        journal.removeAll()
    }

    private static func replaceSnapshot(_ db: Database, _ snapshot: Snapshot) throws {
        try db.execute(sql: "DELETE FROM snapshot")
        try withBlob(snapshot.state) { state in
            try db.execute(
                sql: "INSERT INTO snapshot (round, state, checksum, format) VALUES (?, ?, ?, ?)",
                arguments: [
                    Int64(snapshot.round), state,
                    Data(ReplicaStore.checksum(kind: snapshotKind(format: snapshot.format), round: snapshot.round, snapshot.state)),
                    snapshot.format,
                ])
        }
    }

    /// Runs `body` with `bytes` as a `Data` that shares their storage instead of copying them. Safe because
    /// SQLite copies a bound blob (GRDB binds `Data` with `SQLITE_TRANSIENT`) and the statement runs inside
    /// `body`. Why: a snapshot is the whole application state, and copying it into a `Data` first was 1 %
    /// of a replica's samples at 32 clients × 8 KB.
    private static func withBlob<T>(_ bytes: [UInt8], _ body: (Data) throws -> T) rethrows -> T {
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, !raw.isEmpty else { return try body(Data()) }
            return try body(Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: raw.count, deallocator: .none))
        }
    }

    private static func replaceCertificate(_ db: Database, _ certificate: Certificate) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO certificate (id, round, certificate, checksum) VALUES (1, ?, ?, ?)",
            arguments: [
                Int64(certificate.round), Data(certificate.bytes),
                Data(ReplicaStore.checksum(kind: "certificate", round: certificate.round, certificate.bytes)),
            ])
    }

    /// The checksum kind of a snapshot row: the format is inside, so a row whose format was changed fails.
    static func snapshotKind(format: Int) -> String { format == 1 ? "snapshot" : "snapshot/\(format)" }

    // MARK: Reading

    /// The snapshot, the log, the send horizon and the protocol journal, each row's and entry's checksum
    /// verified.
    public func recover() throws(StoreError) -> Recovery { try recoverWithJournal() }

    private func recoverTables() throws(StoreError) -> Recovery {
        do {
            return try queue.read { db in
                var snapshot: Snapshot?
                if let row = try Row.fetchOne(
                    db, sql: "SELECT round, state, checksum, format FROM snapshot ORDER BY round DESC LIMIT 1")
                {
                    let round = try ReplicaStore.round(row, path: path)
                    let format: Int = row["format"] ?? 1
                    let state = try ReplicaStore.verified(
                        row, kind: ReplicaStore.snapshotKind(format: format), round: round, column: "state", path: path)
                    snapshot = Snapshot(round: round, state: state, format: format)
                }
                var certificate: Certificate?
                if let row = try Row.fetchOne(db, sql: "SELECT round, certificate, checksum FROM certificate WHERE id = 1") {
                    let round = try ReplicaStore.round(row, path: path)
                    certificate = Certificate(
                        round: round,
                        bytes: try ReplicaStore.verified(row, kind: "certificate", round: round, column: "certificate", path: path))
                }
                var log = [LogEntry]()
                let rows = try Row.fetchCursor(db, sql: "SELECT round, batch, checksum FROM delivered ORDER BY round")
                while let row = try rows.next() {
                    let round = try ReplicaStore.round(row, path: path)
                    if let previous = log.last, previous.round + 1 != round {
                        throw StoreError.corrupted(path: path, detail: "log jumps from round \(previous.round) to \(round)")
                    }
                    log.append(LogEntry(
                        round: round, batch: try ReplicaStore.verified(row, kind: "delivered", round: round, column: "batch", path: path)))
                }
                if let snapshot, let first = log.first, first.round > snapshot.round + 1 {
                    throw StoreError.corrupted(
                        path: path, detail: "log starts at round \(first.round), after the snapshot of round \(snapshot.round)")
                }
                if snapshot == nil, let first = log.first, first.round != 1 {
                    throw StoreError.corrupted(path: path, detail: "log starts at round \(first.round) without a snapshot")
                }
                let horizon = try UInt64.fetchOne(db, sql: "SELECT sendHorizon FROM progress WHERE id = 1") ?? 0
                let reseeding = try Bool.fetchOne(db, sql: "SELECT reseeding FROM progress WHERE id = 1") ?? false
                let silentThrough = try UInt64.fetchOne(db, sql: "SELECT silentThrough FROM progress WHERE id = 1") ?? 0
                return Recovery(
                    snapshot: snapshot, log: log, sendHorizon: horizon, silentThrough: silentThrough,
                    certificate: certificate, reseeding: reseeding)
            }
        } catch {
            throw ReplicaStore.classify(error, path: path, while: "recovering")
        }
    }

    /// `recover()` with the journal read from its segments.
    private func recoverWithJournal() throws(StoreError) -> Recovery {
        var recovery = try recoverTables()
        recovery.journal = try JournalFile.open(folder: journal.folder, syncEachAppend: true).1
        return recovery
    }

    /// Sizes for logs and benchmarks: rows in the log, bytes of the snapshot.
    public func sizes() -> (logRounds: Int, snapshotBytes: Int) {
        (try? queue.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivered") ?? 0,
                try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(LENGTH(state)), 0) FROM snapshot") ?? 0
            )
        }) ?? (0, 0)
    }

    // MARK: Schema

    /// Versioned schema. Add a migration for every change; never edit a shipped one (the file of a
    /// running replica was made by it).
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE header (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        cluster BLOB NOT NULL,
                        member INTEGER NOT NULL,
                        schemaVersion INTEGER NOT NULL
                    );
                    CREATE TABLE progress (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        sendHorizon INTEGER NOT NULL
                    );
                    CREATE TABLE delivered (
                        round INTEGER PRIMARY KEY,
                        batch BLOB NOT NULL,
                        checksum BLOB NOT NULL
                    );
                    CREATE TABLE snapshot (
                        round INTEGER PRIMARY KEY,
                        state BLOB NOT NULL,
                        checksum BLOB NOT NULL
                    );
                    INSERT INTO progress (id, sendHorizon) VALUES (1, 0);
                    """)
        }
        // Checkpoints: the snapshot's encoding, and the latest stable checkpoint certificate. Snapshots of
        // v1 files keep format 1 and are read as before.
        migrator.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    ALTER TABLE snapshot ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
                    CREATE TABLE certificate (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        round INTEGER NOT NULL,
                        certificate BLOB NOT NULL,
                        checksum BLOB NOT NULL
                    );
                    ALTER TABLE progress ADD COLUMN reseeding INTEGER NOT NULL DEFAULT 0;
                    UPDATE header SET schemaVersion = 2;
                    """)
        }
        // Stage 2 (docs/DURABILITY.md): the seed of the replica's protocol randomness, the boot the journal
        // (`JournalFile`, beside the database) was written in, and the rounds to stay silent in after a restart.
        migrator.registerMigration("v3") { db in
            try db.execute(
                sql: """
                    ALTER TABLE progress ADD COLUMN seed BLOB;
                    ALTER TABLE progress ADD COLUMN boot TEXT;
                    ALTER TABLE progress ADD COLUMN silentThrough INTEGER NOT NULL DEFAULT 0;
                    UPDATE progress SET silentThrough = sendHorizon;
                    UPDATE header SET schemaVersion = 3;
                    """)
        }
        return migrator
    }

    private static func checkHeader(_ db: Database, owner: Owner, path: String) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT cluster, member, schemaVersion FROM header WHERE id = 1") else {
            try db.execute(
                sql: "INSERT INTO header (id, cluster, member, schemaVersion) VALUES (1, ?, ?, ?)",
                arguments: [Data(owner.clusterIdentifier), owner.member, schemaVersion])
            return
        }
        let cluster: Data? = row["cluster"]
        let member: Int? = row["member"]
        guard let cluster, let member else {
            throw StoreError.corrupted(path: path, detail: "header row has no cluster or member")
        }
        let found = Owner(clusterIdentifier: Array(cluster), member: member)
        guard found == owner else { throw StoreError.foreignDatabase(path: path, expected: owner, found: found) }
    }

    /// Reads every row once at open: a flipped bit anywhere is found before the replica starts.
    private static func verifyChecksums(_ db: Database, path: String) throws {
        for (table, column) in [("delivered", "batch"), ("certificate", "certificate")] {
            let rows = try Row.fetchCursor(db, sql: "SELECT round, \(column), checksum FROM \(table)")
            while let row = try rows.next() {
                _ = try verified(row, kind: table, round: try round(row, path: path), column: column, path: path)
            }
        }
        let snapshots = try Row.fetchCursor(db, sql: "SELECT round, state, checksum, format FROM snapshot")
        while let row = try snapshots.next() {
            let format: Int = row["format"] ?? 1
            _ = try verified(
                row, kind: snapshotKind(format: format), round: try round(row, path: path), column: "state", path: path)
        }
    }

    private static func round(_ row: Row, path: String) throws -> UInt64 {
        let value: Int64? = row["round"]
        guard let value, value > 0 else { throw StoreError.corrupted(path: path, detail: "a row has no valid round") }
        return UInt64(value)
    }

    private static func verified(_ row: Row, kind: String, round: UInt64, column: String, path: String) throws -> [UInt8] {
        let content: Data? = row[column]
        let stored: Data? = row["checksum"]
        guard let content, let stored, matches(Array(stored), kind: kind, round: round, Array(content)) else {
            throw StoreError.corrupted(path: path, detail: "checksum mismatch in \(kind) round \(round)")
        }
        return Array(content)
    }

    /// Whether `stored` is the checksum of a row: XXH64 if it is 8 bytes long, SHA-256 if 32 (a row written
    /// before XXH64), nothing else.
    static func matches(_ stored: [UInt8], kind: String, round: UInt64, _ content: [UInt8]) -> Bool {
        switch stored.count {
        case 8: stored == checksum(kind: kind, round: round, content)
        case 32: stored == legacyChecksum(kind: kind, round: round, content)
        default: false
        }
    }

    /// XXH64 (`JournalChecksum`) over the row's content, seeded with an XXH64 of its kind and round, so a row
    /// moved to another round or table fails too. Why not SHA-256 any more: the checksum finds damage, not an
    /// adversary (who could rewrite any unkeyed checksum), and every delivered batch and every snapshot is
    /// checksummed here: SHA-256 over them was 1.5 % of a replica's samples at 32 clients × 8 KB, after the
    /// hashing of the same bytes elsewhere on their path was cut (BENCHMARKS.md, "Cheaper bytes").
    static func checksum(kind: String, round: UInt64, _ content: [UInt8]) -> [UInt8] {
        var identity = Array("sintra-store/\(kind)/".utf8)
        withUnsafeBytes(of: round.bigEndian) { identity += $0 }
        let seed = identity.withUnsafeBytes { JournalChecksum.hash($0, seed: JournalFile.checksumSeed) }
        let value = content.withUnsafeBytes { JournalChecksum.hash($0, seed: seed) }
        return withUnsafeBytes(of: value.bigEndian, Array.init)
    }

    /// SHA-256 over the row's kind, round, and content: the checksum of rows written before XXH64 (verified,
    /// no longer written).
    static func legacyChecksum(kind: String, round: UInt64, _ content: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: Array("sintra-store/\(kind)/".utf8))
        withUnsafeBytes(of: round.bigEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(data: content)
        return Array(hasher.finalize())
    }

    /// Maps SQLite's failures to the store's typed errors: SQLITE_CORRUPT and SQLITE_NOTADB mean the file
    /// is damaged or not a database; everything else is an I/O failure with SQLite's message.
    static func classify(_ error: any Error, path: String, while action: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return .corrupted(path: path, detail: error.message ?? "\(error.resultCode)")
            default:
                return .io(path: path, action: action, detail: error.description)
            }
        }
        return .io(path: path, action: action, detail: "\(error)")
    }
}

/// Why a replica store cannot be used. Every case names the file: the operator decides whether to restore
/// it, delete it, or (later, issue 6) re-seed the replica from its peers.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// SQLite found damage (truncation, overwritten pages), or a row failed its checksum.
    case corrupted(path: String, detail: String)
    /// The file belongs to another cluster or member.
    case foreignDatabase(path: String, expected: ReplicaStore.Owner, found: ReplicaStore.Owner)
    /// The file is a SQLite database, but not one this program made.
    case notAReplicaStore(path: String)
    /// The file was migrated by a newer build.
    case newerSchema(path: String, known: Int)
    /// The caller tried to write rounds that do not continue the log.
    case outOfOrder(expected: UInt64, got: UInt64)
    /// Opening, reading, or writing failed (permissions, disk full, I/O error).
    case io(path: String, action: String, detail: String)

    public var description: String {
        switch self {
        case .corrupted(let path, let detail):
            "replica store \(path) is corrupted (\(detail)); restore it from a backup, or restart with --reseed to move it aside and fetch the state from the peers"
        case .foreignDatabase(let path, let expected, let found):
            "replica store \(path) belongs to \(found), not to \(expected)"
        case .notAReplicaStore(let path):
            "\(path) is a SQLite database but not a Sintra replica store"
        case .newerSchema(let path, let known):
            "replica store \(path) has a newer schema than this build knows (version \(known))"
        case .outOfOrder(let expected, let got):
            "replica store: round \(got) written where round \(expected) was expected"
        case .io(let path, let action, let detail):
            "replica store \(path): \(action) failed: \(detail)"
        }
    }
}
