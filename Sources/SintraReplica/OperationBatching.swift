import SintraCrypto

/// How a client puts several operations of a state machine into one request, and takes the batch's result
/// apart again: the format a client-side batcher (`OperationBatcher` in SintraClient) needs, nothing more.
///
/// Why batches: every replica checks each request's Ed25519 signature, and at high load those checks are
/// the largest single cost of a replica (BENCHMARKS.md). A client with many operations waiting (many
/// callers sharing one client key, as an application server's) signs one request for all of them; each
/// operation still runs exactly once, in order, with its own result.
public protocol OperationBatching: Sendable {
    /// Operations one batch may hold.
    var operationsMax: Int { get }
    /// Bytes of the batch's results together (`resultBytesMax(of:)` each) that one batch may need at most.
    var resultBytesMax: Int { get }
    /// Bytes one operation's result can take inside a batch at most, its length included; nil if the
    /// operation must go alone (its result may fill a reply by itself, or it is not an operation at all).
    func resultBytesMax(of operation: [UInt8]) -> Int?
    /// The encoded operation running `operations` (each encoded, none a batch) in order.
    func batch(_ operations: [[UInt8]]) -> [UInt8]
    /// The results, in order, of the batch of `count` operations whose result is `result`. A result that is
    /// not a batch's (a replica that refused the batch as a whole) is every operation's result.
    func results(of result: [UInt8], count: Int) throws(DecodingError) -> [[UInt8]]
}

extension KeyValueStore {
    /// SintraKV's batches: `Operation.batch` and `Result.batch`, of operations encoded as one operation each.
    public struct Batching: OperationBatching {
        public init() {}

        public var operationsMax: Int { KeyValueStore.batchCountMax }
        public var resultBytesMax: Int { KeyValueStore.batchResultBytesMax }

        /// A put's or delete's result is a status byte; a get or compare-and-swap may return a value of
        /// `valueBytesMax`; a scan may fill a reply by itself and goes alone, as does anything that does not
        /// decode (its `.invalid` result then concerns it alone).
        public func resultBytesMax(of operation: [UInt8]) -> Int? {
            switch operation.first {
            case 0, 2: 5 + KeyValueStore.batchResultBytesReserved
            case 1, 3: KeyValueStore.compareAndSwapResultBytesMax + 4 + KeyValueStore.batchResultBytesReserved
            default: nil
            }
        }

        public func batch(_ operations: [[UInt8]]) -> [UInt8] {
            var writer = ByteWriter(capacity: 5 + operations.reduce(0) { $0 + $1.count + 4 })
            writer.write(UInt8(5))
            writer.write(UInt32(clamping: operations.count))
            for operation in operations { writer.writeVariable(operation) }
            return writer.bytes
        }

        public func results(of result: [UInt8], count: Int) throws(DecodingError) -> [[UInt8]] {
            guard result.first == 6 else {
                // Checked as a result, so that garbage is an error and not `count` copies of garbage.
                _ = try Result(encoded: result)
                return Array(repeating: result, count: count)
            }
            var reader = ByteReader(result, context: "kv batch result")
            _ = try reader.readUInt8()
            let results = try Self.results(&reader)
            try reader.finish()
            guard results.count == count else {
                throw DecodingError(.invalidValue("\(results.count) results for \(count) operations"), in: "kv batch result")
            }
            return results
        }

        /// A batch result's count and its results' encodings, read after the status byte.
        static func results(_ reader: inout ByteReader) throws(DecodingError) -> [[UInt8]] {
            let count = Int(try reader.readUInt32())
            guard count <= KeyValueStore.batchCountMax else {
                throw DecodingError(.tooLong(maximum: KeyValueStore.batchCountMax, actual: count), in: "kv batch result")
            }
            var results = [[UInt8]]()
            results.reserveCapacity(count)
            for _ in 0..<count { results.append(try reader.readVariable(maximum: KeyValueStore.batchResultBytesMax)) }
            return results
        }
    }
}
