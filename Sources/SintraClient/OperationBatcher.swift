import NIOCore
import SintraCore
import SintraReplica

/// Many callers' operations sent as few signed requests: the slots of a `ClientMultiplexer` (each a client
/// with its own key) carry batches of the operations that are waiting when a slot becomes free.
///
/// Why: every replica checks every request's Ed25519 signature, and at high load those checks are a
/// replica's largest single cost (BENCHMARKS.md). An application server with many concurrent callers needs
/// no key per caller: here the callers share the multiplexer's slots, and a request carries up to
/// `operationsPerRequestMax` operations (`OperationBatching`, e.g. `KeyValueStore.Batching`), each executed
/// exactly once and in order, each with its own result.
///
/// No operation waits for a batch to fill: a free slot takes whatever waits at once, so at low load each
/// operation goes alone (as a plain request, without a batch around it) and batches grow only while every
/// slot has a request out, which is when waiting costs nothing. Operations go out oldest first; an
/// operation that must go alone (`OperationBatching.resultBytesMax(of:)` nil) ends the batch before it.
///
/// A request is at most `requestBytesMax` long as ordered: the replicas refuse longer ones `.tooLarge`
/// (`AtomicBroadcast.Limits.submittableBytesMax`, 64 KiB by default). If the replicas refuse a batch as too
/// large all the same (a cluster configured with a lower limit), its operations go back to the head of the
/// queue and batches are kept to half its size from then on; a single operation refused so is refused.
/// Any other failure of a request (`SintraClient.Failure`: timeout, refusal) is the failure of each of its
/// operations, and the multiplexer's retries apply to the batch as a whole. At most `pendingMax` operations
/// wait for a slot; more fail at once with `SintraClient.Failure.busy`, so that a caller faster than the
/// cluster sees it instead of growing this queue without bound.
///
/// All state is confined to the multiplexer's event loop.
public final class OperationBatcher: @unchecked Sendable {
    public let multiplexer: ClientMultiplexer
    public let format: any OperationBatching
    /// Operations one request carries at most.
    public let operationsPerRequestMax: Int
    /// Operations that may wait for a free slot.
    public let pendingMax: Int
    /// Bytes of a request as ordered (`ClientRequest.encoded`) at most; halved on a batch refused too large.
    public private(set) var requestBytesMax: Int

    private struct Pending {
        let operation: [UInt8]
        let promise: EventLoopPromise<[UInt8]>
    }

    // Confined to `multiplexer.eventLoop`.
    private var pending: [Pending] = []
    private var pendingHead = 0
    private var freeSlots: [Int]
    private var dispatching = false
    private var requestsSent = 0
    private var operationsSent = 0

    /// Operations of `format` over every slot of `multiplexer` (which nothing else may use). Requests are
    /// kept within `requestBytesMax` bytes as ordered (default: what replicas with the default
    /// `AtomicBroadcast.Limits` accept from a cluster of this size).
    public init(
        multiplexer: ClientMultiplexer, format: any OperationBatching, operationsPerRequestMax: Int = 1024,
        pendingMax: Int = 1 << 20, requestBytesMax: Int? = nil
    ) {
        precondition(operationsPerRequestMax >= 1 && pendingMax >= 1, "positive limits")
        self.requestBytesMax = requestBytesMax
            ?? AtomicBroadcast.Limits().submittableBytesMax(replicas: multiplexer.endpoints.count)
        self.multiplexer = multiplexer
        self.format = format
        self.operationsPerRequestMax = min(operationsPerRequestMax, format.operationsMax)
        self.pendingMax = pendingMax
        freeSlots = Array((0..<multiplexer.slotCount).reversed())
    }

    public var eventLoop: EventLoop { multiplexer.eventLoop }

    /// Runs `operation` in the next request of a free slot; the future completes on the event loop with the
    /// operation's own result, or fails as its request failed.
    public func execute(_ operation: [UInt8]) -> EventLoopFuture<[UInt8]> {
        guard eventLoop.inEventLoop else {
            return eventLoop.flatSubmit { self.execute(operation) }
        }
        guard pending.count - pendingHead < pendingMax else {
            return eventLoop.makeFailedFuture(SintraClient.Failure.busy)
        }
        let promise = eventLoop.makePromise(of: [UInt8].self)
        pending.append(Pending(operation: operation, promise: promise))
        dispatch()
        return promise.futureResult
    }

