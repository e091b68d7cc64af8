import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SintraClient
import SintraCrypto
import SintraReplica
import Testing

@testable import SintraNetwork

/// Real `sintra replica` processes on loopback (n = 4, t = 1), driven by `SintraClient`, `sintra status`,
/// metrics scrapes and hostile connections. Deadlines are generous (a loaded 2-core machine runs four
/// debug replicas here); the suite takes seconds when the machine is idle.
@Suite(.serialized) struct ProcessClusterTests {
    static let waitSeconds: Double = 120

    /// Writes acknowledged by t + 1 replicas survive `kill -9` of t replicas: the remaining n − t go on
    /// ordering new writes, and reads return every value. `sintra status` exits successfully while n − t
    /// replicas answer and fails once fewer do.
    @Test func writesSurviveKillOfTReplicasAndStatusTellsTheQuorum() async throws {
        let cluster = try ProcessCluster(replicas: 4, faulty: 1)
        defer { cluster.stop() }
        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let client = try SintraClient(configuration: cluster.configuration, timeoutSeconds: Self.waitSeconds)
        for number in 0..<5 {
            #expect(try await client.execute(.put(key: Array("k\(number)".utf8), value: [UInt8(number)])) == .ok)
        }
        let healthy = try await cluster.sintra(["status", "--config", cluster.configPath, "--timeout", "20"])
        #expect(healthy.status == 0, "\(healthy.output)")
        #expect(healthy.output.contains("4 of 4 replicas reachable"), "\(healthy.output)")

        // t = 1: kill one replica the hard way (not the last one, so member order does not hide anything).
        cluster.kill(2)
        for number in 5..<8 {
            #expect(try await client.execute(.put(key: Array("k\(number)".utf8), value: [UInt8(number)])) == .ok)
        }
        for number in 0..<8 {
            #expect(try await client.execute(.get(key: Array("k\(number)".utf8))) == .value([UInt8(number)]))
        }
        let degraded = try await cluster.sintra(["status", "--config", cluster.configPath, "--timeout", "20"])
        #expect(degraded.status == 0, "\(degraded.output)")
        #expect(degraded.output.contains("3 of 4 replicas reachable"), "\(degraded.output)")
        #expect(degraded.output.split(separator: "\n").contains { $0.hasPrefix("2 ") && $0.contains(" no (") })
        // The live replicas agree on the state (a replica outside the answering t + 1 may lag a little).
        var answers = [StatusProbe.Answer]()
        let deadline = Date().addingTimeInterval(Self.waitSeconds)
        repeat {
            answers = await StatusProbe.query(cluster.endpoints, timeoutSeconds: 20)
            let executed = answers.compactMap { $0.status?.executedCount }
            if executed.count == 3 && executed.allSatisfy({ $0 == 16 }) { break }
            try await Task.sleep(for: .milliseconds(100))
        } while Date() < deadline
        let live = answers.compactMap(\.status)
        // Eight puts and eight gets.
        #expect(live.count == 3 && live.allSatisfy { $0.executedCount == 16 }, "\(live)")
        #expect(Set(live.map(\.stateDigest)).count == 1, "\(live)")

        // Beyond t: the service cannot order any more, and status says so.
        cluster.kill(4)
        let broken = try await cluster.sintra(["status", "--config", cluster.configPath, "--timeout", "5"])
        #expect(broken.status != 0, "\(broken.output)")
        #expect(broken.output.contains("only 2 of 4 replicas reachable"), "\(broken.output)")
        await client.close()
    }

