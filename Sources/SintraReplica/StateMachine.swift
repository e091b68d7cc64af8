import SintraCrypto

/// An application replicated by Sintra. Every replica applies the same requests in the same order, so
/// `apply` must be deterministic: no clocks, randomness, or iteration over unordered collections.
public protocol StateMachine: Sendable {
    /// Applies one ordered request and returns the reply sent to its client. Malformed operations get an
    /// error reply; they never trap, because a Byzantine client can submit anything.
    mutating func apply(_ operation: [UInt8]) -> [UInt8]

    /// A canonical encoding of the whole state, identical on every replica in the same state.
    func snapshot() -> [UInt8]

    /// Restores a state from `snapshot()` output; throws on malformed bytes.
    init(snapshot: [UInt8]) throws(DecodingError)

    /// SHA-256 of the canonical state: equal digests mean equal states.
    var digest: [UInt8] { get }
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
public struct RequestExecutor<Machine: StateMachine>: Sendable {
    public static var clientCountMax: Int { 100_000 }

    public private(set) var machine: Machine
    /// Requests executed so far (the position of the next one).
    public private(set) var executedCount: UInt64 = 0
    private var lastByClient: [[UInt8]: (sequence: UInt64, reply: [UInt8], position: UInt64)] = [:]
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
    }

    /// Applies one delivered request (in delivery order).
    public mutating func execute(_ request: ClientRequest) -> Outcome {
        if let last = lastByClient[request.client], request.sequence <= last.sequence {
            guard request.sequence == last.sequence else { return .stale }
            return .duplicate(ClientReply(client: request.client, sequence: request.sequence, result: last.reply))
        }
        let result = machine.apply(request.operation)
        lastByClient[request.client] = (request.sequence, result, executedCount)
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

    /// The last executed sequence number of a client, if known.
    public func lastSequence(of client: [UInt8]) -> UInt64? { lastByClient[client]?.sequence }

    /// Replies a snapshot may hold per client: a state machine's reply is bounded by its own format; this
    /// only stops a corrupted length from allocating without bound.
    public static var replyBytesMax: Int { 16 << 20 }

    /// A canonical encoding of the executor: executed count, the client table sorted by last position
    /// (which is also the eviction order), then the machine's snapshot. Two executors that executed the
    /// same requests encode identically, and one restored from it behaves exactly as the original,
    /// evictions included.
    public func snapshot() -> [UInt8] {
        var writer = ByteWriter()
        writer.write(executedCount)
        let clients = lastByClient.sorted { $0.value.position < $1.value.position }
        writer.write(UInt64(clients.count))
        for (client, entry) in clients {
            writer.writeFixed(client)
            writer.write(entry.sequence)
            writer.write(entry.position)
            writer.writeVariable(entry.reply)
        }
        writer.writeFixed(machine.snapshot())
        return writer.bytes
    }

    /// Restores an executor from `snapshot()`; throws on malformed bytes (a table larger than
    /// `clientCountMax`, positions not increasing or not below the executed count).
    public init(snapshot bytes: [UInt8]) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "executor snapshot")
        let executed = try reader.readUInt64()
        let count = try reader.readUInt64()
        guard count <= UInt64(RequestExecutor.clientCountMax) else {
            throw DecodingError(
                .tooLong(maximum: RequestExecutor.clientCountMax, actual: Int(clamping: count)), in: "executor snapshot")
        }
        var table: [[UInt8]: (sequence: UInt64, reply: [UInt8], position: UInt64)] = [:]
        var order: [(client: [UInt8], position: UInt64)] = []
        for _ in 0..<count {
            let client = try reader.readFixed(16)
            let sequence = try reader.readUInt64()
            let position = try reader.readUInt64()
            let reply = try reader.readVariable(maximum: RequestExecutor.replyBytesMax)
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
/// honest, and honest replicas execute the same requests in the same order).
public struct ReplyCollector: Sendable {
    public let faulty: Int
    public let sequence: UInt64
    private var replies: [Int: [UInt8]] = [:]

    public init(faulty: Int, sequence: UInt64) {
        self.faulty = faulty
        self.sequence = sequence
    }

    /// Records replica `replica`'s reply (its first one counts); returns the accepted result once t + 1
    /// replicas agree.
    public mutating func add(_ reply: ClientReply, from replica: Int) -> [UInt8]? {
        guard reply.sequence == sequence, replies[replica] == nil else { return accepted }
        replies[replica] = reply.result
        return accepted
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

    public var replyCount: Int { replies.count }
}
