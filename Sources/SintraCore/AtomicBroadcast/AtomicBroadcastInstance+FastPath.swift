import Crypto
import SintraCrypto

/// The fast path of one round at one party (`FastPath.swift`: the leader's proposal, votes, locks, commits,
/// stops and the fallback into the round's validated agreement). A part of `AtomicBroadcast.Instance`, in
/// its own file.
extension AtomicBroadcast.Instance {
    typealias FastMessage = AtomicBroadcast.FastMessage
    typealias FastLock = AtomicBroadcast.FastLock
    typealias FastStop = AtomicBroadcast.FastStop
    typealias FastVote = AtomicBroadcast.FastVote
    typealias FallbackProposal = AtomicBroadcast.FallbackProposal

    /// What this party knows and did in one round's fast path. Every collection holds at most one entry
    /// per member (first one counts), so a round costs O(n) here whatever peers send.
    struct FastRound {
        /// The proposal this party votes on, and its digest once checked valid (nil digest: not checked
        /// yet): the leader's first one, or the substitute's once the leader stopped before this party voted.
        var proposal: [UInt8]?
        /// The substitute's first proposal (`AtomicBroadcast.substitute`), held until the leader's stop, and
        /// its digest (not a sign of validity: computed once, to recognise a decision on it).
        var substituteProposal: [UInt8]?
        var substituteDigest: [UInt8]?
        /// This party took the leader's stop before it voted: it votes on the substitute's proposal.
        var substituted = false
        var proposalDigest: [UInt8]?
        var proposed = false
        var votedDigest: [UInt8]?
        /// Votes received, first per member: digest and signature; `checkedVotes` those verified.
        var votes: [Int: (digest: ByteKey, signature: [UInt8])] = [:]
        var checkedVotes: Set<Int> = []
        /// This party's lock (it committed), with the vector.
        var lock: FastLock?
        var commits: [Int: ByteKey] = [:]
        var stopped = false
        /// Stopped on suspicion of the leader, or because the leader gave the round up (`abdicate`), not
        /// on evidence of a failure: not counted against the leader.
        var suspected = false
        var stops: [Int: FastStop] = [:]
        /// A valid lock seen (own or in a stop) and its vector: every lock of a round is on one digest.
        var knownLock: FastLock?
        var lockedVector: [UInt8]?
        var decidedFast = false
        var timeouts = 0
        /// A valid vector of the round kept after delivery, for a fallback this party joins late.
        var fallbackVector: [UInt8]?

        var messageCount: Int {
            (proposal == nil ? 0 : 1) + (substituteProposal == nil ? 0 : 1) + votes.count + commits.count + stops.count
        }
    }