    /// A replica killed with `kill -9` and started again from its data folder rejoins: it catches up on
    /// the requests ordered while it was down and ends in the same state as the others.
    @Test func aKilledReplicaRestartsFromItsStoreAndCatchesUp() async throws {
        let cluster = try ProcessCluster(replicas: 4, faulty: 1)
        defer { cluster.stop() }
        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let client = try SintraClient(configuration: cluster.configuration, timeoutSeconds: Self.waitSeconds)
        for number in 0..<3 {
            #expect(try await client.execute(.put(key: [UInt8(number)], value: [1])) == .ok)
        }
        cluster.kill(3)
        for number in 3..<6 {
            #expect(try await client.execute(.put(key: [UInt8(number)], value: [2])) == .ok)
        }
        try cluster.start(3)
        #expect(await cluster.waitUntilServing([3], within: Self.waitSeconds), "\(cluster.logs())")
        for number in 6..<8 {
            #expect(try await client.execute(.put(key: [UInt8(number)], value: [3])) == .ok)
        }
        var live = [ReplicaStatus]()
        let deadline = Date().addingTimeInterval(Self.waitSeconds)
        repeat {
            live = await StatusProbe.query(cluster.endpoints, timeoutSeconds: 20).compactMap(\.status)
            if live.count == 4, live.allSatisfy({ $0.executedCount == 8 }), Set(live.map(\.stateDigest)).count == 1 {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        #expect(live.count == 4 && live.allSatisfy { $0.executedCount == 8 }, "\(live)\n\(cluster.logs())")
        #expect(Set(live.map(\.stateDigest)).count == 1)
        await client.close()
    }

    /// Metrics move with the load; a peer presenting a key that is not in cluster.json is refused at the
    /// TLS handshake; connections sending garbage to the peer port and the client port are dropped; and
    /// the cluster goes on serving.
    @Test func metricsMoveAndStrangersAndGarbageAreRefused() async throws {
        let cluster = try ProcessCluster(replicas: 4, faulty: 1)
        defer { cluster.stop() }
        try cluster.startAll()
        #expect(await cluster.waitUntilServing([1, 2, 3, 4], within: Self.waitSeconds), "\(cluster.logs())")
        let metricsPort = cluster.metricsPorts[0]
        let before = try await scrapeMetrics(port: metricsPort)
        #expect(before["sintra_round"] != nil, "\(before.keys.sorted())")
        #expect(before["sintra_client_connections"] != nil)
        #expect(before["sintra_requests_refused_total{reason=\"invalid-signature\"}"] == 0)

        let client = try SintraClient(configuration: cluster.configuration, timeoutSeconds: Self.waitSeconds)
        for number in 0..<4 {
            #expect(try await client.execute(.put(key: [UInt8(number)], value: [1])) == .ok)
        }
        // Replica 1 may not be among the t + 1 that answered first: wait for it.
        let after = try await scrapeMetrics(port: metricsPort, within: Self.waitSeconds) {
            ($0["sintra_requests_executed_total"] ?? 0) >= 4
        }
        #expect((after["sintra_requests_executed_total"] ?? 0) >= 4)
        #expect((after["sintra_batches_delivered_total"] ?? 0) > (before["sintra_batches_delivered_total"] ?? 0))
        #expect((after["sintra_round"] ?? 0) > (before["sintra_round"] ?? 0))
        #expect((after["sintra_client_requests_total"] ?? 0) >= 4)

        // A stranger: a valid TLS 1.3 Ed25519 certificate, but a key cluster.json does not name.
        let refusedBefore = after["sintra_network_events_total{event=\"refused_handshake\"}"] ?? 0
        let stranger = try NodeIdentity(index: 2, seed: (0..<32).map { _ in UInt8.random(in: 0...255) })
        #expect(try await Self.strangerIsDisconnected(stranger, cluster: cluster, member: 1))
        let refused = try await scrapeMetrics(port: metricsPort)
        #expect((refused["sintra_network_events_total{event=\"refused_handshake\"}"] ?? 0) >= refusedBefore + 1)

        // Garbage: to the peer port (no TLS at all) and to the client port.
        let member = cluster.configuration.members[0]
        for port in [member.port, ClientPorts.port(of: member)] {
            let connection = try RawConnection(port: port)
            connection.send((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 97) })
            let closed = await Task.detached { connection.readUntilClosed().closed }.value
            connection.close()
            #expect(closed, "port \(port) kept a connection that sent garbage")
        }

        // Still serving, and replica 1 among the t + 1 that answer alike.
        #expect(try await client.execute(.put(key: [9], value: [9])) == .ok)
        #expect(try await client.execute(.get(key: [9])) == .value([9]))
        let last = try await scrapeMetrics(port: metricsPort, within: Self.waitSeconds) {
            ($0["sintra_requests_executed_total"] ?? 0) >= 6
        }
        #expect((last["sintra_requests_executed_total"] ?? 0) >= 6)
        await client.close()
    }

    /// Dials member `member`'s peer port with TLS as `stranger`; true if the replica closed the connection
    /// (it must refuse the handshake: the key is pinned for no member).
    static func strangerIsDisconnected(_ stranger: NodeIdentity, cluster: ProcessCluster, member: Int) async throws
        -> Bool
    {
        let credentials = try IdentityCertificate(
            identity: stranger, clusterIdentifier: cluster.configuration.clusterIdentifier)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.signingSignatureAlgorithms = [.ed25519]
        configuration.verifySignatureAlgorithms = [.ed25519]
        configuration.certificateChain = [.certificate(credentials.certificate)]
        configuration.privateKey = .privateKey(credentials.privateKey)
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let target = cluster.configuration.members[member - 1]
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: context, serverHostname: nil))
                }
            }
            .connect(host: target.host, port: target.port).get()
        var buffer = channel.allocator.buffer(capacity: 16)
        buffer.writeBytes([0, 0, 0, 4, 1, 2, 3, 4])
        try? await channel.writeAndFlush(buffer)
        let deadline = Date().addingTimeInterval(waitSeconds)
        while channel.isActive, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let closed = !channel.isActive
        try? await channel.close()
        try await group.shutdownGracefully()
        return closed
    }
}
