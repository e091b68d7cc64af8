import SintraCrypto
import Testing

@testable import SintraReplica

/// Refusals on the client wire format, the client's counting of refusals against replies, and the
/// executor's answer to a request it executed before.
@Suite struct RefusalTests {
    let key = (try? ClientKey(seed: [UInt8](repeating: 4, count: 32)))!
    let cluster = [UInt8](repeating: 2, count: 16)

    @Test func refusalsRoundTripAndUnknownReasonsAreRejected() throws {
        for reason in RefusalReason.allCases {
            let refusal = ClientRefusal(client: key.client, sequence: 1 << 50 | 7, reason: reason)
            let record = ReplicaRecord.refusal(refusal)
            #expect(record.encoded.count == 1 + 25)
            #expect(try ReplicaRecord(encoded: record.encoded) == record)
        }
        var bytes = ReplicaRecord.refusal(ClientRefusal(client: key.client, sequence: 1, reason: .stale)).encoded
        bytes[bytes.count - 1] = 0
        #expect(throws: DecodingError.self) { try ReplicaRecord(encoded: bytes) }
        bytes[bytes.count - 1] = 200
        #expect(throws: DecodingError.self) { try ReplicaRecord(encoded: bytes) }
        #expect(throws: DecodingError.self) { try ReplicaRecord(encoded: Array(bytes.dropLast())) }
        #expect(throws: DecodingError.self) { try ReplicaRecord(encoded: bytes + [0]) }
        #expect(RefusalReason.allCases.filter(\.isRetryable) == [.queueFull, .unavailable, .overloaded])
        // Codes are fixed on the wire: a client built before a code existed rejects it with a typed error.
        #expect(RefusalReason.allCases.map(\.rawValue) == Array(1...9))
        bytes[bytes.count - 1] = 10
        #expect(throws: DecodingError.self) { try ReplicaRecord(encoded: bytes) }
        #expect(Set(RefusalReason.allCases.map(\.label)).count == RefusalReason.allCases.count)
    }

    /// A request record that does not decode is refused to its sender if it names a key and a sequence.
    @Test func undecodableRequestsAreRefusedWhenTheyNameAClient() {
        let request = key.request(clusterIdentifier: cluster, sequence: 9, operation: [1, 2])
        let truncated = ClientRefusal(undecodableRequest: request.encoded.dropLast())
        #expect(truncated == ClientRefusal(client: key.client, sequence: 9, reason: .malformed))
        var huge = Array(request.encoded.prefix(40))
        huge += [0x7f, 0xff, 0xff, 0xff]
        #expect(ClientRefusal(undecodableRequest: huge)?.reason == .tooLarge)
        #expect(ClientRefusal(undecodableRequest: request.encoded.prefix(39)) == nil)
    }

    /// `repeatedOutcome` is what `execute` gives a repeat: the cached reply for the last sequence, stale before.
    @Test func theExecutorAnswersRepeatsAsItWouldExecuteThem() {
        var executor = RequestExecutor(machine: KeyValueStore())
        let first = key.request(
            clusterIdentifier: cluster, sequence: 1, operation: KeyValueStore.Operation.put(key: [1], value: [1]).encoded)
        let second = key.request(
            clusterIdentifier: cluster, sequence: 2, operation: KeyValueStore.Operation.get(key: [1]).encoded)
        #expect(executor.repeatedOutcome(of: first) == nil)
        _ = executor.execute(first)
        let cached = executor.repeatedOutcome(of: first)
        #expect(cached == .duplicate(ClientReply(client: key.client, sequence: 1, result: KeyValueStore.Result.ok.encoded)))
        #expect(executor.execute(first) == cached)
        #expect(executor.repeatedOutcome(of: second) == nil)
        _ = executor.execute(second)
        #expect(executor.repeatedOutcome(of: first) == .stale)
        #expect(executor.execute(first) == .stale)
        #expect(executor.repeatedOutcome(of: second) == executor.execute(second))
        #expect(executor.executedCount == 2)
    }

    func refusal(_ reason: RefusalReason, sequence: UInt64 = 5) -> ClientRefusal {
        ClientRefusal(client: key.client, sequence: sequence, reason: reason)
    }

    func reply(_ result: [UInt8]) -> ClientReply { ClientReply(client: key.client, sequence: 5, result: result) }

