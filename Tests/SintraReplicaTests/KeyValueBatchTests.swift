import SintraCrypto
import Testing

@testable import SintraReplica

/// `KeyValueStore.Operation.batch`: operations in order, each with its own result, within one reply's budget;
/// and `KeyValueStore.Batching`, the client's side of the format.
@Suite struct KeyValueBatchTests {
    private func run(_ store: inout KeyValueStore, _ operation: KeyValueStore.Operation) throws -> KeyValueStore.Result {
        try KeyValueStore.Result(encoded: store.apply(operation.encoded))
    }

    @Test func operationsRunInOrderAndSeeEachOther() throws {
        var store = KeyValueStore()
        let a = Array("a".utf8), b = Array("b".utf8)
        let batch = KeyValueStore.Operation.batch([
            .get(key: a), .put(key: a, value: [1]), .get(key: a), .compareAndSwap(key: a, expected: [1], new: [2]),
            .compareAndSwap(key: a, expected: [1], new: [3]), .put(key: b, value: [9]), .scan(from: [], to: [0xff], limit: 10),
            .delete(key: b), .delete(key: b),
        ])
        #expect(try KeyValueStore.Operation(encoded: batch.encoded) == batch)
        let result = try run(&store, batch)
        #expect(
            result == .batch([
                .notFound, .ok, .value([1]), .ok, .conflict(current: [2]), .ok, .entries([(a, [2]), (b, [9])]), .ok,
                .notFound,
            ]))
        // The same operations one by one leave the same state.
        var single = KeyValueStore()
        guard case .batch(let operations) = batch else { return }
        for operation in operations { _ = try run(&single, operation) }
        #expect(single.snapshot() == store.snapshot())
        // An empty batch is a batch of no results.
        #expect(try run(&store, .batch([])) == .batch([]))
    }

    @Test func malformedBatchesAreInvalidAndChangeNothing() throws {
        var store = KeyValueStore()
        // A batch inside a batch, by bytes (the enum can say it; the decoder refuses it).
        let inner = KeyValueStore.Batching().batch([KeyValueStore.Operation.put(key: [1], value: [1]).encoded])
        let nested = KeyValueStore.Batching().batch([inner])
        guard case .invalid = try KeyValueStore.Result(encoded: store.apply(nested)) else {
            Issue.record("a nested batch was accepted")
            return
        }
        // More operations than `batchCountMax`.
        var writer = ByteWriter()
        writer.write(UInt8(5))
        writer.write(UInt32(KeyValueStore.batchCountMax + 1))
        guard case .invalid = try KeyValueStore.Result(encoded: store.apply(writer.bytes)) else {
            Issue.record("an oversized batch was accepted")
            return
        }
        // A truncated batch: the first operation is whole, the second is cut.
        let whole = KeyValueStore.Batching().batch([
            KeyValueStore.Operation.put(key: [1], value: [1]).encoded, KeyValueStore.Operation.put(key: [2], value: [2]).encoded,
        ])
        guard case .invalid = try KeyValueStore.Result(encoded: store.apply(Array(whole.dropLast()))) else {
            Issue.record("a truncated batch was accepted")
            return
        }
        #expect(store.count == 0)
        // An operation built in code as a nested batch gets an invalid result of its own; the rest run.
        #expect(
            store.perform(.batch([.put(key: [3], value: [3]), .batch([]), .get(key: [3])]))
                == .batch([.ok, .invalid("a batch inside a batch"), .value([3])]))
    }

    /// Results share `batchResultBytesMax`: gets of large values past it answer `overBudget`, a
    /// compare-and-swap that could not report a conflict does not run, puts run whatever the budget, and a
    /// scan is cut to what is left. The reply always fits the budget.
    @Test func resultsStayWithinTheReplyBudget() throws {
        var store = KeyValueStore()
        let big = [UInt8](repeating: 7, count: KeyValueStore.valueBytesMax)
        for key in 0..<20 { #expect(try run(&store, .put(key: [UInt8(key)], value: big)) == .ok) }
        var operations: [KeyValueStore.Operation] = (0..<20).map { .get(key: [UInt8($0)]) }
        operations += [
            .compareAndSwap(key: [0], expected: [1], new: [2]), .compareAndSwap(key: [1], expected: big, new: [2]),
            .put(key: [100], value: [1]), .delete(key: [2]), .scan(from: [], to: [0xff], limit: 5),
        ]
        let encoded = store.apply(KeyValueStore.Operation.batch(operations).encoded)
        #expect(encoded.count <= KeyValueStore.batchResultBytesMax + 5)
        guard case .batch(let results) = try KeyValueStore.Result(encoded: encoded) else {
            Issue.record("no batch result")
            return
        }
        #expect(results.count == operations.count)
        let fitting = KeyValueStore.batchResultBytesMax / (KeyValueStore.valueBytesMax + 9)
        #expect(fitting >= 14)
        // The gets that fit come first, then the budget refuses the rest.
        let gets = results.prefix(20)
        let answered = gets.prefix { $0 == .value(big) }.count
        #expect(answered >= fitting - 1 && answered <= fitting)
        #expect(gets.dropFirst(answered).allSatisfy { $0 == KeyValueStore.overBudget })
        // Neither compare-and-swap ran (no room for a conflict's value): key 1 keeps its value.
        #expect(results[20] == KeyValueStore.overBudget && results[21] == KeyValueStore.overBudget)
        #expect(try run(&store, .get(key: [1])) == .value(big))
        // The put and the delete ran.
        #expect(results[22] == .ok && results[23] == .ok)
        #expect(try run(&store, .get(key: [100])) == .value([1]))
        #expect(try run(&store, .get(key: [2])) == .notFound)
        // The scan got no room for a 64 KiB entry: refused, not an empty range.
        #expect(results[24] == KeyValueStore.overBudget)
    }

    /// A batch of the most operations, each as small as a put can be, still has room for every result.
    @Test func theLargestBatchFitsItsBudget() throws {
        var store = KeyValueStore()
        let operations = (0..<KeyValueStore.batchCountMax).map { KeyValueStore.Operation.get(key: [UInt8($0 % 256)]) }
        let result = try run(&store, .batch(operations))
        #expect(result == .batch(Array(repeating: .notFound, count: KeyValueStore.batchCountMax)))
    }

    @Test func batchingSplitsResultsAndBoundsWhatABatchMayHold() throws {
        let batching = KeyValueStore.Batching()
        let put = KeyValueStore.Operation.put(key: [1], value: [2]).encoded
        let get = KeyValueStore.Operation.get(key: [1]).encoded
        let scan = KeyValueStore.Operation.scan(from: [], to: [1], limit: 1).encoded
        #expect(batching.resultBytesMax(of: scan) == nil)
        #expect(batching.resultBytesMax(of: [9]) == nil)
        #expect(batching.resultBytesMax(of: []) == nil)
        let small = try #require(batching.resultBytesMax(of: put))
        let large = try #require(batching.resultBytesMax(of: get))
        #expect(small < 64 && large > KeyValueStore.valueBytesMax)
        // The batch the client builds is the operation the store decodes.
        #expect(
            try KeyValueStore.Operation(encoded: batching.batch([put, get]))
                == .batch([.put(key: [1], value: [2]), .get(key: [1])]))
        // Results come apart in order; a count that differs is an error.
        let results = KeyValueStore.Result.batch([.ok, .value([2])]).encoded
        #expect(try batching.results(of: results, count: 2) == [KeyValueStore.Result.ok.encoded, KeyValueStore.Result.value([2]).encoded])
        #expect(throws: DecodingError.self) { try batching.results(of: results, count: 3) }
        // A result refusing the batch as a whole is every operation's.
        let invalid = KeyValueStore.Result.invalid("unknown operation 5").encoded
        #expect(try batching.results(of: invalid, count: 3) == Array(repeating: invalid, count: 3))
        // Garbage is an error, not three copies of garbage.
        #expect(throws: DecodingError.self) { try batching.results(of: [0xee, 1, 2], count: 3) }
        #expect(throws: DecodingError.self) { try batching.results(of: Array(results.dropLast()), count: 2) }
    }
}
