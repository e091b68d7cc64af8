import Crypto
import SintraCore
import SintraCrypto
import Testing

/// Bracha's reliable broadcast, checked against its three properties and its thresholds.
@Suite struct ReliableBroadcastTests {
    static let shapes = [(4, 1), (7, 2), (10, 3)]
    static let path = InstancePath("rbc", 1)

    static func network(n: Int, t: Int, sender: Int, seed: UInt64) throws -> TestNetwork<ReliableBroadcast.Instance> {
        let (configuration, _) = try TestCluster.keys(n: n, t: t, seed: 1)
        var nodes = [Int: ReliableBroadcast.Instance]()
        for me in 1...n {
            nodes[me] = ReliableBroadcast.Instance(configuration: configuration, path: path, sender: sender, me: me)
        }
        return TestNetwork(replicas: n, nodes: nodes, seed: seed)
    }

    @Test(arguments: shapes) func validityHonestSenderIsDeliveredByAll(n: Int, t: Int) throws {
        for seed in UInt64(1)...10 {
            var network = try Self.network(n: n, t: t, sender: 1, seed: seed)
            let payload = Array("payload \(seed)".utf8)
            network.absorb(network.nodes[1]!.broadcast(payload), from: 1)
            // t silent parties (not the sender).
            network.crashed = Set((n - t + 1)...n)
            network.run()
            for node in 1...(n - t) {
                #expect(network.outputs[node] == [payload], "node \(node) seed \(seed)")
            }
            #expect(network.faults.isEmpty)
        }
    }

    /// An equivocating sender sends one payload to half of the parties and another to the rest: honest
    /// parties deliver the same payload or nothing (agreement), and at most once (integrity).
    @Test(arguments: shapes) func agreementUnderEquivocatingSender(n: Int, t: Int) throws {
        for seed in UInt64(1)...20 {
            var network = try Self.network(n: n, t: t, sender: n, seed: seed)
            let a = ReliableBroadcast.Message.send(payload: [1]).encoded
            let b = ReliableBroadcast.Message.send(payload: [2]).encoded
            let split = Int(seed % UInt64(n - 1)) + 1
            for to in 1...n { network.inject(to <= split ? a : b, from: n, to: to) }
            network.run()
            let delivered = (1...(n - 1)).compactMap { network.outputs[$0] }
            for outputs in delivered { #expect(outputs.count <= 1) }
            #expect(Set(delivered.flatMap { $0 }).count <= 1, "seed \(seed) split \(split)")
            // Totality: if one honest party delivered, all did.
            let deliveredCount = (1...(n - 1)).filter { !(network.outputs[$0] ?? []).isEmpty }.count
            #expect(deliveredCount == 0 || deliveredCount == n - 1)
        }
    }

    /// The ready-amplification step: a party that saw no echoes still sends ready after t + 1 readies,
    /// and delivers after 2t + 1 readies by fetching the payload with r-request.
    @Test(arguments: shapes) func amplificationAndFetchOfAMissingPayload(n: Int, t: Int) throws {
        let (configuration, _) = try TestCluster.keys(n: n, t: t, seed: 1)
        var late = ReliableBroadcast.Instance(configuration: configuration, path: Self.path, sender: 1, me: n)
        let payload: [UInt8] = [9, 9, 9]
        let readyDigest = Array(SHA256.hash(data: payload))
        var sentReady = false
        for node in 1...t {
            let effects = late.handle(.ready(digest: readyDigest), from: node)
            #expect(effects.messages.isEmpty)
        }
        let amplified = late.handle(.ready(digest: readyDigest), from: t + 1)
        if case .ready(let digest) = amplified.messages.first?.message, digest == readyDigest { sentReady = true }
        #expect(sentReady, "t + 1 readies trigger a ready")
        var requests = 0
        for node in (t + 2)...(2 * t + 1) {
            let effects = late.handle(.ready(digest: readyDigest), from: node)
            requests += effects.messages.filter { $0.message == .request }.count
        }
        #expect(requests == 1, "2t + 1 readies without the payload trigger one r-request")
        #expect(late.output == nil)
        // A wrong answer is ignored; the right one delivers.
        #expect(late.handle(.answer(payload: [1]), from: 2).outputs.isEmpty)
        #expect(late.handle(.answer(payload: payload), from: 3).outputs == [payload])
        #expect(late.handle(.answer(payload: payload), from: 4).outputs.isEmpty, "at most once")
    }

    @Test func faultsAreRecordedNotThrown() throws {
        let (configuration, _) = try TestCluster.keys(n: 4, t: 1, seed: 1)
        var instance = ReliableBroadcast.Instance(configuration: configuration, path: Self.path, sender: 1, me: 2)
        let notSender = instance.handle(.send(payload: [1]), from: 3)
        #expect(notSender.faults.map(\.kind) == [.notAllowed])
        _ = instance.handle(.echo(digest: [UInt8](repeating: 1, count: 32)), from: 3)
        let doubleEcho = instance.handle(.echo(digest: [UInt8](repeating: 2, count: 32)), from: 3)
        #expect(doubleEcho.faults.map(\.kind) == [.equivocation])
        let nonMember = instance.handle(.echo(digest: [UInt8](repeating: 2, count: 32)), from: 9)
        #expect(nonMember.isEmpty)
    }

    @Test func messagesRoundTripAndGarbageThrows() throws {
        let limits = WireLimits(payloadBytesMax: 100, memberCount: 4)
        let messages: [ReliableBroadcast.Message] = [
            .send(payload: [1, 2, 3]), .echo(digest: [UInt8](repeating: 7, count: 32)),
            .ready(digest: [UInt8](repeating: 8, count: 32)), .request, .answer(payload: []),
        ]
        for message in messages {
            #expect(try ReliableBroadcast.Message(encoded: message.encoded, limits: limits) == message)
        }
        #expect(throws: DecodingError.self) {
            try ReliableBroadcast.Message(encoded: ReliableBroadcast.Message.send(payload: [UInt8](repeating: 0, count: 101)).encoded, limits: limits)
        }
        var random = ProtocolRandom.seeded(5)
        for _ in 0..<1000 {
            let length = Int(random.next() % 80)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            _ = try? ReliableBroadcast.Message(encoded: bytes, limits: limits)
        }
        #expect(throws: DecodingError.self) { try ReliableBroadcast.Message(encoded: [9], limits: limits) }
    }
}