    /// Handles a fast-path message of `fastRound` from `node`.
    mutating func handleFast(
        _ message: FastMessage, round fastRound: UInt64, from node: Int, _ effects: inout Effects<Message, Output>
    ) {
        if case .abdicate(let through) = message {
            // One value per member, at most `deliveredMemoryRounds` ahead of this party.
            guard limits.optimistic else { return }
            let (cap, overflow) = round.addingReportingOverflow(limits.deliveredMemoryRounds)
            abdicatedThrough[node] = max(abdicatedThrough[node] ?? 0, overflow ? through : min(through, cap))
            return
        }
        guard limits.optimistic, mayTakePart(in: fastRound) else { return }
        // Rounds whose agreements are kept (a late fallback) through the window ahead.
        guard fastRound >= round || agreements[fastRound] != nil || fast[fastRound] != nil else { return }
        guard fastRound <= round + limits.futureRoundWindow else {
            droppedMessageCount += 1
            raiseCatchUpHorizon(to: fastRound)
            return
        }
        var state = fast[fastRound] ?? FastRound()
        defer { fast[fastRound] = state }
        switch message {
        case .propose(let vector):
            guard fastRound >= round else { return }
            let leader = AtomicBroadcast.leader(of: fastRound, configuration: configuration)
            if node != leader, node == AtomicBroadcast.substitute(of: fastRound, configuration: configuration) {
                guard !repeated(state.substituteProposal, vector, from: node, fastRound, &state, &effects) else { return }
                state.substituteProposal = vector
                state.substituteDigest = Array(SHA256.hash(data: vector))
                if state.substituted { state.proposal = vector }
                return
            }
            guard node == leader else {
                effects.fault(node, path, .notAllowed, "a-fast propose from a member that does not lead round \(fastRound)")
                return
            }
            // Once this party turned to the substitute, the leader's vector is not voted on here.
            guard !state.substituted, !repeated(state.proposal, vector, from: node, fastRound, &state, &effects)
            else { return }
            state.proposal = vector
        case .vote(let digest, let signature):
            guard fastRound >= round else { return }
            if let earlier = state.votes[node] {
                if earlier.digest.bytes != digest {
                    effects.fault(node, path, .equivocation, "two fast-path votes for round \(fastRound)")
                }
                return
            }
            state.votes[node] = (ByteKey(digest), signature)
        case .commit(let digest):
            guard fastRound >= round, state.commits[node] == nil else { return }
            state.commits[node] = ByteKey(digest)
        case .stop(let stop, let lock, let vector):
            guard stop.member == node else {
                effects.fault(node, path, .notAllowed, "a-fast stop signed by \(stop.member) sent by \(node)")
                return
            }
            guard state.stops[node] == nil else { return }
            guard isValidStop(stop, lock: lock, vector: vector, round: fastRound) else {
                effects.fault(node, path, .invalidProof, "a-fast stop with a bad signature or lock")
                return
            }
            state.stops[node] = stop
            // The leader left its round: nobody waits for its timer.
            if node == AtomicBroadcast.leader(of: fastRound, configuration: configuration), !state.stopped,
                fastRound >= round
            {
                state.suspected = true
                stopFast(fastRound, &state, &effects)
            }
            if let lock, let vector, state.knownLock == nil {
                state.knownLock = lock
                state.lockedVector = vector
            }
            // A party that delivered the round answers a stop with its batch (§7's catch-up answer): a
            // party that stopped after t + 1 honest parties decided on the fast path learns the batch so.
            if fastRound < round, node != me { answerCatchUp(fastRound, to: node, &effects) }
            joinFallback(fastRound, &state, &effects)
        case .abdicate:
            return  // handled above, for any round
        }
    }

    /// Whether `vector` comes after an `earlier` proposal of the same proposer in `fastRound`: a different
    /// one is equivocation, a fault, and this party leaves the current round's fast path.
    mutating func repeated(
        _ earlier: [UInt8]?, _ vector: [UInt8], from node: Int, _ fastRound: UInt64, _ state: inout FastRound,
        _ effects: inout Effects<Message, Output>
    ) -> Bool {
        guard let earlier else { return false }
        if earlier != vector {
            effects.fault(node, path, .equivocation, "two fast-path proposals for round \(fastRound)")
            if fastRound == round { stopFast(fastRound, &state, &effects) }
        }
        return true
    }

    /// A stop's signature, and its lock: n − t valid votes for the digest it claims, and a valid vector
    /// with that digest.
    func isValidStop(_ stop: FastStop, lock: FastLock?, vector: [UInt8]?, round stopRound: UInt64) -> Bool {
        var signatures = SignatureBatch()
        let statement = AtomicBroadcast.fastStopStatement(path: path, round: stopRound, lockedDigest: stop.lockedDigest)
        signatures.add(stop.signature, message: statement.signingBytes, key: configuration.memberKeys[stop.member - 1])
        if let lockedDigest = stop.lockedDigest {
            guard let lock, let vector, lock.digest == lockedDigest,
                AtomicBroadcast.isWellFormed(lock, round: stopRound, path: path, configuration: configuration, into: &signatures),
                Array(SHA256.hash(data: vector)) == lockedDigest,
                AtomicBroadcast.validVector(
                    vector, round: stopRound, path: path, configuration: configuration, limits: limits,
                    verified: verifiedQueues) != nil
            else { return false }
        } else {
            guard lock == nil, vector == nil else { return false }
        }
        return signatures.verify()
    }

