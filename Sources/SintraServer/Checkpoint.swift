import Crypto
import SintraCore
import SintraCrypto

/// Signed checkpoints and state transfer (docs/DURABILITY.md, "Checkpoints and state transfer").
///
/// Every `snapshotInterval` rounds each replica snapshots its state (the `CheckpointState` below),
/// signs (cluster, round, digest of that state) with its member key and sends the vote to its peers.
/// n − t votes for the same (round, digest) form a `StableCheckpoint`: two such quorums share
/// n − 2t ≥ t + 1 members, so at least one honest replica computed the certified digest, and no two
/// different digests can be certified for one round. A certificate is what lets a replica trust a state
/// that one peer hands it (state transfer), and what lets a replica find out that its own state diverged.
public enum Checkpoint {
    /// Frames of the checkpoint protocol travel at this path, next to the atomic broadcast's `abc`.
    public static let path = InstancePath("ckpt")

    /// Bytes of state per `stateChunk` answer: a quarter of a frame, so a chunk never competes with a
    /// full atomic-broadcast frame for the link's record limit.
    public static let chunkBytes = 1 << 20

    /// The digest a checkpoint certifies: SHA-256 over a domain tag, the cluster, the round, and the
    /// encoded `CheckpointState`. The cluster and round are inside, so a state of another cluster or round
    /// never matches.
    public static func digest(clusterIdentifier: [UInt8], round: UInt64, state: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: Array("sintra-checkpoint/v1".utf8))
        hasher.update(data: clusterIdentifier)
        withUnsafeBytes(of: round.bigEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(data: state)
        return Array(hasher.finalize())
    }

    /// What a replica signs for a checkpoint: domain `checkpoint`, path `ckpt/round:R`, the digest.
    public static func statement(round: UInt64, digest: [UInt8]) -> SignedStatement {
        SignedStatement(domain: "checkpoint", path: path.child("round", round).description, payloadDigest: digest)
    }
}

/// The state a checkpoint covers, encoded canonically so that every honest replica that executed the same
/// rounds produces the same bytes: the execution chain, the executor's snapshot (state machine and client
/// table, `RequestExecutor.snapshot()`), and the digests of the requests atomic broadcast delivered in the
/// last `deliveredMemoryRounds` rounds up to the checkpoint, by round.
///
/// The digests are what a replica that installs this state needs to deliver exactly what the others
/// deliver after it: atomic broadcast drops a request from a decided vector if it was delivered in the
/// last `deliveredMemoryRounds` rounds (`AtomicBroadcast.Instance.delivered`), so a replica resuming at
/// round R + 1 must know those digests, or it would deliver a duplicate its peers skip, and its log would
/// differ from theirs (the executor would still skip the duplicate, but the batches must be equal).
struct CheckpointState: Equatable {
    var chain: [UInt8]
    var executor: [UInt8]
    /// Rounds in increasing order, each with its delivered requests' digests in delivery order.
    var recentDigests: [(round: UInt64, digests: [[UInt8]])]

    static func == (a: CheckpointState, b: CheckpointState) -> Bool {
        a.chain == b.chain && a.executor == b.executor && a.recentDigests.count == b.recentDigests.count
            && zip(a.recentDigests, b.recentDigests).allSatisfy { $0.round == $1.round && $0.digests == $1.digests }
    }

    var encoded: [UInt8] {
        let digestBytes = recentDigests.reduce(0) { $0 + 12 + 32 * $1.digests.count }
        var writer = ByteWriter(capacity: 48 + executor.count + digestBytes)
        writer.writeFixed(chain)
        writer.writeVariable(executor)
        writer.write(UInt32(recentDigests.count))
        for entry in recentDigests {
            writer.write(entry.round)
            writer.write(UInt32(entry.digests.count))
            for digest in entry.digests { writer.writeFixed(digest) }
        }
        return writer.bytes
    }

