import NIOCore
import NIOPosix
import SintraCore
import SintraCrypto
import Testing

@testable import SintraNetwork

/// The network built the way a replica builds it: from cluster.json and its replica secret file.
@Suite(.serialized) struct ClusterFileTests {
    @Test func aDealtClusterConnectsFromItsKeyFiles() async throws {
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1)
        let dealt = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: try freeConsecutivePorts(4))
        let configuration = try ClusterConfiguration(json: dealt.json())
        let networks = try keys.secrets.map { secrets in
            let file = ReplicaSecretFile(clusterIdentifier: keys.clusterIdentifier, secrets: secrets)
            let loaded = try ReplicaSecretFile(json: file.json(), cluster: configuration)
            var options = ReplicaNetwork.Options.testing
            options.eventLoopThreads = 1
            return try ReplicaNetwork(
                configuration: configuration, identity: try loaded.secrets.identity, options: options)
        }
        let collectors = networks.map(FrameCollector.init)
        for network in networks {
            try await network.start()
        }
        for network in networks {
            let frame = Frame(
                clusterIdentifier: configuration.clusterIdentifier, sender: network.localMember,
                path: InstancePath("test", 1), body: [UInt8(network.localMember)])
            #expect(network.broadcast(frame).isEmpty)
        }
        for collector in collectors {
            let frames = await collector.wait(for: 4)
            #expect(frames.map(\.sender).sorted() == [1, 2, 3, 4])
            #expect(frames.allSatisfy { $0.frame.body == [UInt8($0.sender)] })
        }
        for network in networks {
            await network.shutdown()
        }
    }

    @Test func anIdentityThatIsNotTheMembersIsRejected() throws {
        let keys = try KeyDealer.deal(replicas: 4, faulty: 1)
        let configuration = ClusterConfiguration(keys: keys, host: "127.0.0.1", basePort: 40_000)
        let stranger = try NodeIdentity(index: 2, seed: randomSeed())
        #expect(throws: IdentityCertificateError.self) {
            try ReplicaNetwork(configuration: configuration, identity: stranger, options: .testing)
        }
    }
}

/// The first of `count` consecutive member ports whose client and metrics ports are free too, below the
/// kernel's ephemeral range (`LoopbackPorts`).
func freeConsecutivePorts(_ count: Int) throws -> Int {
    guard let base = LoopbackPorts.findBase(replicas: count) else { throw NetworkTestError.noFreePorts }
    return base
}