    /// n = 4, t = 1: one Byzantine replica's refusal leaves the client waiting, and the honest replies win.
    @Test func oneFalseRefusalDoesNotFailTheRequest() {
        for reason in RefusalReason.allCases {
            var collector = ReplyCollector(faulty: 1, sequence: 5, replicas: 4)
            #expect(collector.add(refusal(reason), from: 4) == nil)
            #expect(collector.add(refusal(.queueFull), from: 4) == nil, "a replica counts once")
            #expect(collector.add(refusal(reason, sequence: 4), from: 1) == nil, "another sequence")
            #expect(collector.add(reply([1]), from: 1) == nil)
            #expect(collector.verdict == nil)
            #expect(collector.add(reply([1]), from: 2) == [1])
            #expect(collector.verdict == .accepted([1]))
        }
    }

    /// t + 1 refusals for one reason decide, at n = 7, t = 2 as at n = 4; t of them do not.
    @Test func tPlusOneRefusalsForOneReasonFailTheRequest() {
        var collector = ReplyCollector(faulty: 2, sequence: 5, replicas: 7)
        #expect(collector.add(refusal(.invalidSignature), from: 1) == nil)
        #expect(collector.add(refusal(.invalidSignature), from: 2) == nil)
        #expect(collector.add(refusal(.queueFull), from: 3) == nil)
        #expect(collector.add(reply([1]), from: 4) == nil)
        #expect(collector.add(refusal(.invalidSignature), from: 5) == .refused(.invalidSignature))
        var retry = ReplyCollector(faulty: 1, sequence: 5, replicas: 4)
        #expect(retry.add(refusal(.queueFull), from: 2) == nil)
        #expect(retry.add(refusal(.queueFull), from: 3) == .refused(.queueFull))
    }

    /// Refusals for different reasons fail the request only once t + 1 matching replies cannot come: the
    /// most frequent result plus the unanswered replicas at most t. A retryable reason is preferred then.
    @Test func mixedRefusalsFailOnlyWhenNoResultCanWin() {
        var collector = ReplyCollector(faulty: 1, sequence: 5, replicas: 4)
        #expect(collector.add(refusal(.stale), from: 1) == nil)
        #expect(collector.add(refusal(.unavailable), from: 2) == nil, "replicas 3 and 4 may still agree")
        #expect(collector.add(reply([1]), from: 3) == nil, "replica 4 may still match replica 3")
        #expect(collector.add(refusal(.tooLarge), from: 4) == .refused(.unavailable))
        var finals = ReplyCollector(faulty: 1, sequence: 5, replicas: 4)
        #expect(finals.add(refusal(.stale), from: 1) == nil)
        #expect(finals.add(refusal(.malformed), from: 2) == nil)
        #expect(finals.add(refusal(.stale), from: 3) == .refused(.stale))
        // Without the replica count only rule 1 applies.
        var unsized = ReplyCollector(faulty: 1, sequence: 5)
        for (replica, reason) in zip(1...4, [RefusalReason.stale, .malformed, .tooLarge, .unavailable]) {
            #expect(unsized.add(refusal(reason), from: replica) == nil)
        }
    }

    /// A replica that refused for a full queue and executed the request anyway (others ordered it) counts
    /// with its reply; a refusal after a reply is ignored.
    @Test func aReplyReplacesAnEarlierRefusal() {
        var collector = ReplyCollector(faulty: 1, sequence: 5, replicas: 4)
        #expect(collector.add(refusal(.queueFull), from: 1) == nil)
        #expect(collector.add(reply([1]), from: 2) == nil)
        #expect(collector.add(refusal(.queueFull), from: 2) == nil, "replica 2 replied")
        #expect(collector.refusalCount == 1)
        #expect(collector.add(reply([1]), from: 1) == [1])
        #expect(collector.refusalCount == 0)
    }

    /// Before a retry the client forgets the retryable refusals (those replicas count afresh) and keeps the
    /// replies and the final refusals.
    @Test func aRetryForgetsOnlyTheRetryableRefusals() {
        var collector = ReplyCollector(faulty: 1, sequence: 5, replicas: 4)
        #expect(collector.add(reply([1]), from: 1) == nil)
        #expect(collector.add(refusal(.stale), from: 2) == nil)
        #expect(collector.add(refusal(.overloaded), from: 3) == nil)
        #expect(collector.add(refusal(.queueFull), from: 4) == .refused(.queueFull))
        collector.forgetRetryableRefusals()
        #expect(collector.verdict == nil)
        #expect(collector.refusalCount == 1 && collector.replyCount == 1)
        #expect(collector.hasReplied(1) && !collector.hasReplied(3))
        // Replica 2's final refusal still counts; replica 3 answers the resend with the result.
        #expect(collector.add(refusal(.invalidSignature), from: 2) == nil, "replica 2 counts once")
        #expect(collector.add(reply([1]), from: 3) == [1])
    }
}
