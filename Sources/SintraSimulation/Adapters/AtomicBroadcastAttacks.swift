import Crypto
import SintraCore
import SintraCrypto

/// Byzantine replicas against atomic broadcast (`AtomicBroadcast`), shared by the `abc` and `kv` adapters,
/// whose instances both speak `AtomicBroadcast.Message`.
///
/// - `invalid-vector`: proposes round vectors that fail the round predicate — too few queues, a queue
///   signed for the next round, a queue twice, a trailing byte, or a queue whose requests were altered;
/// - `oversized`: sends a validly signed queue over the caps (one request too many, too many bytes, or
///   one request too long) and proposes a vector that contains it;
/// - `withhold`: sends no queue and never proposes, but signs, votes and shares coins;
/// - `equivocate`: sends the upper half of the members another validly signed queue (of made-up
///   requests) and proposes to them a vector with that queue in place of its real one;
/// - `replay-round`: sends, before its real queue, its queue of the previous round (or one signed for the
///   next round) as this round's, relays honest queues of this round as its own for the next round, and
///   proposes vectors of the previous round's queues;
/// - `forge-lock`: with its queue, leaves the round's fast path with a stop claiming a lock on a vector of
///   its own, certified by its vote and copies of it in other members' names; votes for that vector too.
/// The first four also act on the fast path (`FastPath.swift`) when the replica leads a round: an invalid or
/// oversized proposal, none, or another proposal (and vote) for the upper half of the members.
/// Flood: validly signed queues and agreement messages for rounds within, just past and far beyond the
/// future-round window, and queues for rounds already over.
public struct AtomicBroadcastAttacks {
    typealias Message = AtomicBroadcast.Message

    static let behaviours = ["invalid-vector", "oversized", "withhold", "equivocate", "replay-round", "forge-lock"]

    /// What a Byzantine replica keeps between messages.
    public struct Memory {
        /// The queues its shadow signed, by round.
        var ownQueues: [UInt64: AtomicBroadcast.SignedQueue] = [:]
        /// Valid queues heard from honest replicas, by round and member.
        var heardQueues: [UInt64: [Int: AtomicBroadcast.SignedQueue]] = [:]

        public init() {}
    }

    let context: SimulationContext
    let me: Int
    let limits: AtomicBroadcast.Limits
    /// Requests the Byzantine replicas make up (allowed to be delivered: a replica may propose anything).
    let invented: [[UInt8]]

    private var identity: NodeIdentity { context.keys(of: me).identity }

    func signed(_ requests: [[UInt8]], round: UInt64) -> AtomicBroadcast.SignedQueue {
        let statement = AtomicBroadcast.queueStatement(path: context.path, round: round, requests: requests)
        return AtomicBroadcast.SignedQueue(member: me, requests: requests, signature: identity.sign(statement))
    }

    /// The queues of a vector (which an honest shadow made, so it decodes).
    private func queues(of vector: [UInt8], round: UInt64) -> [AtomicBroadcast.SignedQueue] {
        AtomicBroadcast.validVector(
            vector, round: round, path: context.path, configuration: context.configuration, limits: limits) ?? []
    }

    /// `vector` with this replica's queue replaced by (or, if absent, added as) `queue`, sorted by member.
    private func substituted(_ vector: [UInt8], round: UInt64, queue: AtomicBroadcast.SignedQueue) -> [UInt8] {
        let others = queues(of: vector, round: round).filter { $0.member != me }
        return AtomicBroadcast.encodeVector((others + [queue]).sorted { $0.member < $1.member })
    }

