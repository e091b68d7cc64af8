import NIOConcurrencyHelpers
import SintraCore
import SintraCrypto
import SintraReplica

/// Admission: how a client request gets from the client listener into this replica's queue (signature
/// checks in batches off the actor, first proposers, held requests and their deadlines, refusals).
extension ReplicaNode {
    /// Requests waiting for their signature check at most; further ones are refused (`.queueFull`).
    public static let admissionCountMax = 1 << 16
    /// Requests checked in one `SignatureBatch` at most.
    public static let admissionBatchMax = 2048
    /// Requests held unverified at most (`DeferredRequests`); further ones are checked at once.
    public static let deferredCountMax = 1 << 16
    /// How long a request is held unverified at most when no round is delivered without it.
    public static let deferredPatience = Duration.seconds(2)

    /// Submits a client request to this replica's queue for ordering, once its signature verified; refusals
    /// are counted by reason. `verified` runs once the request is known authentic, before it is queued or a
    /// reply to it is routed (the client listener routes the client's replies to the connection then, so a
    /// forged request cannot divert them).
    ///
    /// Why not one verification per request here: an Ed25519 check costs about 76 µs, one per request and
    /// replica, and was a quarter of a replica's CPU under load. Now
    /// - requests that came while the previous ones were being checked are checked together, off the actor,
    ///   in one `SignatureBatch` (a multi-scalar multiplication; a search by halves finds forgeries);
    /// - a request this replica is not one of the t + 1 first proposers of (`AtomicBroadcast.isProposer`
    ///   for its next queue) is not checked here at all: it is held (`DeferredRequests`) and resolved when
    ///   it is delivered, having been checked then in the delivered batch's `SignatureBatch`, which every
    ///   replica runs anyway for requests it did not check itself (a Byzantine proposer can order anything),
    ///   unless the valid queues of t + 1 replicas carried it (`AtomicBroadcast.Batch.attested`: an honest
    ///   one checked it).
    ///   Only if it is overdue (`DeferredRequests`: the second round after its queue round was delivered
    ///   without it, or `deferredPatience` passed; its proposers failed) is it checked and queued here, in
    ///   the next queue. So each replica checks each request about once, in a batch, instead of once
    ///   alone, and a forged request is still refused with its reason by every honest replica (the
    ///   proposers at once, the others when it is overdue).
    ///
    /// The result comes when the request was queued, found a duplicate, refused, or, for a held request,
    /// delivered (`.accepted`) or refused as overdue. `submission(of:verified:)` tells more (answers from the
    /// executor's cache, refusals for stale requests and unavailability); here those map to `.duplicate`
    /// and `.queueFull`.
    @discardableResult
    public nonisolated func submit(_ request: ClientRequest, verified: (@Sendable () -> Void)? = nil) async
        -> Result<AtomicBroadcast.Instance.SubmitResult, ClientRequestError>
    {
        switch await submission(of: request, verified: verified) {
        case .queued(let result): return .success(result)
        case .answered, .refused(.stale), .refused(.replyNotKept): return .success(.duplicate)
        case .refused(.tooLarge): return .success(.tooLarge)
        case .refused(.queueFull), .refused(.unavailable), .refused(.overloaded): return .success(.queueFull)
        case .refused(.invalidSignature): return .failure(.invalidSignature)
        case .refused(.invalidPublicKey): return .failure(.invalidPublicKey)
        case .refused(.malformed): return .failure(.malformed)
        }
    }

