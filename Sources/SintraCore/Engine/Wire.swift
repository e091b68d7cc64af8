import Crypto
import SintraCrypto

/// Sizes a decoder enforces on peer input.
public struct WireLimits: Sendable {
    /// Largest payload of a broadcast or a proposal.
    public let payloadBytesMax: Int
    /// Number of members (bounds certificates and member indices).
    public let memberCount: Int

    public init(payloadBytesMax: Int = 1 << 20, memberCount: Int) {
        self.payloadBytesMax = payloadBytesMax
        self.memberCount = memberCount
    }
}

/// A protocol message with a canonical binary encoding: one tag byte per case, fixed-width big-endian
/// integers, length-prefixed variable fields with maxima (STYLE.md, conventions 3).
public protocol WireMessage: Sendable, Equatable {
    func encode(into writer: inout ByteWriter)
    init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError)
}

extension WireMessage {
    public var encoded: [UInt8] {
        var writer = ByteWriter()
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes a whole message; trailing bytes are an error.
    public init(encoded bytes: some Sequence<UInt8>, limits: WireLimits) throws(DecodingError) {
        var reader = ByteReader(bytes, context: String(describing: Self.self))
        self = try Self(from: &reader, limits: limits)
        try reader.finish()
    }
}

extension ByteReader {
    /// A member index in 1…memberCount.
    public mutating func readMember(limits: WireLimits) throws(DecodingError) -> Int {
        let index = Int(try readUInt16())
        guard index >= 1, index <= limits.memberCount else {
            throw DecodingError(.invalidValue("member index \(index) out of range"), in: context)
        }
        return index
    }

    /// A 32-byte digest.
    public mutating func readDigest() throws(DecodingError) -> [UInt8] {
        try readFixed(32)
    }

    /// A quorum certificate with at most one signature per member.
    public mutating func readCertificate(limits: WireLimits) throws(DecodingError) -> QuorumCertificate {
        let count = Int(try readUInt16())
        guard count <= limits.memberCount else {
            throw DecodingError(.tooLong(maximum: limits.memberCount, actual: count), in: context)
        }
        var writer = ByteWriter(capacity: 2 + count * 66)
        writer.write(UInt16(count))
        writer.writeFixed(try readFixed(count * (2 + QuorumCertificate.signatureBytes)))
        return try QuorumCertificate(encoded: writer.bytes, memberCount: limits.memberCount)
    }

    /// A tag byte that must name one of `count` cases.
    public mutating func readTag(below count: UInt8) throws(DecodingError) -> UInt8 {
        let tag = try readUInt8()
        guard tag < count else { throw DecodingError(.invalidValue("unknown message tag \(tag)"), in: context) }
        return tag
    }
}

/// The unit on a link: a header naming the format version, the cluster and the sender, the path of the
/// top-level instance, and the encoded message.
public struct Frame: Sendable, Equatable {
    public static let version: UInt8 = 1
    public static let frameBytesMax = 4 << 20

    public let clusterIdentifier: [UInt8]
    public let sender: Int
    public let path: InstancePath
    public let body: [UInt8]

