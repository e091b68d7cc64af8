import SintraCrypto

/// An application replicated by Sintra. Every replica applies the same requests in the same order, so
/// `apply` must be deterministic: no clocks, randomness, or iteration over unordered collections.
public protocol StateMachine: Sendable {
    /// Applies one ordered request and returns the reply sent to its client. Malformed operations get an
    /// error reply; they never trap, because a Byzantine client can submit anything.
    mutating func apply(_ operation: [UInt8]) -> [UInt8]

    /// A canonical encoding of the whole state, identical on every replica in the same state.
    func snapshot() -> [UInt8]

    /// Appends `snapshot()` to `writer`; a machine with a large state writes its entries in place, so that
    /// an enclosing snapshot (`RequestExecutor.snapshot()`) does not copy the state once more.
    func writeSnapshot(into writer: inout ByteWriter)

    /// The byte count of `snapshot()` if the machine knows it without encoding, so that a writer can be
    /// sized once instead of growing (and copying) itself a dozen times for a large state.
    var snapshotByteCount: Int? { get }

    /// Restores a state from `snapshot()` output; throws on malformed bytes.
    init(snapshot: [UInt8]) throws(DecodingError)

    /// SHA-256 of the canonical state: equal digests mean equal states.
    var digest: [UInt8] { get }
}

extension StateMachine {
    public func writeSnapshot(into writer: inout ByteWriter) {
        writer.writeFixed(snapshot())
    }

    public var snapshotByteCount: Int? { nil }
}

/// A client's request as ordered by atomic broadcast: the client's public key, its per-client sequence
/// number, the application operation, and the client's Ed25519 signature over them and the cluster
/// (`ClientKey.request`, `ClientRequest.verify`).
///
/// The client identifier is not sent: it is derived from the public key, so nobody can send requests in
/// another client's name without its secret key.
public struct ClientRequest: Sendable, Hashable {
    public static let operationBytesMax = 1 << 20
    public static let publicKeyBytes = 32
    public static let signatureBytes = 64

    /// The client's Ed25519 public key (32 bytes).
    public let publicKey: [UInt8]
    /// The 16-byte identifier derived from `publicKey` (`clientIdentifier(of:)`).
    public let client: [UInt8]
    /// Increases by one per request of this client; replicas execute each (client, sequence) once.
    public let sequence: UInt64
    public let operation: [UInt8]
    /// Ed25519 over `statement(clusterIdentifier:publicKey:sequence:operation:)` (64 bytes); not checked here.
    public let signature: [UInt8]

    /// A request with the given fields, signed or not: `verify` tells.
    public init(publicKey: [UInt8], sequence: UInt64, operation: [UInt8], signature: [UInt8]) {
        precondition(publicKey.count == ClientRequest.publicKeyBytes, "client public keys are 32 bytes")
        precondition(signature.count == ClientRequest.signatureBytes, "client signatures are 64 bytes")
        self.publicKey = publicKey
        self.client = ClientRequest.clientIdentifier(of: publicKey)
        self.sequence = sequence
        self.operation = operation
        self.signature = signature
    }

    /// Public key, sequence, length-prefixed operation, signature.
    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: operation.count + 112)
        writer.writeFixed(publicKey)
        writer.write(sequence)
        writer.writeVariable(operation)
        writer.writeFixed(signature)
        return writer.bytes
    }

    public init(encoded bytes: some Sequence<UInt8>) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "client request")
        publicKey = try reader.readFixed(ClientRequest.publicKeyBytes)
        client = ClientRequest.clientIdentifier(of: publicKey)
        sequence = try reader.readUInt64()
        operation = try reader.readVariable(maximum: ClientRequest.operationBytesMax)
        signature = try reader.readFixed(ClientRequest.signatureBytes)
        try reader.finish()
    }
}

/// A replica's reply to one request.
public struct ClientReply: Sendable, Hashable {
    public let client: [UInt8]
    public let sequence: UInt64
    public let result: [UInt8]

    public init(client: [UInt8], sequence: UInt64, result: [UInt8]) {
        self.client = client
        self.sequence = sequence
        self.result = result
    }
}

/// Executes ordered requests on a state machine exactly once per (client, sequence).
///
/// A request whose sequence number is at or below the client's last executed one is a duplicate (a
/// retransmission, or the same request ordered twice because several replicas proposed it): it is not
/// executed again, and if it is the last one its cached reply is returned so a retrying client still
/// gets an answer. The per-client table holds one entry per client; `clientCountMax` bounds it, evicting
/// the least recently active client deterministically (by its last executed position).
///
/// Only replies of at most `cachedReplyBytesMax` bytes are kept in full. A larger one (a batch's results, a
/// scan: up to about 1 MiB) is sent once, at execution, and only its client's sequence number and position
/// stay: a repeat of that request gets `.replyNotKept`, which a replica sends its client as a refusal of the
/// same name (`RefusalReason.replyNotKept`). Without the bound the table could hold `clientCountMax` replies
/// of a MiB each, about 100 GB; with it at most `clientCountMax · cachedReplyBytesMax` = 400 MB of replies.
/// The choice depends only on the reply's length, so every replica that executed the same requests keeps
/// the same table, and snapshots (which checkpoints compare by digest) stay equal across replicas.
public struct RequestExecutor<Machine: StateMachine>: Sendable {
    public static var clientCountMax: Int { 100_000 }

