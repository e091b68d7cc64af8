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