    /// Submits a client request as `submit` does, and says what the client is to be told: nothing yet
    /// (`.queued`: the reply follows execution), the reply it was given before (`.answered`, for a request
    /// this replica executed already), or a refusal with its reason. So every request gets an answer from
    /// every honest replica that is up, and none holds a slot of its connection for ever.
    ///
    /// A request at or below its client's last executed sequence number is answered from the executor
    /// (`RequestExecutor.repeatedOutcome`), as it would be if ordered again: an older one is refused as
    /// `.stale` at once (no signature check: a refusal goes only to the connection the bytes came on, and a
    /// stale request is never executed whoever signed it); the last one gets the cached reply only once its
    /// signature verified (or the same bytes verified before), because the reply is another client's data,
    /// or, if its reply was too long to keep (`RequestExecutor.cachedReplyBytesMax`), `.replyNotKept` at once.
    public nonisolated func submission(of request: ClientRequest, verified: (@Sendable () -> Void)? = nil) async
        -> SubmissionOutcome
    {
        let bytes = request.encoded
        let digest = AtomicBroadcast.digest(bytes)
        return await withCheckedContinuation { continuation in
            enqueue([Submission(request: request, bytes: bytes, digest: digest, verified: verified, continuation: continuation)])
        }
    }

    /// Adds submissions to the admission queue and starts its worker if none runs. Overdue requests are
    /// never refused for space (they were admitted before).
    nonisolated func enqueue(_ submissions: [Submission]) {
        var refused = [Submission]()
        let startWorker = admission.withLockedValue { queue -> Bool in
            for submission in submissions {
                if queue.waiting.count >= Self.admissionCountMax, !submission.overdue {
                    refused.append(submission)
                } else {
                    queue.waiting.append(submission)
                    if let verified = submission.verified { queue.callbacks[ByteKey(submission.digest)] = verified }
                }
            }
            guard !queue.draining, !queue.waiting.isEmpty else { return false }
            queue.draining = true
            return true
        }
        for submission in refused { submission.resolve(.refused(.queueFull)) }
        if startWorker {
            Task { await self.drainAdmission() }
        }
    }

    /// The admission worker: takes the waiting requests, lets the actor hold back those it does not propose
    /// first, checks the rest together off the actor, and queues the authentic ones in one submission. The
    /// requests that arrive during a check form the next batch, so batches grow with the load by themselves.
    nonisolated func drainAdmission() async {
        while true {
            let batch = admission.withLockedValue { $0.take(upTo: Self.admissionBatchMax) }
            if batch.isEmpty { return }
            let toVerify = await sortSubmissions(batch)
            let checking = Set(toVerify.map(\.digest))
            forgetCallbacks(of: batch.filter { !checking.contains($0.digest) })
            if toVerify.isEmpty { continue }
            let keys = toVerify.map { try? submissionKey(of: $0.request) }
            let verdicts = ClientRequest.verify(
                batch: toVerify.map(\.request), keys: keys, clusterIdentifier: configuration.clusterIdentifier)
            for (submission, verdict) in zip(toVerify, verdicts) where verdict == nil { submission.verified?() }
            await admit(toVerify, verdicts: verdicts)
            forgetCallbacks(of: toVerify)
        }
    }

    /// Drops the `verified` callbacks of submissions the worker is done with.
    nonisolated func forgetCallbacks(of submissions: [Submission]) {
        guard !submissions.isEmpty else { return }
        admission.withLockedValue { queue in
            for submission in submissions { queue.callbacks[ByteKey(submission.digest)] = nil }
        }
    }