    func tamper(
        _ message: Message, to recipient: Int, behaviour: String, memory: inout Memory, random: inout ProtocolRandom
    ) -> [Message] {
        if case .queue(let round, let queue) = message, queue.member == me { memory.ownQueues[round] = queue }
        let upper = recipient > context.replicas / 2
        switch (behaviour, message) {
        case ("invalid-vector", .agreement(let round, .proposal(me, .send(let vector)))):
            let invalid = invalidVector(vector, round, &random)
            return [.agreement(round: round, .proposal(sender: me, .send(payload: invalid)))]
        case ("oversized", .queue(let round, let queue)) where queue.member == me:
            return [.queue(round: round, oversized(queue, round: round, &random))]
        case ("oversized", .agreement(let round, .proposal(me, .send(let vector)))):
            let queue = oversized(memory.ownQueues[round] ?? signed([], round: round), round: round, &random)
            let swapped = substituted(vector, round: round, queue: queue)
            return [.agreement(round: round, .proposal(sender: me, .send(payload: swapped)))]
        case ("withhold", .queue(_, let queue)) where queue.member == me:
            return []
        case ("withhold", .agreement(_, .proposal(me, .send))):
            return []
        case ("invalid-vector", .fast(let round, .propose(let vector))):
            return [.fast(round: round, .propose(vector: invalidVector(vector, round, &random)))]
        case ("oversized", .fast(let round, .propose(let vector))):
            let queue = oversized(memory.ownQueues[round] ?? signed([], round: round), round: round, &random)
            return [.fast(round: round, .propose(vector: substituted(vector, round: round, queue: queue)))]
        case ("withhold", .fast(_, .propose)):
            return []
        case ("equivocate", .fast(let round, .propose(let vector))) where upper:
            return [.fast(round: round, .propose(vector: substituted(vector, round: round, queue: alternate(round: round))))]
        case ("equivocate", .fast(let round, .vote)) where upper:
            return [vote(for: Array(SHA256.hash(data: [UInt8](repeating: 0xee, count: 8) + withUnsafeBytes(of: round, Array.init))), round: round)]
        case ("forge-lock", .queue(let round, let queue)) where queue.member == me:
            return [message, forgedStop(round: round, own: queue)]
        case ("equivocate", .queue(let round, let queue)) where queue.member == me && upper:
            return [.queue(round: round, alternate(round: round))]
        case ("equivocate", .agreement(let round, .proposal(me, .send(let vector)))) where upper:
            let swapped = substituted(vector, round: round, queue: alternate(round: round))
            return [.agreement(round: round, .proposal(sender: me, .send(payload: swapped)))]
        case ("replay-round", .queue(let round, let queue)) where queue.member == me:
            let old = round > 1 ? memory.ownQueues[round - 1] ?? signed(queue.requests, round: round - 1) : nil
            return [.queue(round: round, old ?? signed(queue.requests, round: round + 1)), message]
        case ("replay-round", .agreement(let round, .proposal(me, .send))) where round > 1:
            let old = (memory.heardQueues[round - 1] ?? [:]).keys.sorted().map { memory.heardQueues[round - 1]![$0]! }
            guard old.count >= context.configuration.quorum else { return [message] }
            return [.agreement(round: round, .proposal(sender: me, .send(payload: AtomicBroadcast.encodeVector(old))))]
        default:
            return [message]
        }
    }

    /// Learns honest queues; a replaying replica relays each as its own for the next round.
    func intercept(
        _ message: Message, from sender: Int, behaviour: String, memory: inout Memory
    ) -> [Outgoing<Message>] {
        guard case .queue(let round, let queue) = message, !context.isByzantine(sender), queue.member == sender,
            AtomicBroadcast.isValid(
                queue, round: round, path: context.path, configuration: context.configuration, limits: limits)
        else { return [] }
        memory.heardQueues[round, default: [:]][sender] = queue
        memory.heardQueues = memory.heardQueues.filter { $0.key + 2 >= round }
        guard behaviour == "replay-round" else { return [] }
        return [Outgoing(.queue(round: round + 1, queue), to: .all)]
    }

    private func vote(for digest: [UInt8], round: UInt64) -> Message {
        let statement = AtomicBroadcast.fastVoteStatement(path: context.path, round: round, digest: digest)
        return .fast(round: round, .vote(digest: digest, signature: identity.sign(statement)))
    }

    /// A stop claiming a lock on a vector of this replica's own making: its queue with copies of it signed
    /// by nobody else, certified by its own vote and that signature under other members' names.
    private func forgedStop(round: UInt64, own queue: AtomicBroadcast.SignedQueue) -> Message {
        let vector = AtomicBroadcast.encodeVector(
            (1...context.configuration.quorum).map {
                AtomicBroadcast.SignedQueue(member: $0, requests: queue.requests, signature: queue.signature)
            })
        let digest = Array(SHA256.hash(data: vector))
        let signature = identity.sign(AtomicBroadcast.fastVoteStatement(path: context.path, round: round, digest: digest))
        let members = [me] + context.configuration.members.filter { $0 != me }.prefix(context.configuration.quorum - 1)
        let lock = AtomicBroadcast.FastLock(
            digest: digest, votes: members.sorted().map { AtomicBroadcast.FastVote(member: $0, signature: signature) })
        let statement = AtomicBroadcast.fastStopStatement(path: context.path, round: round, lockedDigest: digest)
        let stop = AtomicBroadcast.FastStop(member: me, lockedDigest: digest, signature: identity.sign(statement))
        return .fast(round: round, .stop(stop, lock: lock, vector: vector))
    }