    /// Leaves the fast path of `fastRound`: never votes or commits in it again, and tells everyone, with
    /// its lock if it committed.
    mutating func stopFast(_ fastRound: UInt64, _ state: inout FastRound, _ effects: inout Effects<Message, Output>) {
        guard !state.stopped, mayTakePart(in: fastRound) else { return }
        state.stopped = true
        if journaling { journal.append(.fastStop(round: fastRound)) }
        let message = stopMessage(fastRound, state)
        keep([Outgoing(message, to: .all)])
        effects.broadcast(message)
    }

    func stopMessage(_ fastRound: UInt64, _ state: FastRound) -> Message {
        let statement = AtomicBroadcast.fastStopStatement(path: path, round: fastRound, lockedDigest: state.lock?.digest)
        let stop = FastStop(member: me, lockedDigest: state.lock?.digest, signature: keys.identity.sign(statement))
        return .fast(round: fastRound, .stop(stop, lock: state.lock, vector: state.lock == nil ? nil : state.lockedVector))
    }

    /// Stops once t + 1 members stopped (one of them honest), and on n − t stops proposes the fallback to
    /// the round's agreement (`AtomicBroadcast.validFallback`).
    mutating func joinFallback(_ fastRound: UInt64, _ state: inout FastRound, _ effects: inout Effects<Message, Output>) {
        if !state.stopped, state.stops.count >= configuration.weakQuorum { stopFast(fastRound, &state, &effects) }
        guard state.stopped, state.stops.count >= configuration.quorum, !proposedRound.contains(fastRound),
            mayTakePart(in: fastRound)
        else { return }
        let vector: [UInt8]
        if let locked = state.lockedVector, state.knownLock != nil {
            vector = locked
        } else if let kept = state.fallbackVector {
            vector = kept
        } else if fastRound == round, let collected = collectedVector(of: round) {
            vector = collected
        } else {
            return
        }
        let stops = state.stops.keys.sorted().map { state.stops[$0]! }
        let lock = stops.contains { $0.lockedDigest != nil } ? state.knownLock : nil
        let value = FallbackProposal(stops: stops, lock: lock, vector: vector).encoded
        proposedRound.insert(fastRound)
        if journaling { journal.append(.proposal(round: fastRound, value: value)) }
        var agreement = agreements[fastRound] ?? makeAgreement(fastRound)
        let child = agreement.propose(value)
        agreements[fastRound] = agreement
        let lifted = child.lifted(message: { Message.agreement(round: fastRound, $0) }, output: { _ -> Output? in nil })
        keep(lifted.messages)
        effects.append(lifted)
    }

    /// The timer of `timerRound` fired: leave the fast path if the round is still undecided; on the second
    /// firing also ask the peers for the round (catch-up), in case the parties that decided it are past
    /// answering stops. Re-armed once.
    mutating func handleTimeout(_ timerRound: UInt64, _ effects: inout Effects<Message, Output>) {
        guard limits.optimistic, timerRound == round, mayTakePart(in: round) else { return }
        var state = fast[round] ?? FastRound()
        state.timeouts += 1
        if state.timeouts == 1 {
            stopFast(round, &state, &effects)
            joinFallback(round, &state, &effects)
            effects.send(.timeout(round: round), to: .node(me))
        } else if state.timeouts == 2 {
            requestCatchUp(&effects)
        }
        fast[round] = state
    }

