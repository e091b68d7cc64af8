import NIOCore
import SintraCore

/// The unit on a TLS connection between two replicas: a 4-byte big-endian length, then that many bytes
/// holding one tag byte and the record's fields (STYLE.md, conventions 3).
///
/// A connection carries one direction of one reliable link: the dialing replica (the link's sender) sends
/// `hello` once and then `data`; the accepting replica (the receiver) answers with `acknowledgement`s only.
enum LinkRecord: Equatable {
    /// The first record of a connection, from the link's sender.
    case hello(Hello)
    /// The receiver has delivered every data record of `incarnation` up to and including `delivered`.
    case acknowledgement(incarnation: UInt64, delivered: UInt64)
    /// One encoded `Frame` with its link sequence number (1, 2, 3, … per sender incarnation).
    case data(sequence: UInt64, frame: ByteBuffer)

    /// The version of the link protocol, in every `hello`.
    static let version: UInt8 = 1
    /// Bytes of the length prefix.
    static let lengthBytes = 4
    /// The largest record after the length prefix: a data record holding a largest frame.
    static let recordBytesMax = 1 + 8 + Frame.frameBytesMax

    enum Tag: UInt8 {
        case hello = 0
        case acknowledgement = 1
        case data = 2
    }

    /// What a link's sender says first: who it is, who it means to reach, and where its unacknowledged
    /// messages begin.
    struct Hello: Equatable {
        static let bytes = 1 + 16 + 2 + 2 + 8 + 8

        let clusterIdentifier: [UInt8]
        let sender: Int
        let receiver: Int
        /// Chosen at random by the sender on each start, so the receiver can tell a restarted sender (whose
        /// sequence numbers begin again at 1) from a reconnecting one.
        let incarnation: UInt64
        /// The sequence number of the oldest message the sender still holds.
        let firstSequence: UInt64
    }

    /// The length-prefixed record in a new buffer.
    func encoded(allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: LinkRecord.lengthBytes + Hello.bytes + 1)
        write(to: &buffer)
        return buffer
    }

    /// Appends the length-prefixed record to `buffer`.
    func write(to buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        switch self {
        case .hello(let hello):
            buffer.writeInteger(Tag.hello.rawValue)
            buffer.writeInteger(LinkRecord.version)
            buffer.writeBytes(hello.clusterIdentifier)
            buffer.writeInteger(UInt16(hello.sender))
            buffer.writeInteger(UInt16(hello.receiver))
            buffer.writeInteger(hello.incarnation)
            buffer.writeInteger(hello.firstSequence)
        case .acknowledgement(let incarnation, let delivered):
            buffer.writeInteger(Tag.acknowledgement.rawValue)
            buffer.writeInteger(incarnation)
            buffer.writeInteger(delivered)
        case .data(let sequence, var frame):
            buffer.writeInteger(Tag.data.rawValue)
            buffer.writeInteger(sequence)
            buffer.writeBuffer(&frame)
        }
        let length = buffer.writerIndex - lengthIndex - LinkRecord.lengthBytes
        precondition(length <= LinkRecord.recordBytesMax, "record exceeds recordBytesMax")
        buffer.setInteger(UInt32(length), at: lengthIndex)
    }

    /// A data record for `frame` as one buffer, ready to be written (and rewritten after a reconnect).
    static func dataRecord(sequence: UInt64, frame: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: lengthBytes + 9 + frame.count)
        buffer.writeInteger(UInt32(1 + 8 + frame.count))
        buffer.writeInteger(Tag.data.rawValue)
        buffer.writeInteger(sequence)
        buffer.writeBytes(frame)
        return buffer
    }

    /// Parses the body of one record (without its length prefix); every byte must be used.
    init(body: inout ByteBuffer) throws(LinkProtocolError) {
        guard let tagByte = body.readInteger(as: UInt8.self), let tag = Tag(rawValue: tagByte) else {
            throw .malformedRecord("unknown or missing tag")
        }
        switch tag {
        case .hello:
            guard body.readableBytes == Hello.bytes,
                let version = body.readInteger(as: UInt8.self),
                let cluster = body.readBytes(length: 16),
                let sender = body.readInteger(as: UInt16.self),
                let receiver = body.readInteger(as: UInt16.self),
                let incarnation = body.readInteger(as: UInt64.self),
                let firstSequence = body.readInteger(as: UInt64.self)
            else { throw .malformedRecord("hello of the wrong length") }
            guard version == LinkRecord.version else { throw .malformedRecord("unsupported link version \(version)") }
            guard firstSequence >= 1 else { throw .malformedRecord("sequence numbers begin at 1") }
            self = .hello(Hello(
                clusterIdentifier: cluster, sender: Int(sender), receiver: Int(receiver), incarnation: incarnation,
                firstSequence: firstSequence))
        case .acknowledgement:
            guard body.readableBytes == 16,
                let incarnation = body.readInteger(as: UInt64.self),
                let delivered = body.readInteger(as: UInt64.self)
            else { throw .malformedRecord("acknowledgement of the wrong length") }
            self = .acknowledgement(incarnation: incarnation, delivered: delivered)
        case .data:
            guard let sequence = body.readInteger(as: UInt64.self), sequence >= 1 else {
                throw .malformedRecord("data record without a valid sequence number")
            }
            self = .data(sequence: sequence, frame: body.readSlice(length: body.readableBytes) ?? ByteBuffer())
        }
    }
}

/// Splits the byte stream of a connection into `LinkRecord`s. It never traps on peer input: a length of zero
/// or above `LinkRecord.recordBytesMax`, or a record that does not parse, throws `LinkProtocolError`, and the
/// connection's handler closes the connection and records the event. A length is checked before its bytes
/// are awaited, so a peer cannot make the decoder buffer more than one largest record.
struct LinkRecordDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = LinkRecord

    mutating func decode(buffer: inout ByteBuffer) throws -> LinkRecord? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length >= 1, length <= LinkRecord.recordBytesMax else {
            throw LinkProtocolError.oversizedRecord(Int(length))
        }
        guard buffer.readableBytes >= LinkRecord.lengthBytes + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: LinkRecord.lengthBytes)
        guard var body = buffer.readSlice(length: Int(length)) else { return nil }
        return try LinkRecord(body: &body)
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> LinkRecord? {
        try decode(buffer: &buffer)
    }
}

/// Why a connection was closed because of what the peer sent. Every case is a peer fault (or a bug at the
/// peer), never a local error.
enum LinkProtocolError: Error, Equatable, CustomStringConvertible {
    /// A length prefix of zero or above `LinkRecord.recordBytesMax`.
    case oversizedRecord(Int)
    /// A record that does not parse.
    case malformedRecord(String)
    /// A well-formed record that breaks the link protocol (wrong first record, a gap in sequence numbers,
    /// an acknowledgement of messages never sent, a frame that does not decode or names another sender).
    case violation(String)

    var description: String {
        switch self {
        case .oversizedRecord(let length): "record length \(length) outside 1…\(LinkRecord.recordBytesMax)"
        case .malformedRecord(let reason): "malformed record: \(reason)"
        case .violation(let reason): "link protocol violation: \(reason)"
        }
    }
}