    /// Decodes a state. Only ever called on bytes whose digest matched a certificate (or that this replica
    /// wrote itself), but it still checks every length against the bytes present.
    init(encoded bytes: [UInt8]) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "checkpoint state")
        chain = try reader.readDigest()
        executor = try reader.readVariable(maximum: bytes.count)
        let rounds = Int(try reader.readUInt32())
        guard rounds <= reader.remainingCount / 12 else {
            throw DecodingError(.tooLong(maximum: reader.remainingCount / 12, actual: rounds), in: "checkpoint state")
        }
        var recent = [(round: UInt64, digests: [[UInt8]])]()
        for _ in 0..<rounds {
            let round = try reader.readUInt64()
            let count = Int(try reader.readUInt32())
            guard count <= reader.remainingCount / 32 else {
                throw DecodingError(.tooLong(maximum: reader.remainingCount / 32, actual: count), in: "checkpoint state")
            }
            var digests = [[UInt8]]()
            digests.reserveCapacity(count)
            for _ in 0..<count { digests.append(try reader.readDigest()) }
            recent.append((round, digests))
        }
        try reader.finish()
        recentDigests = recent
    }

    init(chain: [UInt8], executor: [UInt8], recentDigests: [(round: UInt64, digests: [[UInt8]])]) {
        self.chain = chain
        self.executor = executor
        self.recentDigests = recentDigests
    }
}

/// A checkpoint n − t replicas signed: its round, the digest of its `CheckpointState`, and the signatures.
public struct StableCheckpoint: Sendable, Equatable {
    public let round: UInt64
    public let digest: [UInt8]
    public let certificate: QuorumCertificate

    public init(round: UInt64, digest: [UInt8], certificate: QuorumCertificate) {
        self.round = round
        self.digest = digest
        self.certificate = certificate
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(round)
        writer.writeFixed(digest)
        writer.writeFixed(certificate.encoded)
    }

    var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 48 + certificate.signatures.count * 66)
        encode(into: &writer)
        return writer.bytes
    }

    init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
        round = try reader.readUInt64()
        digest = try reader.readDigest()
        certificate = try reader.readCertificate(limits: limits)
    }

    init(encoded bytes: [UInt8], memberCount: Int) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "stable checkpoint")
        self = try StableCheckpoint(
            from: &reader, limits: WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: memberCount))
        try reader.finish()
    }

    /// Whether n − t distinct members signed this round and digest.
    func isValid(configuration: GroupConfiguration) -> Bool {
        guard round > 0 else { return false }
        do {
            try certificate.verify(
                Checkpoint.statement(round: round, digest: digest), members: configuration.memberKeys,
                threshold: configuration.quorum)
            return true
        } catch {
            return false
        }
    }
}

/// What replicas send each other at `Checkpoint.path`.
public enum CheckpointMessage: WireMessage {
    /// The sender's signature on its checkpoint of `round`.
    case vote(round: UInt64, digest: [UInt8], signature: [UInt8])
    /// Asks for the receiver's latest stable checkpoint (sent by a replica at start).
    case certificateRequest
    /// The sender's latest stable checkpoint.
    case certificate(StableCheckpoint)
    /// Asks for the bytes of the state of checkpoint `round` from `offset` on.
    case stateRequest(round: UInt64, offset: UInt64)
    /// Up to `Checkpoint.chunkBytes` of the state of checkpoint `round` at `offset`, of `totalBytes`.
    case stateChunk(round: UInt64, offset: UInt64, totalBytes: UInt64, bytes: [UInt8])

    public func encode(into writer: inout ByteWriter) {
        switch self {
        case .vote(let round, let digest, let signature):
            writer.write(UInt8(0))
            writer.write(round)
            writer.writeFixed(digest)
            writer.writeFixed(signature)
        case .certificateRequest:
            writer.write(UInt8(1))
        case .certificate(let checkpoint):
            writer.write(UInt8(2))
            checkpoint.encode(into: &writer)
        case .stateRequest(let round, let offset):
            writer.write(UInt8(3))
            writer.write(round)
            writer.write(offset)
        case .stateChunk(let round, let offset, let totalBytes, let bytes):
            writer.write(UInt8(4))
            writer.write(round)
            writer.write(offset)
            writer.write(totalBytes)
            writer.writeVariable(bytes)
        }
    }

    public init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
        switch try reader.readTag(below: 5) {
        case 0:
            self = .vote(
                round: try reader.readUInt64(), digest: try reader.readDigest(),
                signature: try reader.readFixed(QuorumCertificate.signatureBytes))
        case 1:
            self = .certificateRequest
        case 2:
            self = .certificate(try StableCheckpoint(from: &reader, limits: limits))
        case 3:
            self = .stateRequest(round: try reader.readUInt64(), offset: try reader.readUInt64())
        default:
            let round = try reader.readUInt64()
            let offset = try reader.readUInt64()
            let total = try reader.readUInt64()
            self = .stateChunk(
                round: round, offset: offset, totalBytes: total,
                bytes: try reader.readVariable(maximum: Checkpoint.chunkBytes))
        }
    }
}

