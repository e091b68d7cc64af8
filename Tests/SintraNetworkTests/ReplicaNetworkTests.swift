import NIOCore
import NIOPosix
import SintraCore
import SintraCrypto
import Testing

@testable import SintraNetwork

/// Endpoints exchanging frames over real TCP and TLS on loopback. Serialized so that the timing bounds hold on
/// a small machine.
@Suite(.serialized) struct ReplicaNetworkTests {
    @Test func twoEndpointsExchangeFramesInOrder() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        let one = try cluster.network(1)
        let two = try cluster.network(2)
        let received = (FrameCollector(one), FrameCollector(two))
        try await one.start()
        try await two.start()
        for number in 1...100 as ClosedRange<UInt64> {
            #expect(one.send(cluster.frame(from: 1, number: number), to: 2) == .queued)
            #expect(two.send(cluster.frame(from: 2, number: number), to: 1) == .queued)
        }
        let atTwo = await received.1.wait(for: 100)
        let atOne = await received.0.wait(for: 100)
        expectFIFO(atTwo, senders: [1], count: 100)
        expectFIFO(atOne, senders: [2], count: 100)
        #expect(atTwo.first?.frame == cluster.frame(from: 1, number: 1))
        #expect(await eventually { one.queuedFrames(to: 2) == 0 })
        await one.shutdown()
        await two.shutdown()
    }

    /// A receiver acknowledges after `acknowledgementDelay` or `acknowledgementFramesMax` frames, whichever
    /// comes first: with a delay no test waits out, ten frames stay queued at the sender once delivered, and
    /// a thousand are acknowledged by count down to fewer than the maximum.
    @Test func acknowledgementsWaitForTheirDelayOrTheirFrameCount() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        let one = try cluster.network(1)
        var receiving = ReplicaNetwork.Options.testing
        receiving.acknowledgementDelay = .seconds(600)
        receiving.acknowledgementFramesMax = 100
        let two = try cluster.network(2, options: receiving)
        let atTwo = FrameCollector(two)
        try await one.start()
        try await two.start()
        for number in 1...10 as ClosedRange<UInt64> {
            #expect(one.send(cluster.frame(from: 1, number: number), to: 2) == .queued)
        }
        await atTwo.wait(for: 10)
        #expect(one.queuedFrames(to: 2) == 10)
        for number in 11...1_000 as ClosedRange<UInt64> {
            #expect(one.send(cluster.frame(from: 1, number: number), to: 2) == .queued)
        }
        expectFIFO(await atTwo.wait(for: 1_000), senders: [1], count: 1_000)
        #expect(await eventually { one.queuedFrames(to: 2) < 100 })
        await one.shutdown()
        await two.shutdown()
    }

    @Test func fourEndpointsBroadcast() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        let networks = try (1...4).map { try cluster.network($0) }
        let collectors = networks.map(FrameCollector.init)
        for network in networks {
            try await network.start()
        }
        for number in 1...50 as ClosedRange<UInt64> {
            for network in networks {
                #expect(network.broadcast(cluster.frame(from: network.localMember, number: number)).isEmpty)
            }
        }
        for collector in collectors {
            let frames = await collector.wait(for: 200)
            expectFIFO(frames, senders: [1, 2, 3, 4], count: 50)
        }
        for network in networks {
            #expect(network.statistics.refusedHandshakes == 0)
            await network.shutdown()
        }
    }

    @Test func aKeyNotInTheClusterIsRefused() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        // An impostor claims member 2's place (and port) with a key of its own.
        let impostor = try NodeIdentity(index: 2, seed: randomSeed())
        var forged = cluster.members
        forged[1] = ClusterMember(
            index: 2, host: "127.0.0.1", port: cluster.members[1].port, identityKey: impostor.publicKey.bytes)
        let impostorNetwork = try ReplicaNetwork(
            members: forged, clusterIdentifier: cluster.clusterIdentifier, identity: impostor, options: .testing)
        let one = try cluster.network(1)
        let atOne = FrameCollector(one)
        let atImpostor = FrameCollector(impostorNetwork)
        try await one.start()
        try await impostorNetwork.start()
        #expect(impostorNetwork.send(cluster.frame(from: 2, number: 1), to: 1) == .queued)
        #expect(one.send(cluster.frame(from: 1, number: 1), to: 2) == .queued)
        // Member 1 refuses the impostor when it dials in, and refuses it again when dialing member 2's port.
        // (The impostor has member 1's true key, so it accepts member 1.)
        #expect(await eventually { one.statistics.refusedHandshakes >= 2 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(atOne.frames.isEmpty)
        #expect(atImpostor.frames.isEmpty)
        #expect(one.queuedFrames(to: 2) == 1)
        await impostorNetwork.shutdown()
        await one.shutdown()
    }

    @Test func garbageBytesAreDisconnectedWithoutHarm() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        var options = ReplicaNetwork.Options.testing
        options.handshakeTimeout = .milliseconds(500)
        let one = try cluster.network(1)
        let two = try cluster.network(2, options: options)
        let atTwo = FrameCollector(two)
        try await two.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        for size in [1, 7, 600, 70_000] {
            let garbage = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
            let channel = try await ClientBootstrap(group: group)
                .connect(host: "127.0.0.1", port: cluster.members[1].port).get()
            // On a loaded machine the endpoint's 500 ms handshake timeout can close the connection before the
            // write is made; the write then fails, and the connection ended all the same.
            try? await channel.writeAndFlush(ByteBuffer(bytes: garbage))
            // The endpoint closes the connection (a TLS error) well within the test's time.
            #expect(await eventually(seconds: 60) { !channel.isActive })
            try? await channel.close()
        }
        try await group.shutdownGracefully()
        // TLS refuses most of it; a fragment too short to refuse waits for the handshake timeout.
        let statistics = two.statistics
        #expect(statistics.connectionErrors + statistics.handshakeTimeouts == 4)
        // The endpoint still serves honest peers.
        try await one.start()
        one.send(cluster.frame(from: 1, number: 1), to: 2)
        expectFIFO(await atTwo.wait(for: 1), senders: [1], count: 1)
        await one.shutdown()
        await two.shutdown()
    }

    @Test func droppedConnectionsLoseNothing() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        let one = try cluster.network(1)
        let two = try cluster.network(2)
        let atTwo = FrameCollector(two)
        try await one.start()
        try await two.start()
        var number: UInt64 = 1
        one.send(cluster.frame(from: 1, number: number), to: 2)
        await atTwo.wait(for: 1)
        let drops = 4
        for drop in 1...drops {
            for _ in 0..<500 {
                number += 1
                #expect(one.send(cluster.frame(from: 1, number: number), to: 2) == .queued)
            }
            // Close the channels while frames are in flight, from either end in turn, then wait for the link
            // to stand again.
            await (drop % 2 == 0 ? one : two).dropConnections()
            #expect(await eventually { one.statistics.linksEstablished == drop + 1 })
        }
        await atTwo.wait(for: Int(number))
        #expect(await eventually { one.queuedFrames(to: 2) == 0 })
        try await Task.sleep(for: .milliseconds(50))
        expectFIFO(atTwo.frames, senders: [1], count: number)
        // Frames were in flight at some drop and reached member 2 over a later connection.
        #expect(one.statistics.framesResent > 0)
        await one.shutdown()
        await two.shutdown()
    }

    @Test func framesWaitForAPeerThatIsDownAndSurviveItsRestart() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        let one = try cluster.network(1)
        try await one.start()
        for number in 1...50 as ClosedRange<UInt64> {
            one.send(cluster.frame(from: 1, number: number), to: 2)
        }
        #expect(one.queuedFrames(to: 2) == 50)
        // Member 2 comes up late: it receives all fifty.
        let two = try cluster.network(2)
        let atTwo = FrameCollector(two)
        try await two.start()
        expectFIFO(await atTwo.wait(for: 50), senders: [1], count: 50)
        #expect(await eventually { one.queuedFrames(to: 2) == 0 })
        // Member 2 restarts (a new process state); frames sent meanwhile reach the new one.
        await two.shutdown()
        for number in 51...80 as ClosedRange<UInt64> {
            one.send(cluster.frame(from: 1, number: number), to: 2)
        }
        let restarted = try cluster.network(2)
        let atRestarted = FrameCollector(restarted)
        try await restarted.start()
        let frames = await atRestarted.wait(for: 30)
        #expect(frames.map { $0.frame.path.components.first?.index ?? 0 } == Array(51...80))
        await restarted.shutdown()
        await one.shutdown()
    }

    @Test func aRestartedSenderStartsANewIncarnation() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        let two = try cluster.network(2)
        let atTwo = FrameCollector(two)
        try await two.start()
        for round in 0..<2 {
            let one = try cluster.network(1)
            try await one.start()
            for number in 1...10 as ClosedRange<UInt64> {
                one.send(cluster.frame(from: 1, number: number), to: 2)
            }
            await atTwo.wait(for: 10 * (round + 1))
            await one.shutdown()
        }
        let numbers = atTwo.frames.map { $0.frame.path.components.first?.index ?? 0 }
        #expect(numbers == Array(1...10) + Array(1...10))
        // The receiver sees the restart: each start's frames carry one incarnation, and the two differ.
        let incarnations = atTwo.frames.map(\.incarnation)
        #expect(Set(incarnations.prefix(10)).count == 1 && Set(incarnations.suffix(10)).count == 1)
        #expect(incarnations.first != incarnations.last)
        await two.shutdown()
    }

    @Test func aFullInboundStreamLosesNothing() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        var options = ReplicaNetwork.Options.testing
        options.inboundFramesMax = 5
        let one = try cluster.network(1)
        let two = try cluster.network(2, options: options)
        try await one.start()
        try await two.start()
        for number in 1...40 as ClosedRange<UInt64> {
            one.send(cluster.frame(from: 1, number: number), to: 2)
        }
        // Nobody reads member 2's frames yet: its stream fills and it turns the link away.
        #expect(await eventually { two.statistics.inboundOverflows >= 1 })
        let atTwo = FrameCollector(two)
        await atTwo.wait(for: 40)
        try await Task.sleep(for: .milliseconds(50))
        expectFIFO(atTwo.frames, senders: [1], count: 40)
        await one.shutdown()
        await two.shutdown()
    }

    @Test func aFullSendQueueReportsBackpressure() async throws {
        let cluster = try LoopbackCluster(replicas: 4)
        var options = ReplicaNetwork.Options.testing
        options.sendQueueMessagesMax = 10
        let one = try cluster.network(1, options: options)
        try await one.start()
        for number in 1...10 as ClosedRange<UInt64> {
            #expect(one.send(cluster.frame(from: 1, number: number), to: 3) == .queued)
        }
        #expect(one.send(cluster.frame(from: 1, number: 11), to: 3) == .queueFull)
        #expect(one.broadcast(cluster.frame(from: 1, number: 12)) == [3])
        await one.shutdown()
    }
}
