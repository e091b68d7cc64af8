import SintraCore
import SintraCrypto
import SintraReplica
import Testing

@testable import SintraSimulation

/// The simulation's independent `KeyValueReference` and `RequestExecutor<KeyValueStore>` agree on batches:
/// random batches over a few keys, with values up to `valueBytesMax` so that the reply budget binds (gets
/// refused, compare-and-swaps not run, scans cut), give the same result for every request and the same state.
@Suite struct KeyValueBatchReferenceTests {
    @Test func batchesAgreeWithTheReference() throws {
        var random = SystemRandomNumberGenerator()
        // Fixed seeds (the budget binds in each), and a fresh one each run.
        var refusedForBudget = 0
        for seed in [1, 2, 3, UInt64.random(in: 0...UInt64.max, using: &random)] {
            refusedForBudget += try compare(seed: seed)
        }
        #expect(refusedForBudget > 0, "the budget never bound")
    }

    /// Runs 120 random requests of one client through both; returns how many results were budget refusals.
    private func compare(seed: UInt64) throws -> Int {
        var generator = ProtocolRandom.seeded(seed)
        let key = ClientKey.generate()
        let cluster = [UInt8](repeating: 1, count: 32)
        let keys: [[UInt8]] = (0..<6).map { [UInt8($0)] }
        func value() -> [UInt8] {
            let sizes = [0, 1, 100, KeyValueStore.valueBytesMax / 3, KeyValueStore.valueBytesMax, KeyValueStore.valueBytesMax]
            let size = sizes[Int(generator.next() % UInt64(sizes.count))]
            return [UInt8](repeating: UInt8(truncatingIfNeeded: generator.next()), count: size)
        }
        func operation() -> KeyValueStore.Operation {
            let key = keys[Int(generator.next() % UInt64(keys.count))]
            switch generator.next() % 8 {
            case 0: return .put(key: key, value: value())
            case 1...3: return .get(key: key)
            case 4: return .delete(key: key)
            case 5: return .compareAndSwap(key: key, expected: generator.next() % 2 == 0 ? nil : value(), new: value())
            case 6: return .scan(from: keys[0], to: [0xff], limit: Int(generator.next() % 8))
            default: return .put(key: key, value: [UInt8(truncatingIfNeeded: generator.next())])
            }
        }
        var requests = [ClientRequest]()
        for sequence in 1...120 {
            let count = Int(generator.next() % 60)
            let single = generator.next() % 4 == 0
            let operation: KeyValueStore.Operation = single ? operation() : .batch((0..<count).map { _ in operation() })
            requests.append(key.request(clusterIdentifier: cluster, sequence: UInt64(sequence), operation: operation.encoded))
        }
        var reference = KeyValueReference(authentic: Set(requests.map(\.encoded)))
        var executor = RequestExecutor(machine: KeyValueStore())
        var refusedForBudget = 0
        for request in requests {
            guard case .executed(let expected) = reference.execute(request.encoded),
                case .executed(let reply) = executor.execute(request)
            else {
                Issue.record("a request was not executed (seed \(seed))")
                return 0
            }
            #expect(reply.result == expected, "seed \(seed), request \(request.sequence)")
            #expect(reply.result.count <= KeyValueStore.batchResultBytesMax + 5)
            if case .batch(let results) = try KeyValueStore.Result(encoded: reply.result) {
                refusedForBudget += results.filter { $0 == KeyValueStore.overBudget }.count
            }
        }
        #expect(reference.digest == executor.machine.digest, "seed \(seed)")
        return refusedForBudget
    }
}
