import SintraCore
import SintraCrypto
import SintraReplica
import Testing

@testable import SintraSimulation

/// Seeded runs of SintraKV over atomic broadcast against every adversary: everything `abc` checks, plus
/// replies and state digests against a sequential reference, and what clients accept with t + 1 replies.
@Suite struct KeyValueSimulationTests {
    typealias Operation = KeyValueStore.Operation

    /// (n, t, first seed, seeds per adversary): 255 runs (forge-client included). One request per honest
    /// client keeps runs short (about 165 ms of CPU at n = 4 in a debug build, 600 ms at n = 7).
    static let cases: [(Int, Int, UInt64, Int)] = [(4, 1, 60_000, 8), (4, 1, 60_008, 8), (7, 2, 67_000, 1)]

    @Test(arguments: cases)
    func everyAdversaryLeavesTheInvariantsIntact(replicas: Int, faulty: Int, firstSeed: UInt64, seeds: Int) throws {
        let runner = try SimulationCatalog.runner(
            for: "kv", replicas: replicas, faulty: faulty, options: SimulationOptions(requests: 1))
        // Crash-restart runs have their own tests (`RestartSimulationTests`).
        let adversaries = runner.adversaries.filter { $0.restarts == nil }
        #expect(runner.adversaries.count == adversaries.count + 2)
        let summary = runner.runMany(firstSeed: firstSeed, seeds: seeds, adversaries: adversaries)
        #expect(summary.violations.isEmpty, "\(summary.text)")
        for adversary in summary.adversaries {
            let order = try #require(adversary.order)
            #expect(order.requestsDelivered >= order.requestsRequired, "\(adversary.adversary)")
        }
    }

    /// Closed-loop clients with several requests each: a request is submitted only once the previous one
    /// was executed, so runs take several rounds.
    @Test func closedLoopClientsGetEveryResult() throws {
        let simulation = Simulation(
            adapter: KeyValueAdapter(requestsPerClient: 3, batchCountMax: 2),
            cluster: try SimulationCluster.deal(replicas: 4, faulty: 1))
        let adversaries = Adversary.catalogue(for: simulation.adapter).filter {
            ["equivocate", "replay-round", "steer"].contains($0.name)
        }
        let summary = simulation.runMany(firstSeed: 61_000, seeds: 4, adversaries: adversaries)
        #expect(summary.violations.isEmpty, "\(summary.text)")
        #expect(summary.adversaries.allSatisfy { ($0.order?.batchesMax ?? 0) >= 3 })
    }

