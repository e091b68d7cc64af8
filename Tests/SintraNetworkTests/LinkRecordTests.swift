import NIOCore
import SintraCore
import Testing

@testable import SintraNetwork

@Suite struct LinkRecordTests {
    private func decodeAll(_ bytes: [UInt8]) throws -> [LinkRecord] {
        var decoder = LinkRecordDecoder()
        var buffer = ByteBuffer(bytes: bytes)
        var records = [LinkRecord]()
        while let record = try decoder.decode(buffer: &buffer) {
            records.append(record)
        }
        return records
    }

    @Test func everyRecordRoundTrips() throws {
        let records: [LinkRecord] = [
            .hello(LinkRecord.Hello(
                clusterIdentifier: Array(0..<16), sender: 2, receiver: 3, incarnation: 0xdead_beef, firstSequence: 17)),
            .acknowledgement(incarnation: 5, delivered: 1 << 40),
            .data(sequence: 9, frame: ByteBuffer(bytes: [1, 2, 3])),
            .data(sequence: 10, frame: ByteBuffer()),
        ]
        var buffer = ByteBuffer()
        for record in records {
            record.write(to: &buffer)
        }
        #expect(try decodeAll(Array(buffer.readableBytesView)) == records)
    }

    @Test func aPartialRecordWaitsForTheRest() throws {
        var buffer = ByteBuffer()
        LinkRecord.acknowledgement(incarnation: 1, delivered: 2).write(to: &buffer)
        let bytes = Array(buffer.readableBytesView)
        #expect(try decodeAll(Array(bytes.dropLast())).isEmpty)
        #expect(try decodeAll(Array(bytes.prefix(3))).isEmpty)
    }

    @Test(arguments: [
        [0, 0, 0, 0],  // length zero
        [0xff, 0xff, 0xff, 0xff],  // far beyond the maximum
        [0x00, 0x40, 0x00, 0x0a],  // one above recordBytesMax
    ] as [[UInt8]])
    func anOutOfRangeLengthIsRejectedBeforeItsBytesArrive(_ prefix: [UInt8]) {
        #expect(throws: LinkProtocolError.self) { try decodeAll(prefix) }
    }

    @Test func malformedRecordsThrow() {
        let malformed: [[UInt8]] = [
            [0, 0, 0, 1, 9],  // unknown tag
            [0, 0, 0, 3, 1, 0, 0],  // short acknowledgement
            [0, 0, 0, 5, 2, 0, 0, 0, 1],  // short sequence number
            [0, 0, 0, 9, 2, 0, 0, 0, 0, 0, 0, 0, 0],  // sequence number 0
            [0, 0, 0, 2, 0, 1],  // short hello
        ]
        for bytes in malformed {
            #expect(throws: LinkProtocolError.self, "\(bytes)") { try decodeAll(bytes) }
        }
    }

    /// Random bytes never trap the decoder: each input either parses, waits for more, or throws.
    @Test func randomBytesNeverTrap() {
        var random = ProtocolRandom.seeded(20_251_125)
        for _ in 0..<2000 {
            let count = Int(random.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if count > 4, random.next() % 2 == 0 {
                // Mostly plausible lengths, to reach the record parsers.
                bytes[0] = 0
                bytes[1] = 0
                bytes[2] = 0
                bytes[3] = UInt8(count - 4)
            }
            _ = try? decodeAll(bytes)
        }
    }
}

@Suite struct BackoffTests {
    /// The redial delay doubles from the minimum, never exceeds the maximum, and keeps at least half.
    @Test func theDelayGrowsExponentiallyAndStaysBounded() {
        var random = ProtocolRandom.seeded(7)
        let minimum = TimeAmount.milliseconds(50)
        let maximum = TimeAmount.seconds(5)
        for failures in 0..<80 {
            let nominal = min(maximum.nanoseconds, minimum.nanoseconds << min(failures, 30))
            for _ in 0..<20 {
                let delay = OutboundLink.backoffDelay(
                    failuresInARow: failures, minimum: minimum, maximum: maximum, using: &random)
                #expect(delay.nanoseconds >= nominal / 2 && delay.nanoseconds < max(nominal, 2))
            }
        }
    }
}
