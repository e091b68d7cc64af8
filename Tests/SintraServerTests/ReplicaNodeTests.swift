import NIOConcurrencyHelpers
import SintraCore
import SintraNetwork
import SintraCrypto
import SintraReplica
import Testing

@testable import SintraServer

/// Four replica nodes in one process over real TLS on loopback.
@Suite(.serialized) struct ReplicaNodeTests {
    /// Total order end to end: requests submitted to every node are executed by every node in the same
    /// order, leaving equal key-value states.
    @Test func everyNodeExecutesTheSameRequestsInTheSameOrder() async throws {
        let cluster = try LocalCluster(replicas: 4, faulty: 1)
        try await cluster.start()
        // One request per client: a client's later request executed first would make its earlier one stale
        // (RequestExecutor), and this test checks order, not deduplication.
        var requests = [ClientRequest]()
        for number in 0..<40 {
            let key = try ClientKey(seed: (0..<32).map { UInt8(truncatingIfNeeded: number &* 31 &+ $0) })
            let operation = KeyValueStore.Operation.put(
                key: Array("key-\(number % 3)".utf8), value: Array("value-\(number)".utf8))
            requests.append(
                key.request(
                    clusterIdentifier: cluster.configuration.clusterIdentifier, sequence: 1,
                    operation: operation.encoded))
        }
        for request in requests {
            for node in cluster.nodes {
                await node.submit(request)
            }
        }
        let done = await eventually(within: 60) {
            for node in cluster.nodes where await node.executedCount < UInt64(requests.count) { return false }
            return true
        }
        #expect(done)
        let chains = await cluster.nodes.asyncMap { await $0.executionChain }
        let digests = await cluster.nodes.asyncMap { await $0.stateDigest }
        let counts = await cluster.nodes.asyncMap { await $0.executedCount }
        #expect(counts == Array(repeating: UInt64(requests.count), count: 4))
        #expect(Set(chains).count == 1)
        #expect(Set(digests).count == 1)
        #expect(chains[0] != [UInt8](repeating: 0, count: 32))
        for node in cluster.nodes {
            #expect(await node.statistics.malformedFrames == 0)
        }
        await cluster.shutdown()
    }
}

/// Client signatures are checked about once per request and replica: at submission (in batches) only by
/// the request's first proposers, by the others at execution, or at submission once overdue.
@Suite(.serialized) struct SubmissionCheckTests {
    @Test func eachReplicaChecksEachRequestOnceAndEveryReplicaRefusesAForgery() async throws {
        let cluster = try LocalCluster(replicas: 4, faulty: 1)
        try await cluster.start()
        let clusterIdentifier = cluster.configuration.clusterIdentifier
        var requests = [ClientRequest]()
        for number in 0..<40 {
            let key = try ClientKey(seed: (0..<32).map { UInt8(truncatingIfNeeded: number &* 7 &+ $0 &+ 100) })
            let operation = KeyValueStore.Operation.put(key: Array("k\(number)".utf8), value: [UInt8(number)])
            requests.append(key.request(clusterIdentifier: clusterIdentifier, sequence: 1, operation: operation.encoded))
        }
        let honest = try ClientKey(seed: [UInt8](repeating: 1, count: 32))
        let forger = try ClientKey(seed: [UInt8](repeating: 2, count: 32))
        let forged = ClientRequest(
            publicKey: honest.publicKey, sequence: 1 << 40, operation: [1],
            signature: forger.request(clusterIdentifier: clusterIdentifier, sequence: 1 << 40, operation: [1]).signature)
        // Every request to every replica at once, the forgery first, as clients do.
        let outcomes = await withTaskGroup(
            of: (Int, Result<AtomicBroadcast.Instance.SubmitResult, ClientRequestError>).self
        ) { group in
            for (index, request) in ([forged] + requests).enumerated() {
                for node in cluster.nodes {
                    group.addTask { (index, await node.submit(request)) }
                }
            }
            var outcomes = [(Int, Result<AtomicBroadcast.Instance.SubmitResult, ClientRequestError>)]()
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.count == 4 * 41)
        for (index, outcome) in outcomes {
            switch outcome {
            case .failure(let error):
                #expect(index == 0 && error == .invalidSignature, "request \(index): \(error)")
            case .success(let result):
                #expect(index != 0 && (result == .accepted || result == .duplicate), "request \(index): \(result)")
            }
        }
        let done = await eventually(within: 60) {
            for node in cluster.nodes where await node.executedCount < UInt64(requests.count) { return false }
            return true
        }
        #expect(done)
        var submissionChecks = 0
        var deferred = 0
        var overdue = 0
        for (offset, node) in cluster.nodes.enumerated() {
            let statistics = await node.statistics
            #expect(statistics.refusedRequests == [.invalidSignature: 1], "replica \(offset + 1)")
            #expect(statistics.unauthenticRequests == 0, "the forgery was never ordered")
            // Each of the 41 requests checked once here, whether at submission or at execution (a request
            // promoted while it was being delivered may be checked twice), or not at all because t + 1
            // replicas queued it (attested: an honest one checked it).
            let checks = statistics.submissionVerifications + statistics.executionVerifications
            #expect((41...45).contains(checks + statistics.attestedRequests), "replica \(offset + 1): \(statistics)")
            submissionChecks += statistics.submissionVerifications
            deferred += statistics.deferredRequests
            overdue += statistics.overdueRequests
        }
        // Not every replica checks every request at submission any more (it was 4 × 41): only first proposers
        // do, and the others for requests held longer than `deferredPatience`. Those overdue checks depend on
        // timing (a whole test run on a loaded machine starved this test for minutes and made 48 requests
        // overdue), so they are not counted against the bound.
        #expect(submissionChecks - overdue <= 3 * 41, "\(submissionChecks) checks, \(overdue) overdue")
        #expect(deferred > 0)
        let chains = await cluster.nodes.asyncMap { await $0.executionChain }
        #expect(Set(chains).count == 1)
        await cluster.shutdown()
    }
}