/// Collects checkpoint votes into stable checkpoints, with bounded memory: per member only its votes for
/// the `roundsPerMember` highest rounds above the stable one (a Byzantine member can make this hold at
/// most that many votes of its own), and nothing at or below the stable checkpoint.
struct CheckpointVotes {
    static let roundsPerMember = 2

    let configuration: GroupConfiguration
    private(set) var stable: StableCheckpoint?
    /// member → round → (digest, signature); each signature verified on arrival.
    private var votes: [Int: [UInt64: (digest: [UInt8], signature: [UInt8])]] = [:]

    init(configuration: GroupConfiguration, stable: StableCheckpoint? = nil) {
        self.configuration = configuration
        self.stable = stable
    }

    enum VoteResult: Equatable {
        case stale, invalid, recorded
        case stable(StableCheckpoint)
    }

    /// Records `member`'s vote; returns the new stable checkpoint if this vote completed n − t matching ones.
    mutating func add(round: UInt64, digest: [UInt8], signature: [UInt8], from member: Int) -> VoteResult {
        guard configuration.isMember(member), round > 0 else { return .invalid }
        guard round > (stable?.round ?? 0) else { return .stale }
        var mine = votes[member] ?? [:]
        guard mine[round] == nil else { return .stale }
        // Already holding higher rounds of this member's: an old vote adds nothing.
        if mine.count >= Self.roundsPerMember, let lowest = mine.keys.min(), lowest > round { return .stale }
        let statement = Checkpoint.statement(round: round, digest: digest)
        guard configuration.memberKeys[member - 1].isValidSignature(signature, for: statement.signingBytes) else {
            return .invalid
        }
        mine[round] = (digest, signature)
        while mine.count > Self.roundsPerMember, let lowest = mine.keys.min() { mine[lowest] = nil }
        votes[member] = mine
        let matching = votes.compactMap { member, rounds -> QuorumCertificate.Signature? in
            guard let vote = rounds[round], vote.digest == digest else { return nil }
            return QuorumCertificate.Signature(member: member, bytes: vote.signature)
        }
        guard matching.count >= configuration.quorum else { return .recorded }
        let chosen = matching.sorted { $0.member < $1.member }.prefix(configuration.quorum)
        let checkpoint = StableCheckpoint(
            round: round, digest: digest, certificate: QuorumCertificate(signatures: Array(chosen)))
        adopt(checkpoint)
        return .stable(checkpoint)
    }

    /// Takes a verified stable checkpoint above the current one and drops the votes at or below it.
    mutating func adopt(_ checkpoint: StableCheckpoint) {
        guard checkpoint.round > (stable?.round ?? 0) else { return }
        stable = checkpoint
        for member in votes.keys { votes[member] = votes[member]?.filter { $0.key > checkpoint.round } }
    }

    /// Votes held, for tests of the bound.
    var heldVoteCount: Int { votes.values.reduce(0) { $0 + $1.count } }
}

/// How many state chunks a replica serves each peer (a token bucket per peer): `burst` at once, then
/// `perSecond`. A chunk is up to 1 MiB copied and encrypted for one request of a few bytes, so without a
/// bound a Byzantine peer that acknowledges fast could keep this replica busy serving it. An honest replica
/// asks one chunk at a time and moves to another peer after a timeout, so the bound only slows a transfer
/// from one peer to `perSecond` MiB/s (a 512 MiB state in under a minute at the default).
struct ServeBudget {
    let burst: Double
    let perSecond: Double
    private var buckets: [Int: (tokens: Double, at: ContinuousClock.Instant)] = [:]

    init(burst: Double = 8, perSecond: Double = 16) {
        self.burst = burst
        self.perSecond = perSecond
    }

    /// Takes one chunk of `peer`'s budget at `now`; false if it has none left. At most one entry per member.
    mutating func take(peer: Int, now: ContinuousClock.Instant) -> Bool {
        let (tokens, at) = buckets[peer] ?? (burst, now)
        let elapsed = now - at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let available = min(burst, tokens + max(0, seconds) * perSecond)
        guard available >= 1 else {
            buckets[peer] = (available, now)
            return false
        }
        buckets[peer] = (available - 1, now)
        return true
    }
}