    public init(clusterIdentifier: [UInt8], sender: Int, path: InstancePath, body: [UInt8]) {
        precondition(clusterIdentifier.count == 16, "cluster identifiers are 16 bytes")
        self.clusterIdentifier = clusterIdentifier
        self.sender = sender
        self.path = path
        self.body = body
    }

    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: body.count + 64)
        writer.write(Frame.version)
        writer.writeFixed(clusterIdentifier)
        writer.write(UInt16(sender))
        path.encode(into: &writer)
        writer.writeVariable(body)
        return writer.bytes
    }

    /// Decodes and checks the header against the expected cluster.
    public init(encoded bytes: [UInt8], clusterIdentifier expected: [UInt8], limits: WireLimits) throws(DecodingError) {
        try self.init(
            encodedCount: bytes.count, header: Array(bytes.prefix(Frame.headerBytesMax)), body: { Array(bytes[$0]) },
            clusterIdentifier: expected, limits: limits)
    }

    /// The longest header (everything before the body's bytes): version, cluster, sender, the deepest path
    /// with the longest names, the body's length.
    public static let headerBytesMax =
        1 + 16 + 2 + 1 + InstancePath.componentCountMax * (1 + InstancePath.nameBytesMax + 1 + 8) + 4

    /// Decodes a frame of `encodedCount` bytes held elsewhere (a receive buffer): `header` is its first
    /// min(`encodedCount`, `headerBytesMax`) bytes and `body` copies out the given range of the frame's bytes.
    /// Why: decoding from one array copied the frame out of the receive buffer and then its body out of that
    /// array; this copies the body once (the header is at most `headerBytesMax` bytes).
    public init(
        encodedCount: Int, header: [UInt8], body: (Range<Int>) -> [UInt8], clusterIdentifier expected: [UInt8],
        limits: WireLimits
    ) throws(DecodingError) {
        guard encodedCount <= Frame.frameBytesMax else {
            throw DecodingError(.tooLong(maximum: Frame.frameBytesMax, actual: encodedCount), in: "frame")
        }
        precondition(header.count == min(encodedCount, Frame.headerBytesMax), "the header is the frame's first bytes")
        var reader = ByteReader(header, context: "frame")
        let version = try reader.readUInt8()
        guard version == Frame.version else {
            throw DecodingError(.invalidValue("unsupported version \(version)"), in: "frame")
        }
        let cluster = try reader.readFixed(16)
        guard cluster == expected else { throw DecodingError(.invalidValue("frame of another cluster"), in: "frame") }
        clusterIdentifier = cluster
        sender = try reader.readMember(limits: limits)
        path = try InstancePath(from: &reader)
        let length = Int(try reader.readUInt32())
        let start = header.count - reader.remainingCount
        guard length <= Frame.frameBytesMax else {
            throw DecodingError(.tooLong(maximum: Frame.frameBytesMax, actual: length), in: "frame")
        }
        guard encodedCount - start >= length else { throw DecodingError(.truncated, in: "frame") }
        guard encodedCount - start == length else {
            throw DecodingError(.trailingBytes(count: encodedCount - start - length), in: "frame")
        }
        self.body = body(start..<encodedCount)
    }
}

/// Randomness for protocol instances, three kinds:
/// - `system()`: the system's secure generator; nothing about it can be replayed.
/// - `keyed(seed:)`: a secure generator keyed by a secret seed (SHA-256 in counter mode), so that a replica
///   replaying its journal after a crash draws the same coin-share nonces and sends byte-equal messages
///   (docs/DURABILITY.md, stage 2). Its outputs reveal nothing about the seed or about each other.
/// - `seeded(_:)`: xoshiro256** from a 64-bit seed, for simulation, so that a run replays exactly from its
///   seed. Not secure: never for real keys.
///
/// `split()` draws a child generator from this one's stream (deterministic but order-dependent);
/// `derive(_:)` names a child by a label, independent of what was drawn before, so a replaying party gets
/// the same child whatever order it rebuilds its instances in.
public struct ProtocolRandom: RandomNumberGenerator, Sendable {
    private enum Kind: Sendable {
        case system
        /// The root seed, for `derive`.
        case xoshiro(root: UInt64)
        /// The 32-byte key, and the next block's counter.
        case keyed(key: [UInt8], counter: UInt64)
    }

    /// xoshiro's state, or the unread words of the keyed generator's current block.
    private var state: (UInt64, UInt64, UInt64, UInt64)
    /// Words of `state` already used (keyed).
    private var used = 4
    private var kind: Kind

    public static func system() -> ProtocolRandom {
        ProtocolRandom(state: (0, 0, 0, 0), kind: .system)
    }