    /// Answers repeats of executed requests, refuses requests too large to queue, resolves duplicates, holds
    /// back the requests this replica does not propose first, and returns those to check now.
    func sortSubmissions(_ batch: [Submission]) -> [Submission] {
        guard !shuttingDown, !isStopped else {
            for submission in batch { submission.resolve(.refused(.unavailable)) }
            return []
        }
        let queueRound = instance.nextQueueRound
        let sizeMax = instance.limits.submittableBytesMax(replicas: configuration.replicas)
        var toVerify = [Submission]()
        toVerify.reserveCapacity(batch.count)
        for submission in batch {
            switch execution.executor.repeatedOutcome(of: submission.request) {
            case .stale?:
                statistics.staleRequests += 1
                submission.resolve(.refused(.stale))
                continue
            case .replyNotKept?:
                // As for a stale one, no check: the refusal goes only to this connection and reveals no data.
                submission.resolve(.refused(.replyNotKept))
                continue
            case .duplicate(let reply)?:
                // The cached reply only for authentic bytes: checked now, or in `admit` (which answers it).
                if execution.authenticator.isVerified(digest: submission.digest) {
                    statistics.cachedReplies += 1
                    submission.resolve(.answered(reply))
                } else {
                    toVerify.append(submission)
                }
                continue
            case .executed?, nil:
                break
            }
            // Every honest replica refuses it alike (the bound is the cluster's), proposers or not: no wait.
            if submission.bytes.count > sizeMax {
                submission.resolve(.refused(.tooLarge))
                continue
            }
            if instance.knows(submission.digest) {
                // Pending here (verified before it was queued): its reply follows execution. Known but never
                // verified: delivered and skipped at execution (a forgery a Byzantine proposer ordered), so
                // it is checked again, to be refused with its reason instead of left unanswered.
                if execution.authenticator.isVerified(digest: submission.digest) {
                    // The same bytes as an authentic request are authentic: this connection gets the replies
                    // too. Else a Byzantine replica that copied a client's request to this replica first, on
                    // its own connection, would take the client's replies away from it.
                    submission.verified?()
                    submission.resolve(.queued(.duplicate))
                } else {
                    toVerify.append(submission)
                }
                continue
            }
            if submission.overdue || deferred.count >= Self.deferredCountMax
                || AtomicBroadcast.isProposer(member, of: submission.digest, round: queueRound, configuration: configuration)
            {
                toVerify.append(submission)
                continue
            }
            if let replaced = deferred.insert(submission, round: queueRound, now: .now) {
                replaced.resolve(.queued(.duplicate))
            } else {
                statistics.deferredRequests += 1
            }
        }
        if !deferred.isEmpty { startSweeper() }
        return toVerify
    }

    /// Counts the refused requests, and queues the authentic ones in one submission, so that they share a
    /// queue: the next one, as passed over. This node decided to propose them (it is a first proposer of
    /// them for the queue that was next when they came, or they are overdue); by the time their check is
    /// done that queue may have gone out, and the rotation would move them to another round's proposers,
    /// which held them back, so every request would wait one round more.
    func admit(_ batch: [Submission], verdicts: [ClientRequestError?]) {
        statistics.submissionBatches += 1
        statistics.submissionVerifications += batch.count
        var authentic = [Submission]()
        for (submission, verdict) in zip(batch, verdicts) {
            if let verdict {
                refuse(verdict)
                submission.resolve(.refused(RefusalReason(verdict)))
            } else {
                authentic.append(submission)
            }
        }
        guard !authentic.isEmpty else { return }
        // A stopped node orders nothing more; the client gets its answers from the other replicas.
        guard !shuttingDown, !isStopped else {
            for submission in authentic { submission.resolve(.refused(.unavailable)) }
            return
        }
        var fresh = [Submission]()
        fresh.reserveCapacity(authentic.count)
        for submission in authentic {
            execution.authenticator.remember(verifiedDigest: submission.digest)
            // Executed meanwhile, or a repeat that waited for its check (`sortSubmissions`).
            switch execution.executor.repeatedOutcome(of: submission.request) {
            case .duplicate(let reply)?:
                statistics.cachedReplies += 1
                submission.resolve(.answered(reply))
            case .stale?:
                statistics.staleRequests += 1
                submission.resolve(.refused(.stale))
            case .replyNotKept?:
                submission.resolve(.refused(.replyNotKept))
            case .executed?, nil:
                fresh.append(submission)
            }
        }
        guard !fresh.isEmpty else { return }
        let (results, effects) = instance.submit(batch: fresh.map(\.bytes), passedOver: true)
        perform(effects)
        for (submission, result) in zip(fresh, results) {
            switch result {
            case .accepted, .duplicate: submission.resolve(.queued(result))
            case .tooLarge: submission.resolve(.refused(.tooLarge))
            case .queueFull: submission.resolve(.refused(.queueFull))
            }
        }
    }