    /// Replies kept for resending are at most this long; longer ones are sent once (see above).
    public static var cachedReplyBytesMax: Int { 4096 }

    public private(set) var machine: Machine
    /// Requests executed so far (the position of the next one).
    public private(set) var executedCount: UInt64 = 0
    /// Per client: its last executed sequence number, that request's reply (nil: longer than
    /// `cachedReplyBytesMax`, not kept) and its execution position.
    private var lastByClient: [[UInt8]: (sequence: UInt64, reply: [UInt8]?, position: UInt64)] = [:]
    /// Clients in the order of their executions (with stale entries), for least-recently-active eviction.
    private var recency: [(client: [UInt8], position: UInt64)] = []
    private var recencyHead = 0

    public init(machine: Machine) {
        self.machine = machine
    }

    public enum Outcome: Sendable, Equatable {
        /// Executed now; send the reply.
        case executed(ClientReply)
        /// Already executed and the latest of its client: resend the cached reply.
        case duplicate(ClientReply)
        /// Older than the client's latest request: nothing to send.
        case stale
        /// Already executed and the latest of its client, but its reply was longer than
        /// `cachedReplyBytesMax` and not kept: nothing to resend. A replica tells the client so with a
        /// `.replyNotKept` refusal on the connection the repeat came on; execution sends nothing.
        case replyNotKept
    }

    /// Applies one delivered request (in delivery order).
    public mutating func execute(_ request: ClientRequest) -> Outcome {
        if let repeated = repeatedOutcome(of: request) { return repeated }
        let result = machine.apply(request.operation)
        lastByClient[request.client] = (
            request.sequence, result.count <= RequestExecutor.cachedReplyBytesMax ? result : nil, executedCount
        )
        recency.append((request.client, executedCount))
        executedCount += 1
        if lastByClient.count > RequestExecutor.clientCountMax {
            evictLeastRecentlyActiveClient()
        }
        if recency.count - recencyHead > 2 * lastByClient.count + 1024 {
            compactRecency()
        }
        return .executed(ClientReply(client: request.client, sequence: request.sequence, result: result))
    }

    /// What `execute` returns for `request` without executing anything, if its client already executed a
    /// request at or after its sequence number: `.duplicate` with the cached reply for the client's last
    /// sequence (`.replyNotKept` if that reply was too long to keep), `.stale` for an older one; nil if
    /// `execute` would run it.
    ///
    /// A replica answers a request that reaches it after it executed it (a retry, a slow connection) with
    /// this: `execute` itself decides repeats here, so the answer is exactly the one it would give were the
    /// request ordered again, and every honest replica that executed the same requests gives the same one.
    public func repeatedOutcome(of request: ClientRequest) -> Outcome? {
        guard let last = lastByClient[request.client], request.sequence <= last.sequence else { return nil }
        guard request.sequence == last.sequence else { return .stale }
        guard let reply = last.reply else { return .replyNotKept }
        return .duplicate(ClientReply(client: request.client, sequence: request.sequence, result: reply))
    }

    /// Evicts the client whose latest request is the oldest. A request of an evicted client that is
    /// ordered again much later would run again; the bound is far above any live client population.
    private mutating func evictLeastRecentlyActiveClient() {
        while recencyHead < recency.count {
            let entry = recency[recencyHead]
            recencyHead += 1
            if lastByClient[entry.client]?.position == entry.position {
                lastByClient[entry.client] = nil
                break
            }
        }
        if recencyHead > recency.count / 2 {
            recency.removeFirst(recencyHead)
            recencyHead = 0
        }
    }

    /// Drops the stale entries of `recency` (a client's older executions), keeping the order of the live
    /// ones, so that eviction decides exactly as before. Without this the list grew by one entry per executed
    /// request for as long as fewer than `clientCountMax` clients were active (a 600 s `sintra bench` showed
    /// the replicas' resident memory rising linearly); now it holds at most about twice the client table.
    private mutating func compactRecency() {
        var live = [(client: [UInt8], position: UInt64)]()
        live.reserveCapacity(lastByClient.count)
        for index in recencyHead..<recency.count {
            let entry = recency[index]
            if lastByClient[entry.client]?.position == entry.position { live.append(entry) }
        }
        recency = live
        recencyHead = 0
    }

