import Crypto
import SintraCrypto

/// The optimistic fast path of an atomic-broadcast round, after Kursawe–Shoup, "Optimistic asynchronous
/// atomic broadcast" (ICALP 2005; PROTOCOLS.md §9): in the normal case a leader orders, with no binary
/// agreement and no threshold coin; when the leader is slow or faulty the parties switch to the
/// asynchronous protocol, and neither safety nor liveness ever depends on a timer.
///
/// Sintra applies the idea per round of CKPS01 (§7) rather than per epoch of sequence numbers, so that the
/// round stays the unit of delivery, journaling, catch-up, checkpoints and state transfer:
///
/// 1. Every party sends its signed queue as before. The round's leader, member 1 + (r − 1) mod n, proposes
///    the first n − t valid queues it holds: `propose(vector)`.
/// 2. A party votes once per round, for the leader's first valid vector: `vote(H(vector))`, signed.
/// 3. On n − t valid votes for one digest a party holding that vector is *locked* and sends `commit`
///    (unsigned: links are authenticated, and n − t commits include t + 1 honest parties').
/// 4. On n − t commits for a digest a party delivers that vector: decided on the fast path.
///
/// Fallback. A party *stops* the fast path of round r when its timer for r fires (`Message.timeout`, which
/// the shell delivers after a delay it chooses), when the leader equivocates or proposes an invalid
/// vector, when t + 1 others stopped (then at least one honest party did), or at once when it suspects the
/// leader (its recent rounds fell back here). After stopping it never votes or commits in r again, and it
/// sends a signed `stop` carrying its lock, if it committed (the vote certificate and the vector). On
/// n − t stops it proposes to r's validated agreement the stops and a vector: the locked vector if any
/// stop carries a lock, its own n − t queues otherwise. The agreement's predicate checks exactly that.
///
/// Substitute. A leader that gives its rounds up ahead (`abdicate(through:)`, before a long write) hands
/// each of them to its substitute, the next member (the leader of r + 1): a party that has the leader's
/// abdication before it voted in r votes for the substitute's first valid vector instead, and the
/// substitute proposes once it has the abdication. Nothing else changes: a party still votes once per
/// round, so the argument below holds whoever proposed; a round whose leader abdicated after some parties
/// voted for its vector simply may not gather n − t votes on either and falls back. (A leader's stop still
/// stops the others at once: handing stopped rounds to the substitute too changed the timing of restarts
/// beyond t enough to stall `restart-many` kv seed 93027, not understood yet.)
///
/// Why it is safe. Two digests cannot both gather n − t votes in one round (the vote sets would share an
/// honest party, which votes once). If an honest party decided vector v on the fast path, n − t parties
/// committed, t + 1 of them honest, each locked on v before it stopped; any n − t stops include one of
/// them, so every valid fallback proposal carries v and the agreement decides v. If no honest party
/// decided on the fast path, the agreement decides some valid vector, as in §7. Fairness and the
/// deduplicated, digest-ordered delivery are §7's: every vector is n − t signed queues of round r.
///
/// Why it is live. An honest leader's round decides in four message delays (queue, propose, vote, commit)
/// when timers are generous. Otherwise every honest party that has not decided stops when its timer
/// fires; once t + 1 have, all stop and the agreement runs with every honest party (those that already
/// decided take part too). A party that stopped while t + 1 honest parties decided on the fast path is
/// sent the delivered batch by each of them in answer to its stop (the catch-up answer of §7, t + 1 equal
/// ones needed).
extension AtomicBroadcast {
    /// The leader of a round's fast path: members in turn, so that a crashed leader costs only its rounds
    /// (which the parties soon skip at once, `Instance`'s suspicion), and no party orders every round.
    public static func leader(of round: UInt64, configuration: GroupConfiguration) -> Int {
        1 + Int((round &- 1) % UInt64(configuration.replicas))
    }

    /// Who proposes in a round whose leader stopped: the next member, 1 + (leader mod n).
    public static func substitute(of round: UInt64, configuration: GroupConfiguration) -> Int {
        1 + leader(of: round, configuration: configuration) % configuration.replicas
    }

    /// One member's signed vote for a digest: an entry of a lock's certificate.
    public struct FastVote: Sendable, Equatable {
        public let member: Int
        public let signature: [UInt8]

        public init(member: Int, signature: [UInt8]) {
            self.member = member
            self.signature = signature
        }
    }

    /// Proof that n − t members voted for `digest` in a round: whoever holds it knows no other vector of the
    /// round can be decided on the fast path.
    public struct FastLock: Sendable, Equatable {
        public let digest: [UInt8]
        /// At least n − t votes, by increasing member.
        public let votes: [FastVote]

        public init(digest: [UInt8], votes: [FastVote]) {
            self.digest = digest
            self.votes = votes
        }

