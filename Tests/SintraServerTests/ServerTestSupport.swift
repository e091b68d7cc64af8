import Foundation
import Logging
import NIOCore
import NIOPosix
import SintraCore
import SintraCrypto
import SintraNetwork
import SintraReplica

@testable import SintraServer

/// A dealt cluster on loopback with every replica as an in-process `ReplicaNode`.
struct LocalCluster {
    let keys: DealtKeys
    let configuration: ClusterConfiguration
    let nodes: [ReplicaNode]

    init(replicas: Int, faulty: Int, options: ReplicaNode.Options = .testing) throws {
        let keys = try KeyDealer.deal(replicas: replicas, faulty: faulty)
        let configuration = ClusterConfiguration(
            keys: keys, host: "127.0.0.1", basePort: try freeConsecutivePorts(replicas))
        self.keys = keys
        self.configuration = configuration
        nodes = try keys.secrets.map { secrets in
            try ReplicaNode(cluster: configuration, secrets: secrets, options: options)
        }
    }

    func start() async throws {
        for node in nodes {
            try await node.start()
        }
    }

    func shutdown() async {
        for node in nodes {
            await node.shutdown()
        }
    }
}

extension ReplicaNode.Options {
    /// Quick reconnects and silent loggers.
    static var testing: ReplicaNode.Options {
        var options = ReplicaNode.Options()
        options.network.reconnectDelayMinimum = .milliseconds(10)
        options.network.reconnectDelayMaximum = .milliseconds(200)
        options.network.connectTimeout = .seconds(20)
        options.network.handshakeTimeout = .seconds(20)
        options.network.logger = Logger(label: "sintra.network.test") { _ in SwiftLogNoOpLogHandler() }
        options.logger = Logger(label: "sintra.replica.test") { _ in SwiftLogNoOpLogHandler() }
        return options
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass; returns whether it held.
func eventually(within seconds: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// The first of `count` consecutive member ports whose client and metrics ports are free too, below the
/// kernel's ephemeral range (`LoopbackPorts`).
func freeConsecutivePorts(_ count: Int) throws -> Int {
    guard let base = LoopbackPorts.findBase(replicas: count) else { throw TestPortError() }
    return base
}

struct TestPortError: Error {}