    /// Runs the current round's fast path as far as it goes: the leader's proposal, this party's vote, its
    /// commit, and the decision. Returns the vector decided, if any.
    mutating func advanceFast(_ effects: inout Effects<Message, Output>) -> [UInt8]? {
        guard limits.optimistic, mayTakePart(in: round), sentQueue.contains(round) else { return nil }
        var state = fast[round] ?? FastRound()
        defer { fast[round] = state }
        let leader = AtomicBroadcast.leader(of: round, configuration: configuration)
        let substitute = AtomicBroadcast.substitute(of: round, configuration: configuration)
        // The leader gave the round up ahead: a party that has not voted yet votes on the substitute's vector.
        let leaderGone = (abdicatedThrough[leader] ?? 0) >= round
        if leaderGone, !state.substituted, state.votedDigest == nil {
            state.substituted = true
            state.suspected = true
            state.proposal = state.substituteProposal
            state.proposalDigest = nil
        }
        let proposer = leaderGone ? substitute : leader
        if !state.proposed, me == proposer, !state.stopped, let vector = collectedVector(of: round) {
            state.proposed = true
            if journaling { journal.append(.fastProposal(round: round, vector: vector)) }
            let message = Message.fast(round: round, .propose(vector: vector))
            keep([Outgoing(message, to: .all)])
            effects.broadcast(message)
        }
        if state.proposalDigest == nil, let proposal = state.proposal {
            if AtomicBroadcast.validVector(
                proposal, round: round, path: path, configuration: configuration, limits: limits,
                verified: verifiedQueues) != nil
            {
                state.proposalDigest = Array(SHA256.hash(data: proposal))
            } else {
                state.proposal = nil
                effects.fault(
                    state.substituted ? substitute : leader, path, .invalidProof,
                    "a-fast proposal that fails the round predicate")
                stopFast(round, &state, &effects)
            }
        }
        if state.votedDigest == nil, !state.stopped, let digest = state.proposalDigest {
            state.votedDigest = digest
            if journaling { journal.append(.fastVote(round: round, digest: digest)) }
            let message = voteMessage(round, digest: digest)
            keep([Outgoing(message, to: .all)])
            effects.broadcast(message)
        }
        if state.lock == nil, !state.stopped, let digest = state.proposalDigest, let proposal = state.proposal,
            let lock = certifiedLock(digest, &state, &effects)
        {
            state.lock = lock
            if state.knownLock == nil {
                state.knownLock = lock
                state.lockedVector = proposal
            }
            if journaling { journal.append(.fastLock(round: round, lock: lock, vector: proposal)) }
            let message = Message.fast(round: round, .commit(digest: digest))
            keep([Outgoing(message, to: .all)])
            effects.broadcast(message)
        }
        // The decision: n − t commits on a digest whose vector this party holds.
        var tally: [ByteKey: Int] = [:]
        for digest in state.commits.values { tally[digest, default: 0] += 1 }
        guard let (decided, _) = tally.first(where: { $0.value >= configuration.quorum }) else { return nil }
        if let proposal = state.proposal, state.proposalDigest == decided.bytes { return decide(proposal, &state) }
        if let locked = state.lockedVector, state.knownLock?.digest == decided.bytes { return decide(locked, &state) }
        // n − t commits include t + 1 honest parties, which checked the vector before they voted: a party
        // that voted for the leader's vector, or none, may hold the substitute's decided one.
        if let held = state.substituteProposal, state.substituteDigest == decided.bytes {
            return decide(held, &state)
        }
        return nil
    }

    /// The valid queues this party holds for `someRound`, by member, as an encoded vector, once there are
    /// n − t of them: what it proposes as leader, or to a fallback without a lock.
    func collectedVector(of someRound: UInt64) -> [UInt8]? {
        guard let collected = queues[someRound], collected.count >= configuration.quorum else { return nil }
        return AtomicBroadcast.encodeVector(collected.keys.sorted().map { collected[$0]! })
    }

    mutating func decide(_ vector: [UInt8], _ state: inout FastRound) -> [UInt8] {
        state.decidedFast = true
        return vector
    }

    func voteMessage(_ voteRound: UInt64, digest: [UInt8]) -> Message {
        let statement = AtomicBroadcast.fastVoteStatement(path: path, round: voteRound, digest: digest)
        return .fast(round: voteRound, .vote(digest: digest, signature: keys.identity.sign(statement)))
    }

