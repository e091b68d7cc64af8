import Foundation
import SintraClient
import SintraCrypto
import SintraReplica
import Testing

/// Durable `sintra replica` processes (docs/DURABILITY.md): state in `replica-I.data/` next to each
/// secret file, `kill -9` with no warning, restart from the store. (One replica killed and restarted:
/// `ProcessClusterTests.aKilledReplicaRestartsFromItsStoreAndCatchesUp`.)
@Suite(.serialized) struct DurabilityProcessTests {
    static let waitSeconds: Double = 120

    /// Acknowledged writes of the load clients, shared between their tasks.
    actor Acknowledged {
        var values: [[UInt8]: [UInt8]] = [:]
        var stopped = false
        func record(_ key: [UInt8], _ value: [UInt8]) { values[key] = value }
        func stop() { stopped = true }
    }

    /// SplitMix64 (Steele, Lea and Flood, OOPSLA 2014): the kill schedule replays from its seed.
    struct Schedule {
        var state: UInt64
        mutating func next(_ bound: UInt64) -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return (z ^ (z >> 31)) % bound
        }
    }

    /// One replica killed with SIGKILL eight times at moments drawn from a seed while three closed-loop
    /// clients write, each time restarted from its data folder after a drawn pause: at the end it has the
    /// same executed count and state digest as the others, and every acknowledged write reads back. The
    /// victim is one replica (the others never restart), so at most t = 1 replica is restarting while a
    /// round is in flight, which is what stage 1 of durability claims to be live with. A kill can land in
    /// the middle of a commit, a round, or the catch-up after the previous restart.
    @Test func oneReplicaKilledAtRandomMomentsCatchesUpEveryTime() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["SINTRA_KILL_SEED"] ?? "") ?? 6
        var schedule = Schedule(state: seed)
        let cluster = try ProcessCluster(replicas: 4, faulty: 1)
        defer { cluster.stop() }
        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let victim = 1 + Int(schedule.next(4))
        let acknowledged = Acknowledged()
        let configuration = cluster.configuration
        let load = (0..<3).map { writer in
            Task {
                let client = try SintraClient(configuration: configuration, timeoutSeconds: Self.waitSeconds)
                var number = 0
                while await !acknowledged.stopped {
                    let key = Array("w\(writer)-\(number)".utf8)
                    let value = Array("\(number)".utf8)
                    if try await client.execute(.put(key: key, value: value)) == .ok {
                        await acknowledged.record(key, value)
                    }
                    number += 1
                }
                await client.close()
            }
        }
        var pauses = [String]()
        for _ in 0..<8 {
            let running = 200 + schedule.next(1_000)
            let down = schedule.next(600)
            pauses.append("up \(running) ms, down \(down) ms")
            try await Task.sleep(for: .milliseconds(running))
            cluster.kill(victim)
            try await Task.sleep(for: .milliseconds(down))
            try cluster.start(victim)
        }
        await acknowledged.stop()
        for task in load { try await task.value }
        let written = await acknowledged.values
        #expect(written.count > 8, "seed \(seed): only \(written.count) writes acknowledged")

        // Every replica, the victim included, ends with the same count and digest.
        let statuses = try await Self.agreeing(cluster, executedAtLeast: UInt64(written.count))
        #expect(
            statuses.count == 4 && Set(statuses.map(\.stateDigest)).count == 1
                && Set(statuses.map(\.executedCount)).count == 1,
            "seed \(seed), victim \(victim), \(pauses): \(statuses)\n\(cluster.logs())")
        let stored = try await Self.readBack(configuration, from: "w", to: "x")
        let lost = written.filter { stored[$0.key] != $0.value }
        #expect(lost.isEmpty, "seed \(seed): \(lost.count) of \(written.count) acknowledged writes lost")
    }

    /// Polls `sintra status` until all four replicas answer with the same executed count (at least
    /// `executedAtLeast`) and the same digest; returns the last answers.
    static func agreeing(_ cluster: ProcessCluster, executedAtLeast: UInt64) async throws -> [ReplicaStatus] {
        var statuses = [ReplicaStatus]()
        let deadline = Date().addingTimeInterval(waitSeconds)
        repeat {
            statuses = await StatusProbe.query(cluster.endpoints, timeoutSeconds: 10).compactMap(\.status)
            if statuses.count == 4, Set(statuses.map(\.executedCount)).count == 1,
                Set(statuses.map(\.stateDigest)).count == 1, statuses[0].executedCount >= executedAtLeast
            {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        return statuses
    }

    /// Every key in [from, to) and its value, read with a few scans (one get per write would take a round each).
    static func readBack(_ configuration: ClusterConfiguration, from: String, to: String) async throws -> [[UInt8]: [UInt8]] {
        let reader = try SintraClient(configuration: configuration, timeoutSeconds: waitSeconds)
        var stored = [[UInt8]: [UInt8]]()
        var next = Array(from.utf8)
        while true {
            guard case .entries(let entries) = try await reader.execute(
                .scan(from: next, to: Array(to.utf8), limit: KeyValueStore.scanCountMax))
            else {
                Issue.record("a scan did not return entries")
                break
            }
            for entry in entries { stored[entry.key] = entry.value }
            guard let last = entries.last?.key, entries.count == KeyValueStore.scanCountMax else { break }
            next = last + [0]
        }
        await reader.close()
        return stored
    }

    /// Polls `sintra status` until every replica in `ids` answers with `executed` requests and all their
    /// digests are equal; returns the last answers.
    static func converged(_ cluster: ProcessCluster, ids: [Int], executed: UInt64) async throws -> [ReplicaStatus] {
        var statuses = [ReplicaStatus]()
        let deadline = Date().addingTimeInterval(waitSeconds)
        repeat {
            let answers = await StatusProbe.query(cluster.endpoints.filter { ids.contains($0.member) }, timeoutSeconds: 10)
            statuses = answers.compactMap(\.status)
            if statuses.count == ids.count, statuses.allSatisfy({ $0.executedCount == executed }),
                Set(statuses.map(\.stateDigest)).count == 1
            {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        return statuses
    }

    /// Every replica killed with SIGKILL at once after its writes were acknowledged: restarted from their
    /// stores, the replicas serve every acknowledged value and go on ordering (the cluster was quiet, so no
    /// replica had sent anything for the next round and none is silent after the restart).
    @Test func allReplicasKilledAtOnceComeBackWithEveryAcknowledgedWrite() async throws {
        let cluster = try ProcessCluster(replicas: 4, faulty: 1)
        defer { cluster.stop() }
        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let client = try SintraClient(configuration: cluster.configuration, timeoutSeconds: Self.waitSeconds)
        for number in 0..<12 {
            #expect(try await client.execute(.put(key: Array("k\(number)".utf8), value: [UInt8(number)])) == .ok)
        }
        let before = try await Self.converged(cluster, ids: [1, 2, 3, 4], executed: 12)
        #expect(before.count == 4, "\(before)")
        await client.close()
        for id in 1...4 { cluster.kill(id) }

        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let restored = try await Self.converged(cluster, ids: [1, 2, 3, 4], executed: 12)
        #expect(restored.map(\.stateDigest) == before.map(\.stateDigest), "\(restored)")
        let again = try SintraClient(configuration: cluster.configuration, timeoutSeconds: Self.waitSeconds)
        for number in 0..<12 {
            #expect(try await again.execute(.get(key: Array("k\(number)".utf8))) == .value([UInt8(number)]))
        }
        #expect(try await again.execute(.put(key: Array("after".utf8), value: [1])) == .ok)
        await again.close()
    }
    /// Every replica killed with SIGKILL at once while eight clients write (so rounds are in flight: each
    /// replica has sent its queue and agreement messages of the round it is in), three times at seeded
    /// moments, each time restarted from its store. Stage 1 stalled here for ever (every replica silent in
    /// the round it was in); with the journal (stage 2) each replica replays that round, re-sends what it
    /// sent, and the cluster orders new requests. At the end every acknowledged write reads back and all
    /// four have the same count and digest.
    @Test func allReplicasKilledUnderLoadReplayAndGoOn() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["SINTRA_KILL_SEED"] ?? "") ?? 3
        var schedule = Schedule(state: seed)
        let cluster = try ProcessCluster(replicas: 4, faulty: 1)
        defer { cluster.stop() }
        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let configuration = cluster.configuration
        let acknowledged = Acknowledged()
        var moments = [String]()
        for cycle in 0..<3 {
            let writers = Acknowledged()
            let load = (0..<8).map { writer in
                Task {
                    // A short timeout: a request in flight at the kill may never be answered (its client
                    // would send it again); only answered writes count.
                    let client = try SintraClient(configuration: configuration, timeoutSeconds: 5)
                    var number = 0
                    while await !writers.stopped {
                        let key = Array("c\(cycle)-w\(writer)-\(number)".utf8)
                        let value = Array("\(number)".utf8)
                        if (try? await client.execute(.put(key: key, value: value))) == .ok {
                            await acknowledged.record(key, value)
                        }
                        number += 1
                    }
                    await client.close()
                }
            }
            let running = 800 + schedule.next(1_500)
            moments.append("cycle \(cycle): killed after \(running) ms")
            try await Task.sleep(for: .milliseconds(running))
            for id in 1...4 { cluster.kill(id) }
            await writers.stop()
            for task in load { try await task.value }
            try cluster.startAll()
            #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
            // Live again: a new write is ordered and answered.
            let probe = try SintraClient(configuration: configuration, timeoutSeconds: Self.waitSeconds)
            let answer = try? await probe.execute(.put(key: Array("probe-\(cycle)".utf8), value: [1]))
            #expect(answer == .ok, "seed \(seed), \(moments): no answer after restarting all\n\(cluster.logs())")
            await probe.close()
            if answer != .ok { return }
        }
        let written = await acknowledged.values
        #expect(written.count > 20, "seed \(seed): only \(written.count) writes acknowledged")
        let statuses = try await Self.agreeing(cluster, executedAtLeast: 0)
        #expect(
            statuses.count == 4 && Set(statuses.map(\.stateDigest)).count == 1,
            "seed \(seed), \(moments): \(statuses)")
        let stored = try await Self.readBack(configuration, from: "c", to: "d")
        let lost = written.filter { stored[$0.key] != $0.value }
        #expect(lost.isEmpty, "seed \(seed), \(moments): \(lost.count) of \(written.count) acknowledged writes lost")
    }
}
