import SintraCrypto
import Testing

@testable import SintraReplica

/// The executor's snapshot (docs/DURABILITY.md): a restored executor is indistinguishable from the one it
/// was taken from, in state and in how it treats every later request (duplicates and stale ones included).
@Suite struct ExecutorSnapshotTests {
    static func request(client: Int, sequence: UInt64, key: Int, value: Int) -> ClientRequest {
        let operation = KeyValueStore.Operation.compareAndSwap(
            key: Array("k\(key)".utf8), expected: nil, new: Array("v\(value)".utf8))
        let put = KeyValueStore.Operation.put(key: Array("k\(key)".utf8), value: Array("v\(value)".utf8))
        // The executor does not look at signatures (ReplicaNode authenticates before executing).
        return ClientRequest(
            publicKey: (0..<32).map { UInt8(truncatingIfNeeded: client &* 17 &+ $0) }, sequence: sequence,
            operation: (value % 3 == 0 ? operation : put).encoded, signature: [UInt8](repeating: 0, count: 64))
    }

    /// Seeded requests from 12 clients, with repeats (duplicates) and old sequence numbers (stale).
    static func workload(seed: UInt64, count: Int) -> [ClientRequest] {
        var random = SplitMix(seed: seed)  // SplitMix64 (KeyValueStoreTests.swift), so a failure replays
        var sequences = [UInt64](repeating: 0, count: 12)
        return (0..<count).map { index in
            let client = Int(random.next() % 12)
            switch random.next() % 6 {
            case 0: break  // a retransmission of the client's last request (or an old one)
            default: sequences[client] += 1
            }
            let sequence = random.next() % 5 == 0 ? max(1, sequences[client] / 2) : max(1, sequences[client])
            return request(client: client, sequence: sequence, key: Int(random.next() % 9), value: index)
        }
    }

    @Test func aRestoredExecutorBehavesExactlyAsTheOriginal() throws {
        for seed in UInt64(1)...5 {
            let requests = Self.workload(seed: seed, count: 400)
            var original = RequestExecutor(machine: KeyValueStore())
            for request in requests[0..<200] { _ = original.execute(request) }
            let bytes = original.snapshot()
            var restored = try RequestExecutor<KeyValueStore>(snapshot: bytes)
            #expect(restored.snapshot() == bytes, "canonical: restoring and snapshotting again gives the same bytes")
            #expect(restored.executedCount == original.executedCount)
            #expect(restored.machine.digest == original.machine.digest)
            var outcomes = (0, 0, 0)
            for request in requests[200...] {
                let expected = original.execute(request)
                #expect(restored.execute(request) == expected, "seed \(seed)")
                switch expected {
                case .executed: outcomes.0 += 1
                case .duplicate: outcomes.1 += 1
                case .stale, .replyNotKept: outcomes.2 += 1
                }
            }
            // The workload exercises all three paths after the restore.
            #expect(outcomes.0 > 0 && outcomes.1 > 0 && outcomes.2 > 0, "seed \(seed): \(outcomes)")
            #expect(restored.snapshot() == original.snapshot())
        }
    }

    /// The eviction-order list keeps only about the live clients however many requests run (it grew by one
    /// entry per request before), and compacting it changes no outcome: an executor restored from a
    /// snapshot (whose list holds exactly the live clients) still answers every later request alike.
    @Test func evictionBookkeepingStaysBoundedOverALongRun() throws {
        let requests = Self.workload(seed: 9, count: 6_000)
        var executor = RequestExecutor(machine: KeyValueStore())
        var largest = 0
        for request in requests[0..<5_000] {
            _ = executor.execute(request)
            largest = max(largest, executor.recencyCount)
        }
        #expect(largest <= 2 * 12 + 1_025, "\(largest) entries for 12 clients")
        var restored = try RequestExecutor<KeyValueStore>(snapshot: executor.snapshot())
        for request in requests[5_000...] {
            #expect(restored.execute(request) == executor.execute(request))
        }
        #expect(restored.snapshot() == executor.snapshot())
    }

    @Test func malformedSnapshotsAreRefused() throws {
        var executor = RequestExecutor(machine: KeyValueStore())
        for request in Self.workload(seed: 9, count: 50) { _ = executor.execute(request) }
        let bytes = executor.snapshot()
        #expect(throws: DecodingError.self) { try RequestExecutor<KeyValueStore>(snapshot: Array(bytes.prefix(20))) }
        #expect(throws: DecodingError.self) { try RequestExecutor<KeyValueStore>(snapshot: bytes + [0]) }
        // A client table claiming more clients than the bound is refused before anything is allocated.
        var huge = ByteWriter()
        huge.write(UInt64(10))
        huge.write(UInt64.max)
        #expect(throws: DecodingError.self) { try RequestExecutor<KeyValueStore>(snapshot: huge.bytes) }
        // Positions must increase and stay below the executed count.
        var unordered = ByteWriter()
        unordered.write(UInt64(5))
        unordered.write(UInt64(1))
        unordered.writeFixed([UInt8](repeating: 1, count: 16))
        unordered.write(UInt64(1))
        unordered.write(UInt64(7))
        unordered.writeVariable([UInt8]())
        unordered.writeFixed(KeyValueStore().snapshot())
        #expect(throws: DecodingError.self) { try RequestExecutor<KeyValueStore>(snapshot: unordered.bytes) }
    }
}
