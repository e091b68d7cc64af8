import Crypto
import SintraCrypto

/// Atomic broadcast in global rounds, after Cachin–Kursawe–Petzold–Shoup (Crypto 2001), PROTOCOLS.md §7:
/// in round r every party signs and sends its queue of pending requests; on n − t valid round-r queues it
/// proposes them to validated agreement P/round:r; the decided vector's requests are delivered in one
/// deterministic order, minus those delivered before.
///
/// Total order and agreement follow from validated agreement; fairness from the vector's size: any n − t
/// queues include one of any t + 1 honest parties, so a request held by t + 1 honest parties is in the
/// decided vector (clients send to all replicas; a request first goes only into the queues of t + 1 of them,
/// `isProposer`, and into every queue from the next round on). The queue signature covers P and r, or old queues could
/// be replayed into new rounds.
public enum AtomicBroadcast {
    /// Named bounds on everything a peer can make this party hold.
    public struct Limits: Sendable {
        /// Requests per queue.
        /// Requests per queue. Throughput is about requests per round over the round's latency, so the cap is
        /// high: with n − t queues of up to this many requests, a round orders thousands of requests.
        public var batchCountMax = 4096
        /// Bytes of requests per queue.
        public var batchBytesMax = 512 << 10
        /// Bytes per request.
        public var requestBytesMax = 64 << 10
        /// Pending (submitted, undelivered) requests at this party.
        public var pendingCountMax = 100_000
        /// Rounds ahead of the current one whose messages are kept; later ones are dropped and counted.
        public var futureRoundWindow: UInt64 = 4
        /// Rounds for which delivered request digests are remembered for deduplication. Part of the
        /// replicated state (a checkpoint carries the digests of its last this many rounds), so every
        /// member of a group must use the same value.
        public var deliveredMemoryRounds: UInt64 = 64
        /// Rounds whose delivered batches this party keeps to answer laggards' catch-up requests
        /// (`catchUpRounds`: at least `deliveredMemoryRounds`); a restarted party reloads them from its log.
        /// A local choice, but a replica's checkpoints must come at least this often
        /// (`ReplicaNode.Options.snapshotInterval`): a laggard that installed the latest stable checkpoint
        /// catches up the rounds after it from its peers' memory.
        ///
        /// Separate from `deliveredMemoryRounds` since checkpoints every 256 rounds cost much less than every
        /// 64 (encoding and hashing the whole state; BENCHMARKS.md), while the deduplication memory is part of
        /// every checkpoint and need not grow.
        public var catchUpMemoryRounds: UInt64 = 256
        /// Bytes of delivered batches kept for catch-up. Past it, the oldest rounds are forgotten before
        /// `catchUpMemoryRounds`, but never the last `deliveredMemoryRounds`: a vector is at most
        /// `vectorBytesMax`, so the memory stays within this or `deliveredMemoryRounds` full vectors. Under
        /// honest load a round's batch is far smaller (about 150 KiB at 30,000 puts/s of 64 bytes).
        public var catchUpMemoryBytesMax = 128 << 20
        /// Catch-up answers per peer and round, per life of the peer (`Instance.peerRestarted`). An honest
        /// party asks for a round once per life, so a second request for the same round comes from a peer
        /// that restarted before the answer arrived and must be answered again (docs/DURABILITY.md); a
        /// Byzantine peer gets no more than this per restart.
        public var catchUpAnswersPerPeerMax = 4
        /// Bytes of a round's vector. The vector is one validated-agreement proposal, which peers decode
        /// only up to the wire's `payloadBytesMax` (1 MiB by default), so it must not exceed that.
        public var vectorBytesMax = 1 << 20
        /// Whether rounds first try the leader's fast path (`FastPath.swift`, Kursawe–Shoup) and fall back to
        /// agreement only when it stops. Every member of a group must use the same setting.
        public var optimistic = true

        public init() {}

        /// Rounds of delivered batches kept for catch-up: `catchUpMemoryRounds`, and at least the
        /// deduplication memory.
        public var catchUpRounds: UInt64 { max(catchUpMemoryRounds, deliveredMemoryRounds) }

        /// Bytes of requests per queue actually allowed: `batchBytesMax`, lowered so that a vector of n full
        /// queues, with their framing (member, count, lengths, signature), stays within `vectorBytesMax`.
        /// Without it, n − t queues of 512 KiB made a vector that no peer would decode.
        public func queueBytesMax(replicas: Int) -> Int {
            let framing = 2 + 4 + 4 * batchCountMax + 64
            // A fallback proposal carries the vector with the round's stops and lock.
            let available = vectorBytesMax - 2 - AtomicBroadcast.fallbackOverheadBytesMax(replicas: replicas)
            return max(0, min(batchBytesMax, available / max(replicas, 1) - framing))
        }

