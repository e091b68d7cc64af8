import SintraCrypto
import Testing

@testable import SintraReplica

/// The executor's reply cache is bounded (`RequestExecutor.cachedReplyBytesMax`): a long reply is sent once
/// and a repeat of its request gets `.replyNotKept`; the choice is the same at every replica, in snapshots
/// too, and snapshots written before the bound still read.
@Suite struct ReplyCacheTests {
    typealias Executor = RequestExecutor<KeyValueStore>

    /// A 32-byte public key per client number (the executor does not check signatures).
    static func request(client: Int, sequence: UInt64, _ operation: KeyValueStore.Operation) -> ClientRequest {
        ClientRequest(
            publicKey: (0..<32).map { UInt8(truncatingIfNeeded: client &* 31 &+ $0 &+ 1) }, sequence: sequence,
            operation: operation.encoded, signature: [UInt8](repeating: 0, count: 64))
    }

    static let bigKey = Array("big".utf8)
    /// A value whose `get` result is longer than the cache keeps.
    static let bigValue = [UInt8](repeating: 0x5a, count: 16 << 10)

    /// An executor where clients 1…`clients` each read the big value (sequence 1); client 0 wrote it.
    static func executorAfterLongReads(clients: Int) -> Executor {
        var executor = Executor(machine: KeyValueStore())
        _ = executor.execute(request(client: 0, sequence: 1, .put(key: bigKey, value: bigValue)))
        for client in 1...clients {
            guard case .executed(let reply) = executor.execute(request(client: client, sequence: 1, .get(key: bigKey)))
            else {
                Issue.record("client \(client)'s read was not executed")
                continue
            }
            // The long reply is still sent once, in full.
            #expect(reply.result == KeyValueStore.Result.value(bigValue).encoded)
        }
        return executor
    }

    /// Without the bound every client's last 16 KiB reply stayed (3.2 MB for 200 clients; ~1 MiB replies
    /// for `clientCountMax` clients would be ~100 GB).
    @Test func longRepliesAreNotKept() {
        let clients = 200
        var executor = Self.executorAfterLongReads(clients: clients)
        #expect(executor.cachedReplyBytes <= (clients + 1) * Executor.cachedReplyBytesMax)
        #expect(executor.cachedReplyBytes == KeyValueStore.Result.ok.encoded.count, "only client 0's short reply")
        let repeated = Self.request(client: 7, sequence: 1, .get(key: Self.bigKey))
        // Compared as flags: a failure would otherwise print the 16 KiB reply.
        #expect(executor.repeatedOutcome(of: repeated) == .replyNotKept ? true : false)
        #expect(executor.execute(repeated) == .replyNotKept ? true : false)
        #expect(executor.executedCount == UInt64(clients + 1), "a repeat is not executed again")
        // Older sequence numbers are stale as before; a short reply is still resent.
        _ = executor.execute(Self.request(client: 7, sequence: 2, .get(key: Array("absent".utf8))))
        #expect(executor.repeatedOutcome(of: repeated) == .stale)
        #expect(
            executor.repeatedOutcome(of: Self.request(client: 7, sequence: 2, .get(key: Array("absent".utf8))))
                == .duplicate(
                    ClientReply(
                        client: repeated.client, sequence: 2, result: KeyValueStore.Result.notFound.encoded)))
    }

    /// The boundary: a reply of exactly `cachedReplyBytesMax` bytes is kept, one byte more is not.
    @Test func theBoundIsOnTheReplyLength() throws {
        let header = KeyValueStore.Result.value([]).encoded.count
        for (extra, kept) in [(0, true), (1, false)] {
            var executor = Executor(machine: KeyValueStore())
            let value = [UInt8](repeating: 1, count: Executor.cachedReplyBytesMax - header + extra)
            _ = executor.execute(Self.request(client: 0, sequence: 1, .put(key: [1], value: value)))
            let read = Self.request(client: 1, sequence: 1, .get(key: [1]))
            guard case .executed(let reply) = executor.execute(read) else {
                Issue.record("not executed")
                continue
            }
            #expect(reply.result.count == Executor.cachedReplyBytesMax + extra)
            #expect((executor.repeatedOutcome(of: read) == .duplicate(reply)) == kept)
            #expect((executor.repeatedOutcome(of: read) == .replyNotKept) == !kept)
        }
    }

    /// Snapshots record a reply not kept as such; a restored executor answers every later request as the
    /// original does, and its snapshot is the same bytes.
    @Test func snapshotsKeepTheChoice() throws {
        var original = Self.executorAfterLongReads(clients: 20)
        let bytes = original.snapshot()
        #expect(bytes.count < 20 * Self.bigValue.count, "the long replies are not in the snapshot")
        var restored = try Executor(snapshot: bytes)
        #expect(restored.snapshot() == bytes)
        for client in 0...21 {
            for sequence in UInt64(1)...2 {
                let next = Self.request(client: client, sequence: sequence, .get(key: Self.bigKey))
                #expect(restored.execute(next) == original.execute(next), "client \(client), sequence \(sequence)")
            }
        }
        #expect(restored.snapshot() == original.snapshot())
    }

    /// A snapshot written before the bound (every reply in full) still reads, and the restored table drops
    /// the long replies as execution does now: it equals the table of an executor that ran the same
    /// requests with the bound, so replicas restored from either agree on checkpoint digests.
    @Test func snapshotsFromBeforeTheBoundAreReadAndConverge() throws {
        let live = Self.executorAfterLongReads(clients: 3)
        // The same state as the pre-bound encoding wrote it: client 0's `ok`, clients 1…3 the long value.
        var old = ByteWriter()
        old.write(UInt64(4))
        old.write(UInt64(4))
        for client in 0...3 {
            let request = Self.request(client: client, sequence: 1, .get(key: Self.bigKey))
            old.writeFixed(request.client)
            old.write(UInt64(1))
            old.write(UInt64(client))
            old.writeVariable(client == 0 ? KeyValueStore.Result.ok.encoded : KeyValueStore.Result.value(Self.bigValue).encoded)
        }
        old.writeFixed(live.machine.snapshot())
        let restored = try Executor(snapshot: old.bytes)
        #expect(restored.snapshot() == live.snapshot())
        #expect(restored.repeatedOutcome(of: Self.request(client: 2, sequence: 1, .get(key: Self.bigKey))) == .replyNotKept)
    }

    /// A reply length above `replyBytesMax` that is not the marker is refused before anything is allocated.
    @Test func impossibleReplyLengthsAreRefused() throws {
        for length in [UInt32(Executor.replyBytesMax + 1), UInt32.max - 1] {
            var writer = ByteWriter()
            writer.write(UInt64(1))
            writer.write(UInt64(1))
            writer.writeFixed([UInt8](repeating: 3, count: 16))
            writer.write(UInt64(1))
            writer.write(UInt64(0))
            writer.write(length)
            writer.writeFixed(KeyValueStore().snapshot())
            #expect(throws: DecodingError.self) { try Executor(snapshot: writer.bytes) }
        }
    }
}
