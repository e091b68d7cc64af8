import SintraCore
import SintraCrypto
import SintraReplica

/// What became of a client request submitted to a replica (`ReplicaNode.submission(of:verified:)`): every
/// outcome but `.queued` is answered to the client at once, so no request of a connection is left without
/// an answer from this replica.
public enum SubmissionOutcome: Sendable, Equatable {
    /// In this replica's queue (`.accepted`), or known to it already (`.duplicate`: pending here, or
    /// delivered recently): its reply follows its execution, routed by client (`ClientListener`).
    case queued(AtomicBroadcast.Instance.SubmitResult)
    /// Executed before it came (a retry, or a slow connection): the reply the executor gives for it again,
    /// its client's cached reply (`RequestExecutor.repeatedOutcome`).
    case answered(ClientReply)
    /// Refused: nothing more comes for it from this replica.
    case refused(RefusalReason)
}

/// A client request on its way into a replica's atomic broadcast queue (`ReplicaNode.submit`): decoded,
/// digested once, with the caller's continuation, which is resumed exactly once with the outcome.
struct Submission: Sendable {
    typealias Outcome = SubmissionOutcome

    let request: ClientRequest
    let bytes: [UInt8]
    /// `AtomicBroadcast.digest(bytes)`, which is also the digest `RequestAuthenticator` remembers.
    let digest: [UInt8]
    /// Runs once the request is known authentic, before it is queued or its reply is routed.
    var verified: (@Sendable () -> Void)?
    let continuation: CheckedContinuation<Outcome, Never>
    /// Held back and not delivered in time (`DeferredRequests.takeOverdue`): checked and queued whatever
    /// its proposers, as a passed-over request.
    var overdue = false

    func resolve(_ outcome: Outcome) {
        continuation.resume(returning: outcome)
    }
}

/// Requests waiting for their signature check, and whether a worker task is taking them. Invariant: while
/// `waiting` is not empty, `draining` is true (a worker runs and will take them).
///
/// `callbacks` holds the `verified` callback of every request from the time it is enqueued until the
/// worker has queued, held back, or refused it: if the request is delivered meanwhile (the other replicas
/// were faster), its execution proves it authentic and the callback runs then, before its reply is routed;
/// otherwise the reply would find no connection at this replica.
struct AdmissionQueue {
    var waiting: [Submission] = []
    var draining = false
    var callbacks: [ByteKey: @Sendable () -> Void] = [:]

    /// Takes up to `limit` waiting requests, or, if none wait, clears `draining` (the worker then ends).
    mutating func take(upTo limit: Int) -> [Submission] {
        guard !waiting.isEmpty else {
            draining = false
            return []
        }
        if waiting.count <= limit {
            defer { waiting = [] }
            return waiting
        }
        defer { waiting.removeFirst(limit) }
        return Array(waiting[..<limit])
    }
}

/// Requests a replica holds unverified because it is not one of their first proposers
/// (`AtomicBroadcast.isProposer`): t + 1 other replicas put them into their queues first, and when one of
/// those is honest the request is delivered, and checked then, in the delivered batch's `SignatureBatch`
/// (`RequestAuthenticator.authenticate(batch:)`). A request still here once the second round after the one
/// whose queue its proposers should have put it in was delivered, or after `ReplicaNode.deferredPatience` (no
/// round may run at all: a forged request that its proposers refused, or one that reached none of its
/// proposers), is overdue: this replica checks it, and queues it itself or refuses it.
///
/// Why the grace: a proposer whose queue for round q had gone out when the request came puts it into its
/// queue for q + 1, and a proposer a round ahead of this replica into q + 2. Counting from the round the
/// replica was deciding when the request came made about 30 % of held requests overdue under load
/// (measured: 3,100 of 10,300 per replica in a 10 s bench at 1,000 clients), each checked and queued once
/// more for nothing; with the grace, 0.1–7.8 % per replica, 1–2 % in most runs (BENCHMARKS.md).
///
/// The grace was reverted once (984b6da) after bench runs lost requests with it ("1 replica answered"). A
/// held request cannot cause that: each is resolved within `deferredPatience` and a sweep (a quarter of
/// it) at the latest, delivered or overdue. What leaves a request unanswered for good is a replica whose
/// connection to the client closed while the request was in flight (then: at its in-flight limit, which
/// the longer holds at a lagging replica reached more often): the replica executes the request but has no
/// route for its reply, and `ClientMultiplexer` did not send the request on the new connection
/// (`ClientMultiplexer.connectMissing` now does). With today's listener (refusals instead of closes, slot
/// takeover) seven bench runs at 1,000 clients lost nothing with the grace.
///
/// Bounded: `ReplicaNode` holds at most `ReplicaNode.deferredCountMax` requests here and checks further
/// ones at once, as a proposer would. Each entry is resolved exactly once (delivered, overdue, replaced by
/// a resubmission of the same bytes, or the node stopping).
struct DeferredRequests {
    private var entries: [ByteKey: (submission: Submission, round: UInt64)] = [:]
    /// Digests in arrival order with the round and time they came in (both nondecreasing along it); entries
    /// already resolved are skipped when their turn comes.
    private var order: [(digest: [UInt8], round: UInt64, since: ContinuousClock.Instant)] = []
    private var head = 0

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// Holds `submission`, which came while `round` was this replica's next queue round
    /// (`AtomicBroadcast.Instance.nextQueueRound`). If the same bytes are already held, the new submission
    /// takes the old one's place (its `verified` callback is the one that runs: the latest connection) and
    /// the old one is returned, to be resolved by the caller; the original round is kept.
    mutating func insert(_ submission: Submission, round: UInt64, now: ContinuousClock.Instant) -> Submission? {
        if let existing = entries[ByteKey(submission.digest)] {
            entries[ByteKey(submission.digest)] = (submission, existing.round)
            return existing.submission
        }
        entries[ByteKey(submission.digest)] = (submission, round)
        order.append((submission.digest, round, now))
        return nil
    }

    /// Removes and returns the held request with `digest`, if any.
    mutating func remove(_ digest: [UInt8]) -> Submission? {
        entries.removeValue(forKey: ByteKey(digest))?.submission
    }

    /// Removes and returns the requests held for a queue round q with q + 2 ≤ `deliveredRound` (round q + 2
    /// was delivered without them), or since `cutoff` or earlier, oldest first.
    mutating func takeOverdue(deliveredRound: UInt64, cutoff: ContinuousClock.Instant) -> [Submission] {
        var overdue = [Submission]()
        while head < order.count, order[head].round &+ 1 < deliveredRound || order[head].since <= cutoff {
            let (digest, round, _) = order[head]
            head += 1
            if let entry = entries[ByteKey(digest)], entry.round == round {
                entries[ByteKey(digest)] = nil
                var submission = entry.submission
                submission.overdue = true
                overdue.append(submission)
            }
        }
        if head > 1024, head > order.count / 2 {
            order.removeFirst(head)
            head = 0
        }
        return overdue
    }

    /// Removes and returns everything held.
    mutating func removeAll() -> [Submission] {
        defer {
            entries = [:]
            order = []
            head = 0
        }
        return entries.values.map(\.submission)
    }
}