        /// The largest request a party accepts: it must fit a queue on its own.
        public func submittableBytesMax(replicas: Int) -> Int {
            min(requestBytesMax, queueBytesMax(replicas: replicas))
        }
    }

    /// A party's signed queue for one round.
    public struct SignedQueue: Sendable, Equatable {
        public let member: Int
        public let requests: [[UInt8]]
        public let signature: [UInt8]

        package func encode(into writer: inout ByteWriter) {
            writer.write(UInt16(member))
            writer.writeFixed(AtomicBroadcast.encodeRequests(requests))
            writer.writeFixed(signature)
        }

        package init(member: Int, requests: [[UInt8]], signature: [UInt8]) {
            self.member = member
            self.requests = requests
            self.signature = signature
        }

        init(from reader: inout ByteReader, limits: WireLimits, batchCountMax: Int) throws(DecodingError) {
            member = try reader.readMember(limits: limits)
            let count = Int(try reader.readUInt32())
            guard count <= batchCountMax else {
                throw DecodingError(.tooLong(maximum: batchCountMax, actual: count), in: "a-queue")
            }
            var requests = [[UInt8]]()
            for _ in 0..<count { requests.append(try reader.readVariable(maximum: limits.payloadBytesMax)) }
            self.requests = requests
            signature = try reader.readFixed(64)
        }
    }

    /// The requests decided in one round, in delivery order.
    public struct Batch: Sendable, Equatable {
        public let round: UInt64
        public let requests: [[UInt8]]
        /// For a batch decided by agreement, per request: whether validly signed queues of at least t + 1
        /// distinct members carry it (in the decided vector, or received here for this round or a later
        /// one), so at least one honest party submitted it. An application whose parties submit only
        /// requests they checked (`ReplicaNode` checks client signatures first) may skip its own check of
        /// such a request: an honest party already got the check's deterministic verdict, the one this
        /// party would get. The flags are local evidence and may differ between honest parties (they
        /// received different queues); the verdicts do not. Empty when unknown (catch-up, replay from
        /// disk): check everything. Evidence about the batch, not part of it: `==` ignores it.
        public let attested: [Bool]
        /// The requests' digests (`AtomicBroadcast.digest`), in order, when the instance computed them while
        /// delivering (it must, to deduplicate): an application that needs them too takes them from here
        /// instead of hashing every request again. Empty when not computed. Not part of the batch: `==`
        /// ignores it.
        public let digests: [[UInt8]]

        public init(round: UInt64, requests: [[UInt8]], attested: [Bool] = [], digests: [[UInt8]] = []) {
            precondition(attested.isEmpty || attested.count == requests.count, "one flag per request")
            precondition(digests.isEmpty || digests.count == requests.count, "one digest per request")
            self.round = round
            self.requests = requests
            self.attested = attested
            self.digests = digests
        }

        public static func == (a: Batch, b: Batch) -> Bool { a.round == b.round && a.requests == b.requests }
    }

    /// Requests per queue a decoder accepts (the wire bound; `Limits.batchCountMax` may be lower).
    public static let wireBatchCountMax = 4096

    public enum Message: WireMessage {
        case queue(round: UInt64, SignedQueue)
        case agreement(round: UInt64, ValidatedAgreement.Message)
        /// A lagging party asks for the decided vector of `round`.
        case catchUpRequest(round: UInt64)
        /// The batch the responder delivered in `round` (its requests in delivery order), and the highest
        /// round it has decided. The batch rather than the decided vector: a restarted party has the
        /// batches of its recent rounds on disk but not their vectors, and must still answer; t + 1 equal
        /// batches include an honest party's, which is every honest party's batch of that round.
        case catchUpResponse(round: UInt64, highestRound: UInt64, batch: [[UInt8]])
        /// A message of the round's fast path (`FastPath.swift`).
        case fast(round: UInt64, FastMessage)
        /// The party's own timer for the round's fast path fired. Only a party's own shell sends it, to the
        /// party itself, after a delay of its choosing; from anyone else it is ignored.
        case timeout(round: UInt64)

        public func encode(into writer: inout ByteWriter) {
            switch self {
            case .queue(let round, let queue):
                writer.write(UInt8(0))
                writer.write(round)
                queue.encode(into: &writer)
            case .agreement(let round, let message):
                writer.write(UInt8(1))
                writer.write(round)
                message.encode(into: &writer)
            case .catchUpRequest(let round):
                writer.write(UInt8(2))
                writer.write(round)
            case .catchUpResponse(let round, let highestRound, let batch):
                writer.write(UInt8(3))
                writer.write(round)
                writer.write(highestRound)
                writer.writeFixed(AtomicBroadcast.encodeRequests(batch))
            case .fast(let round, let message):
                writer.write(UInt8(4))
                writer.write(round)
                message.encode(into: &writer)
            case .timeout(let round):
                writer.write(UInt8(5))
                writer.write(round)
            }
        }

