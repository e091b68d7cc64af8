import SintraCrypto

/// Catch-up (PROTOCOLS.md §7, docs/DURABILITY.md): delivered batches for parties behind, and this party's
/// own messages sent again to peers that lost them. A part of `AtomicBroadcast.Instance`, in its own file.
extension AtomicBroadcast.Instance {
    /// Asks every peer for the current round's decided vector, once per round. Used for the rounds up to
    /// the catch-up horizon, whose messages had to be dropped: the parties ahead no longer need this
    /// party, so it must not wait for messages they will not send again.
    mutating func requestCatchUp(_ effects: inout Effects<Message, Output>) {
        guard catchUpRequestedRound != round else { return }
        catchUpRequestedRound = round
        effects.broadcast(.catchUpRequest(round: round))
    }

    /// `node` restarted (its shell saw a new incarnation of it, e.g. a new link `hello`): it lost every
    /// answer and resend in flight to it, so the answers and resends it may get start counting anew.
    /// Without this, a party killed again and again before it could take in the answers to its request
    /// (each life asks once) uses up `catchUpAnswersPerPeerMax` for its round at every peer, and its next
    /// life waits in that round for ever. A Byzantine peer gets a new budget only per restart its
    /// shell reports: for the network, one authenticated connection with a new incarnation each.
    public mutating func peerRestarted(_ node: Int) {
        guard node != me else { return }
        for key in catchUpAnswered.keys { catchUpAnswered[key]?[node] = nil }
        for key in resent.keys { resent[key]?[node] = nil }
    }

    mutating func raiseCatchUpHorizon(to droppedRound: UInt64) {
        let (ceiling, overflow) = round.addingReportingOverflow(limits.catchUpRounds)
        catchUpHorizon = max(catchUpHorizon, overflow ? droppedRound : min(droppedRound, ceiling))
    }

    /// Keeps round `batchRound`'s delivered batch to answer catch-up requests for it.
    mutating func keepDeliveredBatch(_ requests: [[UInt8]], round batchRound: UInt64) {
        if let replaced = deliveredBatches.updateValue(requests, forKey: batchRound) {
            deliveredBatchBytes -= Self.byteCount(replaced)
        }
        deliveredBatchBytes += Self.byteCount(requests)
    }

    /// Forgets the delivered batches of rounds before the last `Limits.catchUpRounds`, and the oldest
    /// ones while they hold more than `catchUpMemoryBytesMax` bytes, except those of the last
    /// `deliveredMemoryRounds` rounds; with them the answers counted for those rounds.
    mutating func forgetDeliveredBatches() {
        let byRounds = round > limits.catchUpRounds ? round - limits.catchUpRounds : 0
        let floor = round > limits.deliveredMemoryRounds ? round - limits.deliveredMemoryRounds : 0
        let before = oldestDeliveredBatch
        while oldestDeliveredBatch < byRounds
            || (oldestDeliveredBatch < floor && deliveredBatchBytes > limits.catchUpMemoryBytesMax)
        {
            if let batch = deliveredBatches.removeValue(forKey: oldestDeliveredBatch) {
                deliveredBatchBytes -= Self.byteCount(batch)
            }
            oldestDeliveredBatch += 1
        }
        if oldestDeliveredBatch != before {
            catchUpAnswered = catchUpAnswered.filter { $0.key >= oldestDeliveredBatch }
        }
    }

    static func byteCount(_ requests: [[UInt8]]) -> Int { requests.reduce(0) { $0 + $1.count } }

    mutating func answerCatchUp(_ requestedRound: UInt64, to node: Int, _ effects: inout Effects<Message, Output>) {
        if requestedRound >= round, node != me {
            catchUpWaiting[node] = requestedRound
            resendOwnMessages(of: requestedRound, to: node, &effects)
            return
        }
        guard node != me, let batch = deliveredBatches[requestedRound],
            catchUpAnswered[requestedRound, default: [:]][node, default: 0] < limits.catchUpAnswersPerPeerMax
        else { return }
        catchUpAnswered[requestedRound, default: [:]][node, default: 0] += 1
        effects.send(.catchUpResponse(round: requestedRound, highestRound: round - 1, batch: batch), to: .node(node))
    }

    /// Remembers this party's binding messages among `messages` for `resendOwnMessages`.
    mutating func keep(_ messages: [Outgoing<Message>]) {
        for outgoing in messages {
            guard let bindingRound = AtomicBroadcast.bindingRound(of: outgoing.message) else { continue }
            sentBinding[bindingRound, default: []].append(outgoing)
        }
    }

    /// Sends `node` again this party's binding messages of `requestedRound` that went to it (to all, or
    /// to it alone), a round this party has not delivered yet. Why: a peer that crashed lost the
    /// messages in flight to it, and a party that did not crash sends nothing of a round twice; with
    /// more than t parties restarted in the same round, each may then wait for ever for what only the
    /// others had sent (docs/DURABILITY.md, "Stage 2", restarts beyond t). A restarted party asks for
    /// each round up to `futureRoundWindow` past its first one when it enters it (`catchUpHorizon`), so
    /// this covers every round whose messages it can have lost. The peer drops what it already has: a
    /// byte-equal queue or agreement message is no new input. At most `catchUpAnswersPerPeerMax` times
    /// per round and peer, so a Byzantine peer's requests cost a bounded number of messages.
    mutating func resendOwnMessages(
        of requestedRound: UInt64, to node: Int, _ effects: inout Effects<Message, Output>
    ) {
        guard let messages = sentBinding[requestedRound],
            resent[requestedRound, default: [:]][node, default: 0] < limits.catchUpAnswersPerPeerMax
        else { return }
        resent[requestedRound, default: [:]][node, default: 0] += 1
        for outgoing in messages where outgoing.recipient == .all || outgoing.recipient == .node(node) {
            resentMessageCount += 1
            effects.send(outgoing.message, to: .node(node))
        }
    }

    /// Delivers round r from catch-up answers once t + 1 parties sent the same batch: one of them is
    /// honest, and every honest party delivered that batch in round r (validated agreement decided the
    /// same vector at all of them, and they deduplicate alike). A batch no honest party can have
    /// delivered (not in digest order, over the caps, or repeating a request delivered here) is a fault.
    mutating func receiveCatchUp(
        _ answeredRound: UInt64, highestRound: UInt64, batch: [[UInt8]], from node: Int,
        _ effects: inout Effects<Message, Output>
    ) {
        guard node != me, answeredRound == round, catchUpAnswers[node] == nil, agreements[round]?.output == nil
        else { return }
        let digests = batch.map(AtomicBroadcast.digest)
        let inOrder = zip(digests, digests.dropFirst()).allSatisfy { $0.0.lexicographicallyPrecedes($0.1) }
        guard inOrder, batch.count <= configuration.replicas * limits.batchCountMax,
            batch.allSatisfy({ $0.count <= limits.requestBytesMax }), digests.allSatisfy({ delivered[ByteKey($0)] == nil })
        else {
            effects.fault(node, path, .invalidProof, "catch-up batch for round \(answeredRound) is not possible")
            return
        }
        catchUpAnswers[node] = batch
        let matching = catchUpAnswers.values.filter { $0 == batch }.count
        guard matching >= configuration.weakQuorum else { return }
        caughtUpRoundCount += 1
        complete(batch, digests: digests, &effects)
        // Still behind: ask for the next round right away.
        if highestRound >= round { requestCatchUp(&effects) }
    }
}
