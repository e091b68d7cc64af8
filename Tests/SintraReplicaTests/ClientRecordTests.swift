import SintraCrypto
import Testing

@testable import SintraReplica

/// The client port's records: every case round-trips, and anything else is refused with a typed error.
@Suite struct ClientRecordTests {
    let key = (try? ClientKey(seed: [UInt8](repeating: 4, count: 32)))!
    let cluster = [UInt8](repeating: 2, count: 16)

    @Test func everyRecordRoundTrips() throws {
        let request = key.request(clusterIdentifier: cluster, sequence: 42, operation: [1, 2, 3])
        for record in [ClientRecord.request(request), .statusQuery] {
            #expect(try ClientRecord(encoded: record.encoded) == record)
        }
        let status = ReplicaStatus(
            member: 3, round: 17, executedCount: 1234, batchCount: 9, stateDigest: [UInt8](repeating: 7, count: 32))
        let reply = ClientReply(client: key.client, sequence: 42, result: [9])
        for record in [ReplicaRecord.reply(reply), .status(status)] {
            #expect(try ReplicaRecord(encoded: record.encoded) == record)
        }
        #expect(try ClientRequest(encoded: request.encoded) == request)
        #expect(request.encoded.count == 32 + 8 + 4 + 3 + 64)
    }

    @Test func malformedRecordsAreRefused() {
        let request = key.request(clusterIdentifier: cluster, sequence: 1, operation: [])
        let bad: [[UInt8]] = [
            [], [0], [3], [2, 0], [1] + request.encoded.dropLast(), [1] + request.encoded + [0],
        ]
        for bytes in bad {
            #expect(throws: DecodingError.self) { try ClientRecord(encoded: bytes) }
        }
        for bytes in [[], [0], [2, 0, 1], [1, 2, 3]] as [[UInt8]] {
            #expect(throws: DecodingError.self) { try ReplicaRecord(encoded: bytes) }
        }
    }

    /// Signing is deterministic (RFC 8032) and covers every field: the identifier follows the key.
    @Test func aRequestVerifiesOnlyAsSigned() throws {
        let request = key.request(clusterIdentifier: cluster, sequence: 5, operation: [8])
        try request.verify(clusterIdentifier: cluster)
        #expect(request == key.request(clusterIdentifier: cluster, sequence: 5, operation: [8]))
        #expect(throws: ClientRequestError.invalidSignature) {
            try request.verify(clusterIdentifier: [UInt8](repeating: 9, count: 16))
        }
        var flipped = request.signature
        flipped[3] ^= 1
        let tampered = ClientRequest(
            publicKey: request.publicKey, sequence: 5, operation: [8], signature: flipped)
        #expect(throws: ClientRequestError.invalidSignature) { try tampered.verify(clusterIdentifier: cluster) }
        #expect(request.client == key.client)
        #expect(request.client.count == 16)
    }
}