    /// Entries kept for eviction order (live and stale); bounded by about twice the client table.
    var recencyCount: Int { recency.count - recencyHead }

    /// The bytes of the replies kept for resending, all clients together (at most `clientCountMax ·
    /// cachedReplyBytesMax`).
    var cachedReplyBytes: Int { lastByClient.values.reduce(0) { $0 + ($1.reply?.count ?? 0) } }

    /// The last executed sequence number of a client, if known.
    public func lastSequence(of client: [UInt8]) -> UInt64? { lastByClient[client]?.sequence }

    /// Replies a snapshot may hold per client: a state machine's reply is bounded by its own format; this
    /// only stops a corrupted length from allocating without bound.
    public static var replyBytesMax: Int { 16 << 20 }

    /// The reply length a snapshot writes for a reply that was not kept (`cachedReplyBytesMax`): no length
    /// a reply can have (they are at most `replyBytesMax`), so snapshots written before replies were
    /// bounded still read, and a reader from before rejects a newer snapshot with a typed error.
    static var replyNotKeptMarker: UInt32 { .max }

    /// A canonical encoding of the executor: executed count, the client table sorted by last position
    /// (which is also the eviction order), then the machine's snapshot. Two executors that executed the
    /// same requests encode identically, and one restored from it behaves exactly as the original,
    /// evictions included. A table entry is client, sequence, position and the length-prefixed reply, or
    /// `replyNotKeptMarker` in place of the length for a reply not kept.
    public func snapshot() -> [UInt8] {
        let clients = lastByClient.sorted { $0.value.position < $1.value.position }
        let tableBytes = clients.reduce(16) { $0 + 16 + 8 + 8 + 4 + ($1.value.reply?.count ?? 0) }
        var writer = ByteWriter(capacity: tableBytes + (machine.snapshotByteCount ?? 0))
        writer.write(executedCount)
        writer.write(UInt64(clients.count))
        for (client, entry) in clients {
            writer.writeFixed(client)
            writer.write(entry.sequence)
            writer.write(entry.position)
            if let reply = entry.reply {
                writer.writeVariable(reply)
            } else {
                writer.write(Self.replyNotKeptMarker)
            }
        }
        machine.writeSnapshot(into: &writer)
        return writer.bytes
    }

    /// Restores an executor from `snapshot()`; throws on malformed bytes (a table larger than
    /// `clientCountMax`, positions not increasing or not below the executed count). A kept reply longer
    /// than `cachedReplyBytesMax` (a snapshot from before the bound) is dropped as execution would have
    /// dropped it, so the restored table is the one every replica running this code holds.
    public init(snapshot bytes: [UInt8]) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "executor snapshot")
        let executed = try reader.readUInt64()
        let count = try reader.readUInt64()
        guard count <= UInt64(RequestExecutor.clientCountMax) else {
            throw DecodingError(
                .tooLong(maximum: RequestExecutor.clientCountMax, actual: Int(clamping: count)), in: "executor snapshot")
        }
        var table: [[UInt8]: (sequence: UInt64, reply: [UInt8]?, position: UInt64)] = [:]
        var order: [(client: [UInt8], position: UInt64)] = []
        for _ in 0..<count {
            let client = try reader.readFixed(16)
            let sequence = try reader.readUInt64()
            let position = try reader.readUInt64()
            let length = try reader.readUInt32()
            var reply: [UInt8]?
            if length != Self.replyNotKeptMarker {
                guard length <= RequestExecutor.replyBytesMax else {
                    throw DecodingError(
                        .tooLong(maximum: RequestExecutor.replyBytesMax, actual: Int(length)), in: "executor snapshot")
                }
                let bytes = try reader.readFixed(Int(length))
                reply = bytes.count <= RequestExecutor.cachedReplyBytesMax ? bytes : nil
            }
            guard position < executed, order.last.map({ $0.position < position }) ?? true, table[client] == nil else {
                throw DecodingError(.invalidValue("client table out of order"), in: "executor snapshot")
            }
            table[client] = (sequence, reply, position)
            order.append((client, position))
        }
        machine = try Machine(snapshot: reader.readFixed(reader.remainingCount))
        executedCount = executed
        lastByClient = table
        recency = order
    }
}

