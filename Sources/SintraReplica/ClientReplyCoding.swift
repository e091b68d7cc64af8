import SintraCrypto

extension ClientReply {
    /// Results a decoder accepts: the largest operation result plus room for its framing.
    public static let resultBytesMax = 1 << 21

    /// The canonical encoding: client (16 bytes), sequence, length-prefixed result.
    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: result.count + 32)
        writer.writeFixed(client)
        writer.write(sequence)
        writer.writeVariable(result)
        return writer.bytes
    }

    /// Decodes a reply; throws on anything but a canonical encoding.
    public init(encoded bytes: some Sequence<UInt8>) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "client reply")
        let client = try reader.readFixed(16)
        let sequence = try reader.readUInt64()
        let result = try reader.readVariable(maximum: ClientReply.resultBytesMax)
        try reader.finish()
        self.init(client: client, sequence: sequence, result: result)
    }
}

/// A replica's answer to a status query: what `sintra status` shows. Unauthenticated and read-only: it
/// reveals progress counters and the state digest, never state.
public struct ReplicaStatus: Sendable, Equatable {
    /// The replica's index (1…n).
    public let member: Int
    /// The atomic broadcast round being decided.
    public let round: UInt64
    /// Requests executed so far.
    public let executedCount: UInt64
    /// Batches delivered so far.
    public let batchCount: UInt64
    /// SHA-256 of the application state (32 bytes).
    public let stateDigest: [UInt8]

    public init(member: Int, round: UInt64, executedCount: UInt64, batchCount: UInt64, stateDigest: [UInt8]) {
        precondition(stateDigest.count == 32, "state digests are 32 bytes")
        self.member = member
        self.round = round
        self.executedCount = executedCount
        self.batchCount = batchCount
        self.stateDigest = stateDigest
    }
}

/// A record a client sends to a replica's client port: one tag byte, then the body.
public enum ClientRecord: Sendable, Equatable {
    /// A signed request to order and execute (tag 1).
    case request(ClientRequest)
    /// Asks for the replica's `ReplicaStatus` (tag 2, no body).
    case statusQuery

    public var encoded: [UInt8] {
        switch self {
        case .request(let request): [1] + request.encoded
        case .statusQuery: [2]
        }
    }

    /// Decodes a record; throws on an unknown tag or a body that is not canonical.
    public init(encoded bytes: [UInt8]) throws(DecodingError) {
        switch bytes.first {
        case 1: self = .request(try ClientRequest(encoded: bytes.dropFirst()))
        case 2:
            guard bytes.count == 1 else {
                throw DecodingError(.trailingBytes(count: bytes.count - 1), in: "status query")
            }
            self = .statusQuery
        default: throw DecodingError(.invalidValue("unknown client record tag"), in: "client record")
        }
    }
}

/// A record a replica sends to a client: one tag byte, then the body.
///
/// Tags 1 and 2 are the original format; tag 3 (refusal) was added later. A client that does not know a tag
/// drops the record (`SintraClient` and `ClientMultiplexer` ignore records that do not decode), so a replica
/// that sends refusals stays compatible with older clients: they time out as before.
public enum ReplicaRecord: Sendable, Equatable {
    /// The reply to a request (tag 1).
    case reply(ClientReply)
    /// The answer to a status query (tag 2).
    case status(ReplicaStatus)
    /// A request this replica refused (tag 3): no reply to it will come from this replica.
    case refusal(ClientRefusal)

    public var encoded: [UInt8] {
        switch self {
        case .reply(let reply): return [1] + reply.encoded
        case .refusal(let refusal): return [3] + refusal.encoded
        case .status(let status):
            var writer = ByteWriter(capacity: 64)
            writer.write(UInt8(2))
            writer.write(UInt16(status.member))
            writer.write(status.round)
            writer.write(status.executedCount)
            writer.write(status.batchCount)
            writer.writeFixed(status.stateDigest)
            return writer.bytes
        }
    }

    /// Decodes a record; throws on an unknown tag or a body that is not canonical.
    public init(encoded bytes: [UInt8]) throws(DecodingError) {
        switch bytes.first {
        case 1: self = .reply(try ClientReply(encoded: bytes.dropFirst()))
        case 2:
            var reader = ByteReader(bytes.dropFirst(), context: "replica status")
            let member = Int(try reader.readUInt16())
            let round = try reader.readUInt64()
            let executed = try reader.readUInt64()
            let batches = try reader.readUInt64()
            let digest = try reader.readFixed(32)
            try reader.finish()
            self = .status(
                ReplicaStatus(
                    member: member, round: round, executedCount: executed, batchCount: batches, stateDigest: digest))
        case 3: self = .refusal(try ClientRefusal(encoded: bytes.dropFirst()))
        default: throw DecodingError(.invalidValue("unknown replica record tag"), in: "replica record")
        }
    }
}