    /// Requests sent and the operations in them, since the start (read on the event loop, or after the load
    /// stopped).
    public func counts() -> EventLoopFuture<(requests: Int, operations: Int)> {
        eventLoop.submit { (self.requestsSent, self.operationsSent) }
    }

    // MARK: On the event loop

    /// Gives waiting operations to free slots, oldest first. Not reentrant: a request that fails at once (a
    /// closed multiplexer) completes inside the loop, and its callers' next operations and its freed slot are
    /// taken by the loop that is running, not by a nested one per request (thousands deep).
    private func dispatch() {
        guard !dispatching else { return }
        dispatching = true
        defer { dispatching = false }
        while pendingHead < pending.count, let slot = freeSlots.popLast() {
            let taken = takeBatch()
            requestsSent += 1
            operationsSent += taken.count
            let operation = taken.count == 1 ? taken[0].operation : format.batch(taken.map(\.operation))
            multiplexer.execute(slot: slot, operation: operation).whenComplete { outcome in
                // The callers' next operations (their callbacks run in `complete`) queue up before the slot is
                // free again, so the slot takes them as one batch: freed first, it went out with the first
                // of them alone and left the rest waiting a whole request for the next slot.
                self.complete(taken, with: outcome)
                self.freeSlots.append(slot)
                self.dispatch()
            }
        }
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        } else if pendingHead > 4096, pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
    }

    /// A request's bytes besides its operation: public key, sequence, the operation's length, signature.
    static let requestFramingBytes = ClientRequest.publicKeyBytes + 8 + 4 + ClientRequest.signatureBytes

    /// The oldest waiting operations that fit one request: within `operationsPerRequestMax`, the format's
    /// result budget, and `requestBytesMax`; always at least one.
    private func takeBatch() -> [Pending] {
        var taken = [pending[pendingHead]]
        pendingHead += 1
        guard var resultBytes = format.resultBytesMax(of: taken[0].operation) else { return taken }
        // A batch's encoding: a status byte and a count, then each operation with 4 bytes of length.
        var requestBytes = Self.requestFramingBytes + 5 + taken[0].operation.count + 4
        let bytesMax = min(requestBytesMax, Self.requestFramingBytes + ClientRequest.operationBytesMax)
        while taken.count < operationsPerRequestMax, pendingHead < pending.count {
            let next = pending[pendingHead]
            guard let nextResult = format.resultBytesMax(of: next.operation),
                resultBytes + nextResult <= format.resultBytesMax,
                requestBytes + next.operation.count + 4 <= bytesMax
            else { break }
            resultBytes += nextResult
            requestBytes += next.operation.count + 4
            taken.append(next)
            pendingHead += 1
        }
        return taken
    }

    private func complete(_ taken: [Pending], with outcome: Result<[UInt8], Error>) {
        switch outcome {
        case .failure(SintraClient.Failure.refused(.tooLarge)) where taken.count > 1:
            // Never executed (a final refusal): the operations go again, first, in smaller batches.
            let bytes = taken.reduce(Self.requestFramingBytes + 5) { $0 + $1.operation.count + 4 }
            requestBytesMax = min(requestBytesMax, bytes / 2)
            pending.replaceSubrange(pendingHead..<pendingHead, with: taken)
        case .failure(let error):
            for item in taken { item.promise.fail(error) }
        case .success(let result) where taken.count == 1:
            taken[0].promise.succeed(result)
        case .success(let result):
            do {
                let results = try format.results(of: result, count: taken.count)
                for (item, result) in zip(taken, results) { item.promise.succeed(result) }
            } catch {
                for item in taken { item.promise.fail(SintraClient.Failure.malformedResult("\(error)")) }
            }
        }
    }
}

extension OperationBatcher {
    /// Runs a SintraKV operation (the batcher's format must be `KeyValueStore.Batching`) and decodes its
    /// result; throws `SintraClient.Failure` as its request failed, `.malformedResult` for bytes that are no
    /// result.
    public func execute(_ operation: KeyValueStore.Operation) async throws -> KeyValueStore.Result {
        let bytes = try await execute(operation.encoded).get()
        do {
            return try KeyValueStore.Result(encoded: bytes)
        } catch {
            throw SintraClient.Failure.malformedResult(error.description)
        }
    }
}
