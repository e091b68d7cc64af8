import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SintraCore
import SintraCrypto
import Testing

@testable import SintraNetwork

/// A cluster of in-process endpoints on loopback ports chosen free at test time.
struct LoopbackCluster {
    let clusterIdentifier: [UInt8]
    let identities: [NodeIdentity]
    let members: [ClusterMember]

    init(replicas: Int) throws {
        clusterIdentifier = (0..<16).map { _ in UInt8.random(in: 0...255) }
        identities = try (1...replicas).map { try NodeIdentity(index: $0, seed: randomSeed()) }
        let ports = try freePorts(replicas)
        members = identities.map {
            ClusterMember(
                index: $0.index, host: "127.0.0.1", port: ports[$0.index - 1], identityKey: $0.publicKey.bytes)
        }
    }

    /// A network for member `index` (not started).
    func network(_ index: Int, options: ReplicaNetwork.Options = .testing) throws -> ReplicaNetwork {
        try ReplicaNetwork(
            members: members, clusterIdentifier: clusterIdentifier, identity: identities[index - 1], options: options)
    }

    func frame(from sender: Int, number: UInt64, bodyBytes: Int = 16) -> Frame {
        Frame(
            clusterIdentifier: clusterIdentifier, sender: sender, path: InstancePath("test", number),
            body: (0..<bodyBytes).map { UInt8(truncatingIfNeeded: Int(number) &+ $0) })
    }
}

func randomSeed() -> [UInt8] {
    (0..<32).map { _ in UInt8.random(in: 0...255) }
}

/// Free loopback ports below the kernel's ephemeral range (see `LoopbackPorts`): a port-0 port released
/// before use can be taken by another test's outgoing connection in between.
func freePorts(_ count: Int) throws -> [Int] {
    var ports = [Int]()
    for _ in 0..<(count * 200) where ports.count < count {
        let port = Int.random(in: LoopbackPorts.lowest..<LoopbackPorts.ephemeralLow())
        if !ports.contains(port) && LoopbackPorts.isFree(port) { ports.append(port) }
    }
    guard ports.count == count else { throw NetworkTestError.noFreePorts }
    return ports
}

enum NetworkTestError: Error { case noFreePorts }

extension ReplicaNetwork.Options {
    /// Quick reconnects and a silent logger. Connect and handshake timeouts are generous: the test suite
    /// runs CPU-heavy simulations in parallel, and a debug-build TLS handshake on a busy 2-core machine can
    /// take seconds; a test that means to hit a timeout sets its own.
    static var testing: ReplicaNetwork.Options {
        var options = ReplicaNetwork.Options()
        options.reconnectDelayMinimum = .milliseconds(10)
        options.reconnectDelayMaximum = .milliseconds(200)
        options.connectTimeout = .seconds(20)
        options.handshakeTimeout = .seconds(20)
        options.logger = Logger(label: "sintra.network.test") { _ in SwiftLogNoOpLogHandler() }
        return options
    }
}

/// Consumes a network's frames in one long-lived task (an AsyncStream must not be cancelled mid-wait, as
/// that would finish it) and lets tests wait for a count with a deadline.
final class FrameCollector: Sendable {
    private let received = NIOLockedValueBox<[ReceivedFrame]>([])
    private let task: Task<Void, Never>

    init(_ network: ReplicaNetwork) {
        let received = self.received
        task = Task {
            for await frame in network.frames {
                received.withLockedValue { $0.append(frame) }
            }
        }
    }

    var frames: [ReceivedFrame] { received.withLockedValue { $0 } }

    /// Waits until at least `count` frames arrived, or fails the test after `seconds`.
    @discardableResult
    func wait(for count: Int, seconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) async
        -> [ReceivedFrame]
    {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while frames.count < count, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let frames = self.frames
        #expect(
            frames.count >= count, "timed out with \(frames.count) of \(count) frames", sourceLocation: sourceLocation)
        return frames
    }
}

/// Waits until `condition` holds or `seconds` pass; returns whether it held.
func eventually(seconds: Double = 60, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

/// Checks that the frames from each sender are the frames `1…count` in order, once each.
func expectFIFO(
    _ frames: [ReceivedFrame], senders: [Int], count: UInt64, sourceLocation: SourceLocation = #_sourceLocation
) {
    for sender in senders {
        let numbers = frames.filter { $0.sender == sender }.map { $0.frame.path.components.first?.index ?? 0 }
        #expect(
            numbers == Array(1...count), "frames from \(sender) out of order, lost or repeated",
            sourceLocation: sourceLocation)
    }
}