    /// Resolves the held requests that a delivered batch carried, after it executed and before its replies
    /// are routed: an executed request was verified at execution, so its `verified` callback runs now and
    /// its reply finds the connection. The same for requests still in the admission queue or being checked.
    func resolveDeferred(delivered digests: [[UInt8]]) {
        // Only for requests that executed: a forgery a Byzantine proposer ordered must not route anything.
        let waiting = admission.withLockedValue { queue in
            queue.callbacks.isEmpty
                ? [] : digests.compactMap { execution.authenticator.isVerified(digest: $0) ? queue.callbacks[ByteKey($0)] : nil }
        }
        for verified in waiting { verified() }
        guard !deferred.isEmpty else { return }
        for digest in digests {
            guard let submission = deferred.remove(digest) else { continue }
            if execution.authenticator.isVerified(digest: digest) {
                submission.verified?()
                // Executed, or a repeat with the cached reply: the reply goes out with the batch's. Stale at
                // execution (its client had moved on): no reply comes, so it is refused as such. (A repeat
                // whose reply was not kept cannot be told from one executed in this batch here, whose reply
                // goes out: it counts as accepted, and the client's retry gets `.replyNotKept`.)
                if case .stale? = execution.executor.repeatedOutcome(of: submission.request) {
                    statistics.staleRequests += 1
                    submission.resolve(.refused(.stale))
                } else {
                    submission.resolve(.queued(.accepted))
                }
                continue
            }
            // Ordered by a Byzantine proposer and skipped at execution: the client learns why.
            do {
                try submission.request.verify(clusterIdentifier: configuration.clusterIdentifier)
                submission.resolve(.queued(.duplicate))
            } catch {
                refuse(error)
                submission.resolve(.refused(RefusalReason(error)))
            }
        }
    }

    /// Sends the held requests that a whole delivered round passed over, or that waited too long, to be
    /// checked and queued here.
    func takeOverdue(deliveredRound: UInt64) {
        let overdue = deferred.takeOverdue(deliveredRound: deliveredRound, cutoff: .now - Self.deferredPatience)
        guard !overdue.isEmpty else { return }
        statistics.overdueRequests += overdue.count
        enqueue(overdue)
    }

    /// Starts the task that looks for overdue requests by time (rounds may not run at all); it ends once
    /// nothing is held.
    func startSweeper() {
        guard sweeper == nil, !shuttingDown else { return }
        sweeper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: ReplicaNode.deferredPatience / 4)
                guard let self, await self.sweep() else { return }
            }
        }
    }

    /// One look for overdue requests; returns whether the sweeper should go on.
    func sweep() -> Bool {
        takeOverdue(deliveredRound: 0)
        guard !deferred.isEmpty, !shuttingDown else {
            sweeper = nil
            return false
        }
        return true
    }

    nonisolated func submissionKey(of request: ClientRequest) throws(ClientRequestError) -> MemberPublicKey {
        if let known = submissionKeys.withLockedValue({ $0[request.publicKey] }) { return known }
        let key: MemberPublicKey
        do {
            key = try MemberPublicKey(bytes: request.publicKey)
        } catch {
            throw .invalidPublicKey
        }
        submissionKeys.withLockedValue { keys in
            if keys.count >= RequestAuthenticator.keyCountMax { keys.removeAll(keepingCapacity: true) }
            keys[request.publicKey] = key
        }
        return key
    }

    func refuse(_ error: ClientRequestError) {
        statistics.refusedRequests[error, default: 0] += 1
        logger.debug("refused client request", metadata: ["reason": "\(error.reason)"])
    }

    /// Requests executed so far.
}