/// The client side: a result is accepted once t + 1 replicas sent the same one (at least one of them is
/// honest, and honest replicas execute the same requests in the same order); a request is given up as
/// refused once refusals make that impossible or certain enough.
///
/// The counting, with n replicas of which at most t are Byzantine (n ≥ 3t + 1), each replica's first answer
/// counting (except that a reply replaces an earlier refusal: a replica that refused for a full queue may
/// still execute the request when others ordered it):
/// - accepted: t + 1 replies with the same result;
/// - refused, rule 1: t + 1 refusals for the same reason. At least one comes from an honest replica, so t
///   Byzantine replicas cannot make a client give up: a single false refusal (or t) leaves it waiting. For
///   a final reason (`RefusalReason.isRetryable` false) the request will not be executed (the honest
///   replica's verdict is the one every honest replica reaches); for a retryable one the outcome is unknown.
/// - refused, rule 2 (needs `replicas`): when no result can reach t + 1 any more, that is when the most
///   frequent result's count plus the replicas that have not answered is at most t. Without replies this
///   is n − t refusals, at least n − 2t ≥ t + 1 of them honest, so again t Byzantine refusals never suffice.
///   The reason given is the most frequent retryable one if any refusal is retryable (the outcome is not
///   known then), otherwise the most frequent one (ties: the lowest reason code).
/// Rule 2 gives up only if at least one refusal came; without any the client waits for its timeout.
///
/// A client that sends the same request again after a retryable verdict (`SintraClient.RetryPolicy`) calls
/// `forgetRetryableRefusals` first: replies stay (same request, same sequence), final refusals stay (the
/// replica will give the same one), and the replicas that refused for a retryable reason count afresh.
public struct ReplyCollector: Sendable {
    /// What the answers so far decide.
    public enum Verdict: Sendable, Equatable {
        /// t + 1 replicas sent this result.
        case accepted([UInt8])
        /// The request is refused for this reason (rules above).
        case refused(RefusalReason)
    }

    public let faulty: Int
    public let sequence: UInt64
    /// The replicas the client hears from (n), for rule 2; nil turns rule 2 off.
    public let replicas: Int?
    private var replies: [Int: [UInt8]] = [:]
    private var refusals: [Int: RefusalReason] = [:]

    public init(faulty: Int, sequence: UInt64, replicas: Int? = nil) {
        self.faulty = faulty
        self.sequence = sequence
        self.replicas = replicas
    }

    /// Records replica `replica`'s reply (its first one counts, and replaces a refusal it sent before);
    /// returns the accepted result once t + 1 replicas agree.
    public mutating func add(_ reply: ClientReply, from replica: Int) -> [UInt8]? {
        guard reply.sequence == sequence, replies[replica] == nil else { return accepted }
        replies[replica] = reply.result
        refusals[replica] = nil
        return accepted
    }

    /// Records replica `replica`'s refusal (ignored if it answered before); returns the verdict, if any.
    public mutating func add(_ refusal: ClientRefusal, from replica: Int) -> Verdict? {
        guard refusal.sequence == sequence, replies[replica] == nil, refusals[replica] == nil else { return verdict }
        refusals[replica] = refusal.reason
        return verdict
    }

    public var accepted: [UInt8]? {
        var counts: [[UInt8]: Int] = [:]
        for replica in replies.keys.sorted() {
            let result = replies[replica]!
            counts[result, default: 0] += 1
            if counts[result]! >= faulty + 1 { return result }
        }
        return nil
    }

    /// The verdict of the answers so far: accepted, refused, or nil (keep waiting).
    public var verdict: Verdict? {
        if let accepted { return .accepted(accepted) }
        guard !refusals.isEmpty else { return nil }
        var counts: [RefusalReason: Int] = [:]
        for reason in refusals.values { counts[reason, default: 0] += 1 }
        // Retryable reasons first: if a retryable and a final reason both reach t + 1, the outcome is unknown.
        let ordered = RefusalReason.allCases.sorted { ($0.isRetryable ? 0 : 1, $0.rawValue) < ($1.isRetryable ? 0 : 1, $1.rawValue) }
        if let reason = ordered.first(where: { counts[$0, default: 0] >= faulty + 1 }) { return .refused(reason) }
        guard let replicas else { return nil }
        var resultCounts: [[UInt8]: Int] = [:]
        for result in replies.values { resultCounts[result, default: 0] += 1 }
        let unanswered = replicas - replies.count - refusals.count
        guard (resultCounts.values.max() ?? 0) + max(0, unanswered) <= faulty else { return nil }
        let retryable = ordered.filter { $0.isRetryable && counts[$0, default: 0] > 0 }
        let candidates = retryable.isEmpty ? RefusalReason.allCases : retryable
        let most = candidates.map { counts[$0, default: 0] }.max() ?? 0
        return candidates.first { counts[$0, default: 0] == most }.map { .refused($0) }
    }

    /// Drops the retryable refusals, before the same request is sent again: those replicas' next answers count.
    public mutating func forgetRetryableRefusals() {
        refusals = refusals.filter { !$0.value.isRetryable }
    }

    /// Whether `replica` replied (sending it the request again is of no use).
    public func hasReplied(_ replica: Int) -> Bool { replies[replica] != nil }

    /// Replicas that replied.
    public var replyCount: Int { replies.count }
    /// Replicas that refused (and did not reply since).
    public var refusalCount: Int { refusals.count }
}