    /// n − t valid votes for `digest`, checked as one batch once there are enough (bad ones are faults and
    /// dropped), as a lock; nil while fewer.
    func certifiedLock(_ digest: [UInt8], _ state: inout FastRound, _ effects: inout Effects<Message, Output>)
        -> FastLock?
    {
        let key = ByteKey(digest)
        let voters = state.votes.filter { $0.value.digest == key }.keys.sorted()
        guard voters.count >= configuration.quorum else { return nil }
        let unchecked = voters.filter { !state.checkedVotes.contains($0) }
        if !unchecked.isEmpty {
            var batch = SignatureBatch()
            let message = AtomicBroadcast.fastVoteStatement(path: path, round: round, digest: digest).signingBytes
            for voter in unchecked {
                batch.add(state.votes[voter]!.signature, message: message, key: configuration.memberKeys[voter - 1])
            }
            let invalid = batch.verify() ? [] : batch.invalidIndices()
            for (index, voter) in unchecked.enumerated() {
                if invalid.contains(index) {
                    state.votes[voter] = nil
                    effects.fault(voter, path, .invalidProof, "a-fast vote with a bad signature")
                } else {
                    state.checkedVotes.insert(voter)
                }
            }
        }
        let valid = voters.filter { state.checkedVotes.contains($0) && state.votes[$0] != nil }
        guard valid.count >= configuration.quorum else { return nil }
        return FastLock(
            digest: digest,
            votes: valid.prefix(configuration.quorum).map { FastVote(member: $0, signature: state.votes[$0]!.signature) })
    }

    /// Gives up leading the rounds up to `lastRound` that this party leads: each goes to its substitute
    /// (`AtomicBroadcast.substitute`), which proposes as soon as the `abdicate` message arrives, so the
    /// peers neither wait for their timers nor fall back to agreement. For a replica about to be busy for a
    /// while (writing a snapshot). This party still votes in those rounds if it can; it only does not
    /// propose.
    public mutating func abdicate(through lastRound: UInt64) -> Effects<Message, Output> {
        var effects = Effects<Message, Output>()
        guard limits.optimistic, lastRound >= round else { return effects }
        abdicatedThrough[me] = max(abdicatedThrough[me] ?? 0, lastRound)
        effects.broadcast(.fast(round: round, .abdicate(through: lastRound)))
        advance(&effects)
        return effects
    }

    /// At the start of a round this party takes part in: arms its timer, and leaves the fast path at once
    /// if it suspects the leader.
    mutating func startFast(_ effects: inout Effects<Message, Output>) {
        guard limits.optimistic else { return }
        effects.send(.timeout(round: round), to: .node(me))
        let leader = AtomicBroadcast.leader(of: round, configuration: configuration)
        guard let skips = leaderSkips[leader], skips > 0 else { return }
        leaderSkips[leader] = skips - 1
        var state = fast[round] ?? FastRound()
        state.suspected = true
        stopFast(round, &state, &effects)
        fast[round] = state
    }

    /// After delivering `deliveredRound`: counts a fallback against its leader (doubling the rounds of
    /// its this party skips, up to 64), or clears the count after a fast decision; keeps a valid vector
    /// for a fallback this party may still have to join.
    mutating func finishFast(_ deliveredRound: UInt64, vector: [UInt8]?) {
        guard limits.optimistic, var state = fast[deliveredRound] else { return }
        let leader = AtomicBroadcast.leader(of: deliveredRound, configuration: configuration)
        if state.decidedFast {
            leaderFallbacks[leader] = 0
        } else if state.stopped, !state.suspected {
            let count = (leaderFallbacks[leader] ?? 0) + 1
            leaderFallbacks[leader] = count
            leaderSkips[leader] = min(1 << min(count - 1, 6), 64)
        }
        if state.fallbackVector == nil {
            if let vector {
                state.fallbackVector = vector
            } else if state.proposalDigest != nil {
                state.fallbackVector = state.proposal
            } else if let collected = collectedVector(of: deliveredRound) {
                state.fallbackVector = collected
            }
        }
        fast[deliveredRound] = state
    }
}