    /// A queue of made-up requests, signed for `round`.
    private func alternate(round: UInt64) -> AtomicBroadcast.SignedQueue {
        let count = min(limits.batchCountMax, invented.count)
        let start = Int(round % UInt64(max(invented.count, 1)))
        return signed((0..<count).map { invented[(start + $0) % invented.count] }, round: round)
    }

    /// `queue` grown past one of the caps, validly signed.
    private func oversized(
        _ queue: AtomicBroadcast.SignedQueue, round: UInt64, _ random: inout ProtocolRandom
    ) -> AtomicBroadcast.SignedQueue {
        var requests = queue.requests
        switch random.next() % 3 {
        case 0:
            while requests.count <= limits.batchCountMax { requests.append(invented[requests.count % invented.count]) }
        case 1:
            let chunk = [UInt8](repeating: 0x6f, count: min(limits.requestBytesMax, limits.batchBytesMax))
            while requests.reduce(0, { $0 + $1.count }) <= limits.batchBytesMax {
                requests.append(chunk + [UInt8(truncatingIfNeeded: requests.count)])
            }
            requests = Array(requests.suffix(limits.batchCountMax))
        default:
            requests = [[UInt8](repeating: 0x6c, count: limits.requestBytesMax + 1)]
        }
        return signed(requests, round: round)
    }

    /// A round vector that the round predicate rejects.
    private func invalidVector(_ vector: [UInt8], _ round: UInt64, _ random: inout ProtocolRandom) -> [UInt8] {
        let valid = queues(of: vector, round: round)
        switch random.next() % 5 {
        case 0:
            return AtomicBroadcast.encodeVector(Array(valid.prefix(context.configuration.quorum - 1)))
        case 1:
            return substituted(vector, round: round, queue: signed(invented.prefix(1).map { $0 }, round: round + 1))
        case 2:
            return AtomicBroadcast.encodeVector(valid + valid.suffix(1))
        case 3:
            return vector + [0]
        default:
            guard let victim = valid.first(where: { $0.member != me }) else { return vector + [0] }
            let altered = AtomicBroadcast.SignedQueue(
                member: victim.member, requests: victim.requests + invented.prefix(1), signature: victim.signature)
            return AtomicBroadcast.encodeVector(valid.map { $0.member == victim.member ? altered : $0 })
        }
    }

    /// Validly signed queues and agreement fetches for rounds around and far past the window, and queues
    /// for round 0.
    func flood(count: Int, random: inout ProtocolRandom) -> [Outgoing<Message>] {
        let window = limits.futureRoundWindow
        let rounds: [UInt64] = [0, 2, window, window + 1, window + 2, 1 << 20, UInt64.max]
        return (0..<count).map { index in
            let round = rounds[index % rounds.count]
            let message: Message
            if index % 2 == 0 {
                message = .queue(round: round, signed(Array(invented.prefix(1)), round: round))
            } else {
                message = .agreement(round: round, .fetch(candidate: 1 + Int(random.next() % UInt64(context.replicas))))
            }
            return Outgoing(message, to: .node(context.honest[Int(random.next() % UInt64(context.honest.count))]))
        }
    }

    /// The most messages an honest replica may hold: one queue per member for each round in the window
    /// ahead, and the agreements of the rounds from a window behind to a window ahead.
    static func bufferedMessageCountMax(replicas: Int, limits: AtomicBroadcast.Limits) -> Int {
        // Future queues, kept agreements, and per future round two fast-path proposals (the leader's and
        // the substitute's) and a vote, a commit and a stop per member.
        Int(limits.futureRoundWindow) * replicas + 2 * Int(limits.futureRoundWindow) + 1
            + Int(limits.futureRoundWindow) * (2 + 3 * replicas)
    }
}