        public init(from reader: inout ByteReader, limits: WireLimits) throws(DecodingError) {
            let tag = try reader.readTag(below: 6)
            let round = try reader.readUInt64()
            switch tag {
            case 0:
                self = .queue(round: round, try SignedQueue(
                    from: &reader, limits: limits, batchCountMax: AtomicBroadcast.wireBatchCountMax))
            case 1:
                self = .agreement(round: round, try ValidatedAgreement.Message(from: &reader, limits: limits))
            case 2:
                self = .catchUpRequest(round: round)
            case 4:
                self = .fast(round: round, try FastMessage(from: &reader, limits: limits))
            case 5:
                self = .timeout(round: round)
            default:
                let highestRound = try reader.readUInt64()
                // A batch holds at most the requests of n queues, each at least its 4-byte length.
                let count = Int(try reader.readUInt32())
                let countMax = min(limits.memberCount * AtomicBroadcast.wireBatchCountMax, reader.remainingCount / 4)
                guard count <= countMax else {
                    throw DecodingError(.tooLong(maximum: countMax, actual: count), in: "a-catch-up")
                }
                var batch = [[UInt8]]()
                batch.reserveCapacity(count)
                for _ in 0..<count { batch.append(try reader.readVariable(maximum: limits.payloadBytesMax)) }
                self = .catchUpResponse(round: round, highestRound: highestRound, batch: batch)
            }
        }
    }

    /// The round this message binds its sender in: a signed queue or a validated-agreement message of
    /// round r can be contradicted by a different one for the same round, so a party that may have sent
    /// one must remember it across a restart (docs/DURABILITY.md, the send horizon). Catch-up requests and
    /// answers carry no choice of the sender (an answer is a delivered batch), so they bind nothing: nil;
    /// nor does a timer. Every fast-path message binds (a vote, a commit that reports a lock, a stop) but
    /// an abdication, which only says who proposes.
    public static func bindingRound(of message: Message) -> UInt64? {
        switch message {
        case .fast(_, .abdicate): nil
        case .queue(let round, _), .agreement(let round, _), .fast(let round, _): round
        case .catchUpRequest, .catchUpResponse, .timeout: nil
        }
    }

