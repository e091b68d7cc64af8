import NIOConcurrencyHelpers
import SintraCore
import SintraCrypto
import SintraReplica
import Testing

@testable import SintraServer

/// The deadlines of requests held unverified (`DeferredRequests`): overdue once the second round after
/// their queue round was delivered without them, or after the patience cutoff, oldest first, each once.
@Suite struct DeferredRequestsTests {
    /// `count` submissions of distinct requests, each with a continuation that `body` must not resume;
    /// all are resumed afterwards.
    static func withSubmissions(_ count: Int, _ body: ([Submission]) -> Void) async {
        let continuations = NIOLockedValueBox([CheckedContinuation<SubmissionOutcome, Never>]())
        let waiting = (0..<count).map { _ in
            Task {
                await withCheckedContinuation { continuation in continuations.withLockedValue { $0.append(continuation) } }
            }
        }
        while continuations.withLockedValue({ $0.count }) < count { await Task.yield() }
        let key = ClientKey.generate()
        let submissions = continuations.withLockedValue { $0 }.enumerated().map { number, continuation in
            let request = key.request(clusterIdentifier: [1], sequence: UInt64(number + 1), operation: [UInt8(number)])
            let bytes = request.encoded
            return Submission(
                request: request, bytes: bytes, digest: AtomicBroadcast.digest(bytes), verified: nil,
                continuation: continuation)
        }
        body(submissions)
        for submission in submissions { submission.resolve(.refused(.unavailable)) }
        for task in waiting { _ = await task.value }
    }

    @Test func heldRequestsAreOverdueTwoRoundsAfterTheirQueueRoundOrAfterThePatience() async {
        await Self.withSubmissions(3) { submissions in
            let (a, b, c) = (submissions[0], submissions[1], submissions[2])
            var held = DeferredRequests()
            let start = ContinuousClock.now
            let never = start - .seconds(3600)
            #expect(held.insert(a, round: 5, now: start) == nil)
            // Round 5 and 6 may still carry it: its proposers may be a round ahead of this replica.
            #expect(held.takeOverdue(deliveredRound: 5, cutoff: never).isEmpty)
            #expect(held.takeOverdue(deliveredRound: 6, cutoff: never).isEmpty)
            #expect(held.insert(b, round: 6, now: start + .seconds(1)) == nil)
            #expect(held.insert(c, round: 6, now: start + .seconds(2)) == nil)
            // Delivered: resolved by the caller, never overdue.
            #expect(held.remove(c.digest)?.digest == c.digest)
            let overdue = held.takeOverdue(deliveredRound: 7, cutoff: never)
            #expect(overdue.map(\.digest) == [a.digest])
            #expect(overdue.allSatisfy { $0.overdue })
            #expect(held.count == 1)
            // No round runs: the patience cutoff alone makes b overdue, once.
            #expect(held.takeOverdue(deliveredRound: 0, cutoff: start).isEmpty)
            #expect(held.takeOverdue(deliveredRound: 0, cutoff: start + .seconds(1)).map(\.digest) == [b.digest])
            #expect(held.takeOverdue(deliveredRound: 100, cutoff: start + .seconds(10)).isEmpty)
            #expect(held.isEmpty)
        }
    }

    /// The same bytes held again take the old submission's place (the latest connection's callback) and
    /// keep the original round, so a resend does not postpone the deadline.
    @Test func aResubmissionKeepsTheOriginalRound() async {
        await Self.withSubmissions(1) { submissions in
            let a = submissions[0]
            var held = DeferredRequests()
            let start = ContinuousClock.now
            #expect(held.insert(a, round: 3, now: start) == nil)
            #expect(held.insert(a, round: 9, now: start + .seconds(1))?.digest == a.digest)
            #expect(held.count == 1)
            #expect(held.takeOverdue(deliveredRound: 5, cutoff: start - .seconds(1)).map(\.digest) == [a.digest])
        }
    }
}
