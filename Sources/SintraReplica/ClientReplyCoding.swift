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
public enum ReplicaRecord: Sendable, Equatable {
    /// The reply to a request (tag 1).
    case reply(ClientReply)
    /// The answer to a status query (tag 2).
    case status(ReplicaStatus)

    public var encoded: [UInt8] {
        switch self {
        case .reply(let reply): return [1] + reply.encoded
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
        default: throw DecodingError(.invalidValue("unknown replica record tag"), in: "replica record")
        }
    }
}