    package static func encodeRequests(_ requests: [[UInt8]]) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(UInt32(requests.count))
        for request in requests { writer.writeVariable(request) }
        return writer.bytes
    }

    /// A request's digest (SHA-256), by which parties deduplicate requests and assign their proposers.
    public static func digest(_ request: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: request)) }

    /// Whether `member` proposes the request with `digest` in `round` on first sight: t + 1 consecutive
    /// members starting at a position given by the digest, shifted by one every round.
    ///
    /// Clients send every request to all replicas; if every replica put every pending request in its queue, a
    /// vector of n − t queues would carry each request n − t times, and the bytes signed, sent, checked and
    /// hashed per round would grow with n − t (the duplication HoneyBadgerBFT avoids by proposing random
    /// parts of the buffer, Miller et al., CCS 2016, §4.4). Here a request is first proposed by t + 1 parties
    /// only; any n − t queues include one of any t + 1 parties (CKPS01's counting), so when all of its
    /// proposers are honest and hold it, it is delivered in that round, carried (t + 1)(n − t)/n times on
    /// average. A Byzantine or slow proposer can only delay it: a request still pending after a round in which
    /// a party passed it over goes into that party's later queues whatever the assignment (`signedQueue`), so
    /// once t + 1 honest parties hold it, it is delivered at most one round later than with full queues.
    public static func isProposer(_ member: Int, of digest: [UInt8], round: UInt64, configuration: GroupConfiguration)
        -> Bool
    {
        let replicas = UInt64(configuration.replicas)
        var position: UInt64 = 0
        for byte in digest.prefix(8) { position = position << 8 | UInt64(byte) }
        let first = (position % replicas &+ round % replicas) % replicas
        let offset = (UInt64(member - 1) &+ replicas &- first) % replicas
        return offset <= UInt64(configuration.faulty)
    }

    package static func queueStatement(path: InstancePath, round: UInt64, requests: [[UInt8]]) -> SignedStatement {
        encodeRequests(requests).withUnsafeBytes { queueStatement(path: path, round: round, encodedRequests: $0) }
    }

    /// The statement of a queue whose requests are already encoded (`encodeRequests`): hashed in place,
    /// without copying them out of a received vector.
    package static func queueStatement(path: InstancePath, round: UInt64, encodedRequests: UnsafeRawBufferPointer)
        -> SignedStatement
    {
        var hasher = SHA256()
        hasher.update(bufferPointer: encodedRequests)
        return SignedStatement(
            domain: "a-queue", path: path.child("round", round).description, payloadDigest: Array(hasher.finalize()))
    }

    /// The validated-agreement value of a round: n − t or more signed queues, sorted by member.
    package static func encodeVector(_ queues: [SignedQueue]) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(UInt16(queues.count))
        for queue in queues { queue.encode(into: &writer) }
        return writer.bytes
    }

    /// Decodes and checks a round's vector (the predicate Q_r): at least n − t queues from distinct members
    /// in increasing order, each within the caps and signed for this path and round. `verifySignatures: false`
    /// skips only the signatures, for a vector that satisfied the predicate when it was decided. Signatures
    /// in `verified` are not checked again, and those checked here are added to it once the vector passed.
    package static func validVector(
        _ bytes: [UInt8], round: UInt64, path: InstancePath, configuration: GroupConfiguration, limits: Limits,
        verifySignatures: Bool = true, verified: VerifiedQueueSignatures? = nil
    ) -> [SignedQueue]? {
        var reader = ByteReader(bytes, context: "a-vector")
        let wire = WireLimits(payloadBytesMax: limits.requestBytesMax, memberCount: configuration.replicas)
        guard let count = try? reader.readUInt16(), Int(count) >= configuration.quorum,
            Int(count) <= configuration.replicas
        else { return nil }
        var queues = [SignedQueue]()
        // The n − t or more queue signatures are checked as one batch: one multi-scalar multiplication.
        var signatures = SignatureBatch()
        var checked = [(queue: SignedQueue, requests: Range<Int>)]()
        for _ in 0..<count {
            let start = bytes.count - reader.remainingCount
            guard let queue = try? SignedQueue(from: &reader, limits: wire, batchCountMax: limits.batchCountMax),
                queue.member > (queues.last?.member ?? 0),
                isValid(
                    queue, round: round, path: path, configuration: configuration, limits: limits,
                    verifySignature: false)
            else { return nil }
            if verifySignatures {
                // The queue's encoded requests are these bytes of the vector, between its member (2 bytes) and
                // its signature (64): the decoding is canonical, so they are `encodeRequests(queue.requests)`.
                let requests = (start + 2)..<(bytes.count - reader.remainingCount - 64)
                assert(Array(bytes[requests]) == encodeRequests(queue.requests), "a queue's requests are its bytes")
                bytes.withUnsafeBytes { raw in
                    let encoded = UnsafeRawBufferPointer(rebasing: raw[requests])
                    if let verified, verified.contains(
                        member: queue.member, signature: queue.signature, requests: encoded, round: round, path: path)
                    {
                        // Verified here before, on these exact bytes.
                    } else {
                        let message = queueStatement(path: path, round: round, encodedRequests: encoded).signingBytes
                        signatures.add(queue.signature, message: message, key: configuration.memberKeys[queue.member - 1])
                        if verified != nil { checked.append((queue, requests)) }
                    }
                }
            }
            queues.append(queue)
        }
        guard reader.remainingCount == 0, signatures.verify() else { return nil }
        if let verified {
            for (queue, requests) in checked {
                verified.insert(
                    member: queue.member, signature: queue.signature, requests: Array(bytes[requests]), round: round,
                    path: path)
            }
        }
        return queues
    }

    package static func isValid(
        _ queue: SignedQueue, round: UInt64, path: InstancePath, configuration: GroupConfiguration, limits: Limits,
        verifySignature: Bool = true, verified: VerifiedQueueSignatures? = nil
    ) -> Bool {
        guard configuration.isMember(queue.member), queue.requests.count <= limits.batchCountMax,
            queue.requests.reduce(0, { $0 + $1.count }) <= limits.queueBytesMax(replicas: configuration.replicas),
            queue.requests.allSatisfy({ $0.count <= limits.requestBytesMax })
        else { return false }
        guard verifySignature else { return true }
        let encoded = encodeRequests(queue.requests)
        return encoded.withUnsafeBytes { raw in
            if let verified,
                verified.contains(member: queue.member, signature: queue.signature, requests: raw, round: round, path: path)
            {
                return true
            }
            let message = queueStatement(path: path, round: round, encodedRequests: raw).signingBytes
            // The cofactored rule, as in the vector's batch, so a queue valid on its own is valid in any vector.
            guard SignatureBatch.isValid(queue.signature, message: message, key: configuration.memberKeys[queue.member - 1])
            else { return false }
            verified?.insert(member: queue.member, signature: queue.signature, requests: encoded, round: round, path: path)
            return true
        }
    }
}