    /// The reference check fails on a replica that answers differently or whose state differs.
    @Test func theReferenceCatchesAWrongReplyAndAWrongState() throws {
        let key = try ClientKey(seed: [UInt8](repeating: 7, count: 32))
        let cluster = [UInt8](repeating: 3, count: 16)
        let put = key.request(
            clusterIdentifier: cluster, sequence: 1, operation: Operation.put(key: [0x61], value: [1]).encoded)
        let get = key.request(clusterIdentifier: cluster, sequence: 2, operation: Operation.get(key: [0x61]).encoded)
        var store = RequestExecutor(machine: KeyValueStore())
        func reply(_ request: ClientRequest) -> KeyValueReply {
            guard case .executed(let reply) = store.execute(request) else { return .stale }
            return .executed(reply.result)
        }
        let first = KeyValueRound(
            round: 1, requests: [put.encoded], replies: [reply(put)], digest: store.machine.digest)
        let second = KeyValueRound(
            round: 2, requests: [get.encoded], replies: [reply(get)], digest: store.machine.digest)
        let scenarioClient = KeyValueAdapter.Scenario.Client(
            id: key.client, key: key, targets: [1, 2, 3, 4], requests: [put, get])
        func check(_ rounds: [[KeyValueRound]]) -> [Checkers.Finding] {
            KeyValueReference.check(
                rounds, honest: [1, 2, 3], byzantine: [4], faulty: 1, clients: [scenarioClient],
                authentic: [put.encoded, get.encoded], forgedResult: [9])
        }
        #expect(check([[first, second], [first, second], [first]]).isEmpty)
        let wrongReply = KeyValueRound(
            round: 2, requests: [get.encoded], replies: [.executed(KeyValueStore.Result.notFound.encoded)],
            digest: second.digest)
        #expect(check([[first, second], [first, wrongReply], [first]]).map(\.kind) == [.validity])
        // Two replicas agreeing on the wrong result make the client accept it.
        #expect(
            check([[first, wrongReply], [first, wrongReply], [first]]).map(\.kind) == [.validity, .validity, .validity])
        let wrongState = KeyValueRound(
            round: 1, requests: [put.encoded], replies: first.replies, digest: second.digest.reversed())
        #expect(check([[wrongState, second], [first, second], [first, second]]).map(\.kind) == [.validity])
    }

    /// Formerly a finding (requests carried no client signature, so one Byzantine replica that put an
    /// honest client's (client, sequence 1000) into its queue made every later request of that client stale
    /// and stalled it for ever). Now the forged request is ordered but every honest replica skips it as
    /// unauthentic, and the client gets every result.
    @Test func forgedClientRequestsAreSkippedAndTheClientGoesOn() throws {
        let simulation = Simulation(
            adapter: KeyValueAdapter(requestsPerClient: 3, batchCountMax: 3),
            cluster: try SimulationCluster.deal(replicas: 4, faulty: 1))
        let adversary = Adversary(name: "forge-client", scheduler: .random, behaviour: "forge-client")
        let results = (0..<4).map { simulation.run(seed: 62_000 + UInt64($0), adversary: adversary) }
        #expect(results.allSatisfy { $0.violations.isEmpty }, "\(results.flatMap(\.violations))")
        // The attack happened: the forged request was ordered, and skipped.
        #expect(results.contains { $0.outputs.contains { $0.contains("1 unauthentic skipped") } })
        #expect(results.allSatisfy { ($0.order?.itemsDelivered ?? 0) >= ($0.order?.itemsRequired ?? 1) })
    }

    /// A request is authentic only with its own key's signature over this cluster and these fields.
    @Test func authenticatorAcceptsOnlyTheKeyHoldersSignatureForThisCluster() throws {
        let cluster = [UInt8](repeating: 5, count: 16)
        let key = try ClientKey(seed: [UInt8](repeating: 9, count: 32))
        let other = try ClientKey(seed: [UInt8](repeating: 8, count: 32))
        let request = key.request(clusterIdentifier: cluster, sequence: 4, operation: [1, 2, 3])
        var authenticator = RequestAuthenticator(clusterIdentifier: cluster)
        #expect(try authenticator.admit(request.encoded) == request)
        #expect(authenticator.verifications == 1)
        // Verified once: ordering it again costs no second verification.
        #expect(try authenticator.authenticate(request.encoded).get() == request)
        #expect(authenticator.verifications == 1)
        func tampered(sequence: UInt64 = 4, operation: [UInt8] = [1, 2, 3], signature: [UInt8]? = nil) -> [UInt8] {
            ClientRequest(
                publicKey: key.publicKey, sequence: sequence, operation: operation,
                signature: signature ?? request.signature
            ).encoded
        }
        #expect(throws: ClientRequestError.invalidSignature) { try authenticator.admit(tampered(sequence: 5)) }
        #expect(throws: ClientRequestError.invalidSignature) { try authenticator.admit(tampered(operation: [1, 2])) }
        let othersSignature = other.request(clusterIdentifier: cluster, sequence: 4, operation: [1, 2, 3]).signature
        #expect(authenticator.authenticate(tampered(signature: othersSignature)) == .failure(.invalidSignature))
        let elsewhere = key.request(clusterIdentifier: [UInt8](repeating: 6, count: 16), sequence: 4, operation: [1])
        #expect(authenticator.authenticate(elsewhere.encoded) == .failure(.invalidSignature))
        var lowOrderKey = [UInt8](repeating: 0, count: 32)
        lowOrderKey[0] = 1  // the identity point
        let badKey = ClientRequest(publicKey: lowOrderKey, sequence: 1, operation: [], signature: request.signature)
        #expect(authenticator.authenticate(badKey.encoded) == .failure(.invalidPublicKey))
        #expect(authenticator.authenticate([1, 2, 3]) == .failure(.malformed))
        #expect(request.client == ClientRequest.clientIdentifier(of: key.publicKey))
        #expect(request.client != other.client)

        // An ordered batch: verified before, new and valid, forged, a bad key, no request. The batch check
        // fails, so each new signature is checked alone, and only the forgery is refused.
        let fresh = other.request(clusterIdentifier: cluster, sequence: 1, operation: [7])
        let results = authenticator.authenticate(
            batch: [request.encoded, fresh.encoded, tampered(sequence: 9), badKey.encoded, [1, 2]])
        #expect(
            results == [
                .success(request), .success(fresh), .failure(.invalidSignature), .failure(.invalidPublicKey),
                .failure(.malformed),
            ])
        // The valid new one is now remembered; a batch of valid new ones passes as a whole.
        let verifications = authenticator.verifications
        #expect(authenticator.authenticate(fresh.encoded) == .success(fresh))
        #expect(authenticator.verifications == verifications)
        let more = (2...5).map { other.request(clusterIdentifier: cluster, sequence: UInt64($0), operation: []) }
        #expect(authenticator.authenticate(batch: more.map(\.encoded)) == more.map { .success($0) })

        // Attested entries (queued by t + 1 replicas) are not checked here and are remembered as verified;
        // the others of the same batch are checked as before, so an unattested forgery is still refused.
        let attestedFresh = other.request(clusterIdentifier: cluster, sequence: 6, operation: [8])
        let checksBefore = authenticator.verifications
        let attestedResults = authenticator.authenticate(
            batch: [attestedFresh.encoded, tampered(sequence: 10), [3]], attested: [true, false, true])
        #expect(attestedResults == [.success(attestedFresh), .failure(.invalidSignature), .failure(.malformed)])
        #expect(authenticator.verifications == checksBefore + 1, "only the unattested request was checked")
        #expect(authenticator.attestedSkips == 1)
        #expect(authenticator.isVerified(digest: AtomicBroadcast.digest(attestedFresh.encoded)))
    }
}