/// Client authentication at submission, and the metrics that count it (no network needed: refused requests
/// never reach atomic broadcast).
@Suite struct RequestAuthenticationTests {
    @Test func forgedRequestsAreRefusedWithATypedErrorAndCounted() async throws {
        let cluster = try LocalCluster(replicas: 4, faulty: 1)
        let node = cluster.nodes[0]
        let metrics = ReplicaMetrics(node: node)
        let honest = try ClientKey(seed: [UInt8](repeating: 1, count: 32))
        let forger = try ClientKey(seed: [UInt8](repeating: 2, count: 32))
        let clusterIdentifier = cluster.configuration.clusterIdentifier
        let genuine = honest.request(clusterIdentifier: clusterIdentifier, sequence: 1, operation: [1])
        // The honest client's key, a far-ahead sequence, the forger's signature.
        let forgersSignature = forger.request(
            clusterIdentifier: clusterIdentifier, sequence: 1 << 40, operation: [1]
        ).signature
        let forged = ClientRequest(
            publicKey: honest.publicKey, sequence: 1 << 40, operation: [1], signature: forgersSignature)
        #expect(await node.submit(forged) == .failure(.invalidSignature))
        // Signed for another cluster.
        let elsewhere = honest.request(clusterIdentifier: [UInt8](repeating: 0, count: 16), sequence: 2, operation: [])
        #expect(await node.submit(elsewhere) == .failure(.invalidSignature))
        var identity = [UInt8](repeating: 0, count: 32)
        identity[0] = 1
        let badKey = ClientRequest(publicKey: identity, sequence: 1, operation: [], signature: genuine.signature)
        #expect(await node.submit(badKey) == .failure(.invalidPublicKey))
        #expect(await node.statistics.refusedRequests == [.invalidSignature: 2, .invalidPublicKey: 1])
        let text = String(decoding: await metrics.render(), as: UTF8.self)
        #expect(text.contains("sintra_requests_refused_total{reason=\"invalid-signature\"} 2"), "\(text)")
        #expect(text.contains("sintra_requests_refused_total{reason=\"invalid-public-key\"} 1"), "\(text)")
        #expect(text.contains("sintra_requests_executed_total 0"), "\(text)")
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async -> T) async -> [T] {
        var result = [T]()
        for element in self { result.append(await transform(element)) }
        return result
    }
}

/// A replica answers a peer's catch-up requests for one round at most `catchUpAnswersPerPeerMax` times per
/// life of that peer. A peer killed again and again before it could take in the answers (each life asks
/// once) would otherwise use the budget up and wait in that round for ever after its last restart; its
/// link's new incarnation is what tells the replica to count anew (`AtomicBroadcast.Instance.peerRestarted`).
@Suite(.serialized) struct PeerRestartTests {
    @Test func aPeerThatRestartsIsAnsweredAgainAfterTheCap() async throws {
        let cluster = try LocalCluster(replicas: 4, faulty: 1)
        let nodes = Array(cluster.nodes.prefix(3))
        for node in nodes { try await node.start() }
        let requests = try DurabilityTests.requests(0..<6, cluster: cluster.configuration.clusterIdentifier)
        await DurabilityTests.submit(requests, to: nodes)
        #expect(await DurabilityTests.waitFor(requests.count, nodes))
        let cap = AtomicBroadcast.Limits().catchUpAnswersPerPeerMax
        // Member 4 is played by a bare network, one per life; each life asks for round 1 and counts the
        // answers of replica 1.
        let identity = try LocalKeys(secrets: cluster.keys.secrets[3]).identity
        let limits = WireLimits(payloadBytesMax: Frame.frameBytesMax, memberCount: 4)
        func life(asking times: Int, expecting answers: Int) async throws -> Int {
            let network = try ReplicaNetwork(
                configuration: cluster.configuration, identity: identity, options: ReplicaNode.Options.testing.network)
            let collector = FrameCollector(network)
            try await network.start()
            let request = Frame(
                clusterIdentifier: cluster.configuration.clusterIdentifier, sender: 4, path: ReplicaNode.path,
                body: AtomicBroadcast.Message.catchUpRequest(round: 1).encoded)
            for _ in 0..<times { _ = network.send(request, to: 1) }
            func count() -> Int {
                collector.frames.filter {
                    guard $0.sender == 1, let message = try? AtomicBroadcast.Message(encoded: $0.frame.body, limits: limits),
                        case .catchUpResponse(1, _, _) = message
                    else { return false }
                    return true
                }.count
            }
            _ = await eventually(within: 60) { count() >= answers }
            // Time for an answer too many to arrive, and for the acknowledgements to leave.
            try await Task.sleep(for: .milliseconds(500))
            let counted = count()
            await network.shutdown()
            return counted
        }
        #expect(try await life(asking: cap + 2, expecting: cap) == cap)
        #expect(try await life(asking: 1, expecting: 1) == 1)
        #expect(await nodes[0].statistics.peerRestarts == 1)
        await cluster.shutdown()
    }
}

/// Collects the frames a network receives.
final class FrameCollector: Sendable {
    private let received = NIOLockedValueBox<[ReceivedFrame]>([])
    private let task: Task<Void, Never>

    init(_ network: ReplicaNetwork) {
        let received = self.received
        task = Task {
            for await frame in network.frames { received.withLockedValue { $0.append(frame) } }
        }
    }

    var frames: [ReceivedFrame] { received.withLockedValue { $0 } }
}