        func encode(into writer: inout ByteWriter) {
            writer.writeFixed(digest)
            writer.write(UInt16(votes.count))
            for vote in votes {
                writer.write(UInt16(vote.member))
                writer.writeFixed(vote.signature)
            }
        }

        init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            digest = try reader.readFixed(32)
            let count = Int(try reader.readUInt16())
            guard count <= limits.memberCount else {
                throw DecodingError(.tooLong(maximum: limits.memberCount, actual: count), in: "a-fast-lock")
            }
            var votes = [FastVote]()
            for _ in 0..<count {
                votes.append(FastVote(member: try reader.readMember(limits: limits), signature: try reader.readFixed(64)))
            }
            self.votes = votes
        }
    }

    /// A member's signed statement that it left a round's fast path, with the digest it is locked on, if any.
    public struct FastStop: Sendable, Equatable {
        public let member: Int
        /// The digest of the vector the member committed, if it did.
        public let lockedDigest: [UInt8]?
        public let signature: [UInt8]

        public init(member: Int, lockedDigest: [UInt8]?, signature: [UInt8]) {
            self.member = member
            self.lockedDigest = lockedDigest
            self.signature = signature
        }

        func encode(into writer: inout ByteWriter) {
            writer.write(UInt16(member))
            if let lockedDigest {
                writer.write(UInt8(1))
                writer.writeFixed(lockedDigest)
            } else {
                writer.write(UInt8(0))
            }
            writer.writeFixed(signature)
        }

        init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            member = try reader.readMember(limits: limits)
            lockedDigest = try reader.readTag(below: 2) == 1 ? try reader.readFixed(32) : nil
            signature = try reader.readFixed(64)
        }
    }

    /// Messages of a round's fast path.
    public enum FastMessage: Sendable, Equatable {
        /// The leader's vector (an encoded vector of signed queues, as proposed to agreement in §7).
        case propose(vector: [UInt8])
        /// A signed vote for the digest of the leader's vector.
        case vote(digest: [UInt8], signature: [UInt8])
        /// The sender is locked on `digest`.
        case commit(digest: [UInt8])
        /// The sender left the fast path; with its lock's certificate and vector if it committed.
        case stop(FastStop, lock: FastLock?, vector: [UInt8]?)
        /// The sender gives up leading every round up to `through` (it is about to be busy): its substitute
        /// proposes in them instead. Not signed and not binding: safety never rests on who proposes.
        case abdicate(through: UInt64)

        func encode(into writer: inout ByteWriter) {
            switch self {
            case .propose(let vector):
                writer.write(UInt8(0))
                writer.writeVariable(vector)
            case .vote(let digest, let signature):
                writer.write(UInt8(1))
                writer.writeFixed(digest)
                writer.writeFixed(signature)
            case .commit(let digest):
                writer.write(UInt8(2))
                writer.writeFixed(digest)
            case .stop(let stop, let lock, let vector):
                writer.write(UInt8(3))
                stop.encode(into: &writer)
                if let lock, let vector {
                    writer.write(UInt8(1))
                    lock.encode(into: &writer)
                    writer.writeVariable(vector)
                } else {
                    writer.write(UInt8(0))
                }
            case .abdicate(let through):
                writer.write(UInt8(4))
                writer.write(through)
            }
        }

        init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            switch try reader.readTag(below: 5) {
            case 0:
                self = .propose(vector: try reader.readVariable(maximum: limits.payloadBytesMax))
            case 1:
                self = .vote(digest: try reader.readFixed(32), signature: try reader.readFixed(64))
            case 2:
                self = .commit(digest: try reader.readFixed(32))
            case 4:
                self = .abdicate(through: try reader.readUInt64())
            default:
                let stop = try FastStop(from: &reader, limits: limits)
                if try reader.readTag(below: 2) == 1 {
                    let lock = try FastLock(from: &reader, limits: limits)
                    self = .stop(stop, lock: lock, vector: try reader.readVariable(maximum: limits.payloadBytesMax))
                } else {
                    self = .stop(stop, lock: nil, vector: nil)
                }
            }
        }
    }

    package static func fastVoteStatement(path: InstancePath, round: UInt64, digest: [UInt8]) -> SignedStatement {
        SignedStatement(domain: "a-fast-vote", path: path.child("round", round).description, payloadDigest: digest)
    }

    /// A stop without a lock signs 32 zero bytes: no vector hashes to them.
    package static func fastStopStatement(path: InstancePath, round: UInt64, lockedDigest: [UInt8]?) -> SignedStatement {
        SignedStatement(
            domain: "a-fast-stop", path: path.child("round", round).description,
            payloadDigest: lockedDigest ?? [UInt8](repeating: 0, count: 32))
    }

    /// Whether `lock` certifies n − t votes of distinct members, in increasing order, for its digest in `round`.
    /// The signatures go into `batch` (checked by the caller) unless `batch` is nil, when they are checked here.
    package static func isWellFormed(
        _ lock: FastLock, round: UInt64, path: InstancePath, configuration: GroupConfiguration,
        into batch: inout SignatureBatch
    ) -> Bool {
        guard lock.votes.count >= configuration.quorum, lock.votes.count <= configuration.replicas,
            zip(lock.votes, lock.votes.dropFirst()).allSatisfy({ $0.0.member < $0.1.member }),
            lock.votes.allSatisfy({ configuration.isMember($0.member) })
        else { return false }
        let message = fastVoteStatement(path: path, round: round, digest: lock.digest).signingBytes
        for vote in lock.votes { batch.add(vote.signature, message: message, key: configuration.memberKeys[vote.member - 1]) }
        return true
    }

    /// The most bytes the stops and lock of a fallback proposal add to its vector, for n members: the
    /// vector's bound leaves room for them (`Limits.queueBytesMax`).
    public static func fallbackOverheadBytesMax(replicas: Int) -> Int {
        // Count, stops (member, flag, digest, signature), lock flag, lock (digest, count, votes), vector length.
        2 + replicas * (2 + 1 + 32 + 64) + 1 + 32 + 2 + replicas * (2 + 64) + 4
    }

    /// The value a party proposes to a round's agreement after the fast path stopped: n − t or more signed
    /// stops of distinct members, the lock that any of them claims (one certificate: all locks of a round
    /// are on one digest), and a vector, which must be the locked one if there is a lock.
    public struct FallbackProposal: Sendable, Equatable {
        public let stops: [FastStop]
        public let lock: FastLock?
        public let vector: [UInt8]

        public init(stops: [FastStop], lock: FastLock?, vector: [UInt8]) {
            self.stops = stops
            self.lock = lock
            self.vector = vector
        }

        public var encoded: [UInt8] {
            var writer = ByteWriter()
            writer.write(UInt16(stops.count))
            for stop in stops { stop.encode(into: &writer) }
            if let lock {
                writer.write(UInt8(1))
                lock.encode(into: &writer)
            } else {
                writer.write(UInt8(0))
            }
            writer.writeVariable(vector)
            return writer.bytes
        }

        public init(encoded bytes: [UInt8], limits: WireLimits) throws(DecodingError) {
            var reader = ByteReader(bytes, context: "a-fallback")
            let count = Int(try reader.readUInt16())
            guard count <= limits.memberCount else {
                throw DecodingError(.tooLong(maximum: limits.memberCount, actual: count), in: "a-fallback")
            }
            var stops = [FastStop]()
            for _ in 0..<count { stops.append(try FastStop(from: &reader, limits: limits)) }
            self.stops = stops
            lock = try reader.readTag(below: 2) == 1 ? try FastLock(from: &reader, limits: limits) : nil
            vector = try reader.readVariable(maximum: limits.payloadBytesMax)
            try reader.finish()
        }
    }

    /// The predicate of a round's agreement when the fast path is on: a `FallbackProposal` whose n − t or
    /// more stops are validly signed for this round by distinct members in increasing order, whose lock, if
    /// any stop claims one, certifies that digest with n − t valid votes, and whose vector is valid
    /// (`validVector`) and, under a lock, hashes to the locked digest. Returns the vector.
    package static func validFallback(
        _ bytes: [UInt8], round: UInt64, path: InstancePath, configuration: GroupConfiguration, limits: Limits,
        verifySignatures: Bool = true, verified: VerifiedQueueSignatures? = nil
    ) -> [UInt8]? {
        let wire = WireLimits(payloadBytesMax: limits.vectorBytesMax, memberCount: configuration.replicas)
        guard let proposal = try? FallbackProposal(encoded: bytes, limits: wire),
            proposal.stops.count >= configuration.quorum,
            zip(proposal.stops, proposal.stops.dropFirst()).allSatisfy({ $0.0.member < $0.1.member })
        else { return nil }
        let claimed = Set(proposal.stops.compactMap(\.lockedDigest).map(ByteKey.init))
        guard claimed.count <= 1, claimed.first?.bytes == proposal.lock?.digest else { return nil }
        var signatures = SignatureBatch()
        if let lock = proposal.lock {
            guard isWellFormed(lock, round: round, path: path, configuration: configuration, into: &signatures),
                Array(SHA256.hash(data: proposal.vector)) == lock.digest
            else { return nil }
        }
        for stop in proposal.stops {
            let message = fastStopStatement(path: path, round: round, lockedDigest: stop.lockedDigest).signingBytes
            signatures.add(stop.signature, message: message, key: configuration.memberKeys[stop.member - 1])
        }
        guard !verifySignatures || signatures.verify(),
            validVector(
                proposal.vector, round: round, path: path, configuration: configuration, limits: limits,
                verifySignatures: verifySignatures, verified: verified) != nil
        else { return nil }
        return proposal.vector
    }
}