/// Why a replica refused a client request: one byte on the wire (`ClientRefusal`).
///
/// Retryable reasons (`queueFull`, `unavailable`, `overloaded`) describe the replica, not the request: the
/// same request may be taken later, or by other replicas, so its outcome is unknown, and a client may send
/// the same signed request again (replicas deduplicate it by client and sequence; `SintraClient` does, with
/// backoff). Final reasons describe the request, and every honest replica decides them alike: the signature
/// and key checks and the size bound are deterministic functions of the bytes, and `stale` means this
/// replica executed a later request of the client, which every honest replica executes in the same order,
/// so the refused one is never executed. `replyNotKept` is final too, but says the request was executed:
/// its result was sent once and is too long to be kept for a repeat.
///
/// Codes are never reused. A client that does not know a code (one older than the replica) fails to decode
/// the refusal (`ClientRefusal.init(encoded:)` throws a `DecodingError`) and drops the record, so it waits
/// for its timeout as it did before refusals existed; it never traps.
public enum RefusalReason: UInt8, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    /// The replica's admission or atomic broadcast queue is full: it is overloaded. Retryable.
    case queueFull = 1
    /// The request is larger than a replica queues (`AtomicBroadcast.Limits.submittableBytesMax`). Final.
    case tooLarge = 2
    /// The signature does not verify for this cluster, key and fields. Final.
    case invalidSignature = 3
    /// The public key is not the canonical encoding of a point of prime order. Final.
    case invalidPublicKey = 4
    /// The record is no canonical `ClientRequest` encoding. Final.
    case malformed = 5
    /// The replica is shutting down, or stopped (its store failed, or its state diverged). Retryable.
    case unavailable = 6
    /// The replica executed a later request of this client: this one will never be executed. Final.
    case stale = 7
    /// The client listener's limits were reached: the connection has `requestsInFlightMax` requests
    /// unanswered, or `clientsMax` other clients have replies routed (`ClientListener.Options`). The request
    /// was not submitted at this replica. Retryable. (Code 8, added after the first seven: see above for
    /// what older clients do with it.)
    case overloaded = 8
    /// The request was executed, and it is its client's latest, but its result was longer than replicas
    /// keep for resending (`RequestExecutor.cachedReplyBytesMax`): the replicas sent it once, at execution,
    /// and cannot send it again. Final: the request is not executed again. Every honest replica decides it
    /// alike (the bound is on the result's length, the same at every replica). (Code 9, added later.)
    case replyNotKept = 9

    /// The reason for a request that failed its authentication.
    public init(_ error: ClientRequestError) {
        switch error {
        case .malformed: self = .malformed
        case .invalidPublicKey: self = .invalidPublicKey
        case .invalidSignature: self = .invalidSignature
        }
    }

    /// Whether the refusal says something about the replica (try again later; the request may still be
    /// executed) rather than about the request (it will not be executed).
    public var isRetryable: Bool { self == .queueFull || self == .unavailable || self == .overloaded }

    /// A short label for logs, metrics and JSON.
    public var label: String {
        switch self {
        case .queueFull: "queue-full"
        case .tooLarge: "too-large"
        case .invalidSignature: "invalid-signature"
        case .invalidPublicKey: "invalid-public-key"
        case .malformed: "malformed"
        case .unavailable: "unavailable"
        case .stale: "stale"
        case .overloaded: "overloaded"
        case .replyNotKept: "reply-not-kept"
        }
    }

    public var description: String { label }
}

/// A replica's refusal of one request (`ReplicaRecord.refusal`): the client, the sequence number, the reason.
///
/// Encoding: client (16 bytes), sequence (8 bytes, big-endian), reason (1 byte); 25 bytes. A refusal is not
/// signed: it travels on the TLS connection the refused request came on (the client authenticated the
/// replica by its pinned key), and only on that one, never to a connection found by client identifier, so
/// a forged request cannot make a replica send refusals to another client's connection. A Byzantine replica
/// can still refuse falsely; a client gives up only on refusals from t + 1 replicas (`ReplyCollector`).
public struct ClientRefusal: Sendable, Hashable {
    public let client: [UInt8]
    public let sequence: UInt64
    public let reason: RefusalReason

    public init(client: [UInt8], sequence: UInt64, reason: RefusalReason) {
        precondition(client.count == 16, "client identifiers are 16 bytes")
        self.client = client
        self.sequence = sequence
        self.reason = reason
    }

    /// The refusal of a request record whose body does not decode as a `ClientRequest`, if the body holds at
    /// least a public key and a sequence number (the client's identifier derives from the key bytes, valid or
    /// not): `.tooLarge` if its operation's length is over `ClientRequest.operationBytesMax`, else `.malformed`.
    /// Nil for shorter bodies: there is no client to address.
    public init?(undecodableRequest body: some Collection<UInt8>) {
        var reader = ByteReader(body.prefix(ClientRequest.publicKeyBytes + 12), context: "refused request")
        guard let publicKey = try? reader.readFixed(ClientRequest.publicKeyBytes),
            let sequence = try? reader.readUInt64()
        else { return nil }
        let length = (try? reader.readUInt32()).map(Int.init) ?? 0
        self.init(
            client: ClientRequest.clientIdentifier(of: publicKey), sequence: sequence,
            reason: length > ClientRequest.operationBytesMax ? .tooLarge : .malformed)
    }

    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 25)
        writer.writeFixed(client)
        writer.write(sequence)
        writer.write(reason.rawValue)
        return writer.bytes
    }

    /// Decodes a refusal; throws on an unknown reason or anything but the canonical 25 bytes.
    public init(encoded bytes: some Sequence<UInt8>) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "client refusal")
        let client = try reader.readFixed(16)
        let sequence = try reader.readUInt64()
        let code = try reader.readUInt8()
        try reader.finish()
        guard let reason = RefusalReason(rawValue: code) else {
            throw DecodingError(.invalidValue("unknown refusal reason \(code)"), in: "client refusal")
        }
        self.init(client: client, sequence: sequence, reason: reason)
    }
}