    public static func seeded(_ seed: UInt64) -> ProtocolRandom {
        // SplitMix64 expands the seed into a non-zero xoshiro state.
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9e37_79b9_7f4a_7c15
            var z = x
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        return ProtocolRandom(state: (splitMix(), splitMix(), splitMix(), splitMix()), kind: .xoshiro(root: seed))
    }

    /// A secure deterministic generator keyed by `seed` (a secret of at least 32 random bytes, kept by the
    /// replica: whoever knows it can predict the nonces of its coin-share proofs and so learn its key share).
    public static func keyed(seed: [UInt8]) -> ProtocolRandom {
        precondition(seed.count >= 32, "a keyed generator needs a seed of at least 32 bytes")
        var hash = SHA256()
        hash.update(data: Array("sintra-v1/protocol-random".utf8))
        hash.update(data: seed)
        return ProtocolRandom(state: (0, 0, 0, 0), kind: .keyed(key: Array(hash.finalize()), counter: 0))
    }

    private init(state: (UInt64, UInt64, UInt64, UInt64), kind: Kind) {
        self.state = state
        self.kind = kind
    }

    /// Whether the generator's outputs follow from its seed (`keyed` or `seeded`).
    public var isReplayable: Bool {
        if case .system = kind { return false }
        return true
    }

    public mutating func next() -> UInt64 {
        switch kind {
        case .system:
            var generator = SystemRandomNumberGenerator()
            return generator.next()
        case .keyed(let key, let counter):
            if used == 4 {
                var hash = SHA256()
                hash.update(data: key)
                var block = counter.bigEndian
                withUnsafeBytes(of: &block) { hash.update(bufferPointer: $0) }
                let words = Array(hash.finalize()).withUnsafeBytes { raw in
                    (0..<4).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
                }
                state = (words[0], words[1], words[2], words[3])
                used = 0
                kind = .keyed(key: key, counter: counter &+ 1)
            }
            used += 1
            switch used {
            case 1: return state.0
            case 2: return state.1
            case 3: return state.2
            default: return state.3
            }
        case .xoshiro:
            let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
            let shifted = state.1 << 17
            state.2 ^= state.0
            state.3 ^= state.1
            state.1 ^= state.2
            state.0 ^= state.3
            state.2 ^= shifted
            state.3 = (state.3 << 45) | (state.3 >> 19)
            return result
        }
    }

    /// An independent generator for a child instance, drawn from this one's stream (deterministic in the
    /// keyed and seeded kinds, given the draws before).
    public mutating func split() -> ProtocolRandom {
        switch kind {
        case .system: return .system()
        case .xoshiro: return .seeded(next())
        case .keyed:
            var seed = [UInt8]()
            seed.reserveCapacity(32)
            for _ in 0..<4 { withUnsafeBytes(of: next().bigEndian) { seed.append(contentsOf: $0) } }
            return .keyed(seed: seed)
        }
    }

    /// The child generator named `label`: the same for the same label whatever was drawn from this one.
    public func derive(_ label: [UInt8]) -> ProtocolRandom {
        switch kind {
        case .system:
            return .system()
        case .xoshiro(let root):
            var hash = SHA256()
            withUnsafeBytes(of: root.bigEndian) { hash.update(bufferPointer: $0) }
            hash.update(data: label)
            let word = Array(hash.finalize()).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            return .seeded(word)
        case .keyed(let key, _):
            return .keyed(seed: key + Array("derive:".utf8) + label)
        }
    }
}

/// A protocol instance as the shells (simulator, network) drive it.
public protocol ProtocolInstance: Sendable {
    associatedtype Message: WireMessage
    associatedtype Output: Sendable & Equatable

    /// The instance's full path; the frames of its messages carry it.
    var path: InstancePath { get }

    /// Handles a message from member `sender` (already authenticated by the link).
    mutating func handle(_ message: Message, from sender: Int) -> Effects<Message, Output>

    /// True once the instance has produced its output and needs no further messages for its own
    /// progress (it may still answer requests).
    var isFinished: Bool { get }
}
