import NIOCore
import NIOSSL
import SintraCrypto

/// Where and how clients reach a replica.
///
/// A replica listens for clients on its member port plus `offset` (member 1 on 7001 serves clients on 8001).
/// Clients speak TLS 1.3: the replica presents its identity certificate and the client pins the replica's
/// Ed25519 key from cluster.json; clients present no certificate (each request carries the client's own
/// Ed25519 signature instead, see `ClientRequest`). On the connection, each direction is a sequence of
/// records: a 4-byte big-endian length, then that many bytes (a `ClientRecord` encoding towards the replica,
/// a `ReplicaRecord` encoding back).
public enum ClientPorts {
    /// Added to a member's port to get its client port.
    public static let offset = 1000
    /// The largest record either side accepts: a request with the largest operation, and its tag, key,
    /// sequence, length and signature.
    public static let recordBytesMax = (1 << 20) + 256

    /// The client port of `member`.
    public static func port(of member: ClusterMember) -> Int { member.port + offset }

    /// The TLS context a replica serves clients with: its identity certificate, no client certificate asked.
    public static func serverContext(credentials: IdentityCertificate) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(credentials.certificate)], privateKey: .privateKey(credentials.privateKey))
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.signingSignatureAlgorithms = [.ed25519]
        configuration.certificateVerification = .none
        configuration.shutdownTimeout = .seconds(1)
        return try NIOSSLContext(configuration: configuration)
    }

    /// The TLS context a client dials replicas with; pair it with `pinning(_:)` per connection.
    public static func clientContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.verifySignatureAlgorithms = [.ed25519]
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        configuration.shutdownTimeout = .seconds(1)
        return try NIOSSLContext(configuration: configuration)
    }

    /// A TLS client handler that accepts the replica iff its certificate carries `identityKey` (32 bytes). TLS
    /// 1.3's CertificateVerify proves the replica holds the key.
    public static func clientHandler(context: NIOSSLContext, pinning identityKey: [UInt8]) throws
        -> NIOSSLClientHandler
    {
        let expected = IdentityCertificate.publicKeyInfo(identityKey)
        return try NIOSSLClientHandler(context: context, serverHostname: nil) { certificates, promise in
            let presented = try? certificates.first?.extractPublicKey().toSPKIBytes()
            promise.succeed(presented == expected ? .certificateVerified : .failed)
        }
    }
}

/// Splits a byte stream into length-prefixed records of at most `ClientPorts.recordBytesMax` bytes; a
/// longer length is an error that closes the connection.
public struct ClientRecordDecoder: ByteToMessageDecoder {
    public typealias InboundOut = [UInt8]

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= ClientPorts.recordBytesMax else { throw ClientRecordError() }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let bytes = buffer.readBytes(length: Int(length))!
        context.fireChannelRead(wrapInboundOut(bytes))
        return .continue
    }

    /// Writes one record.
    public static func record(_ bytes: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: bytes.count + 4)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }
}

/// A record longer than `ClientPorts.recordBytesMax`.
public struct ClientRecordError: Error, Sendable {}
