import Crypto
import SintraCore
import SintraCrypto
import Testing

/// Verifiable consistent broadcast (CKPS01): consistency, verifiability, and the e-quorum certificate.
@Suite struct ConsistentBroadcastTests {
    static let shapes = [(4, 1), (7, 2), (10, 3)]
    static let path = InstancePath("vcbc", 3)

    static func network(n: Int, t: Int, sender: Int, seed: UInt64)
        throws -> (TestNetwork<ConsistentBroadcast.Instance>, GroupConfiguration, [LocalKeys])
    {
        let (configuration, keys) = try TestCluster.keys(n: n, t: t, seed: 2)
        var nodes = [Int: ConsistentBroadcast.Instance]()
        for me in 1...n {
            nodes[me] = ConsistentBroadcast.Instance(
                configuration: configuration, keys: keys[me - 1], path: path, sender: sender)
        }
        return (TestNetwork(replicas: n, nodes: nodes, seed: seed), configuration, keys)
    }

    @Test(arguments: shapes) func validityAndThirdPartyVerifiability(n: Int, t: Int) throws {
        for seed in UInt64(1)...5 {
            var (network, configuration, _) = try Self.network(n: n, t: t, sender: 2, seed: seed)
            let payload = Array("batch \(seed)".utf8)
            network.absorb(network.nodes[2]!.broadcast(payload), from: 2)
            network.crashed = Set((n - t + 1)...n)
            network.run()
            for node in 1...(n - t) {
                let delivery = try #require(network.outputs[node]?.first, "node \(node)")
                #expect(network.outputs[node]?.count == 1)
                #expect(delivery.payload == payload)
                #expect(delivery.certificate.signers.count == configuration.echoQuorum)
                // Anyone can check the proof; it proves nothing for another payload or another path.
                #expect(ConsistentBroadcast.verify(
                    payload: payload, certificate: delivery.certificate, path: Self.path, configuration: configuration))
                #expect(!ConsistentBroadcast.verify(
                    payload: payload + [0], certificate: delivery.certificate, path: Self.path,
                    configuration: configuration))
                #expect(!ConsistentBroadcast.verify(
                    payload: payload, certificate: delivery.certificate, path: InstancePath("vcbc", 4),
                    configuration: configuration))
            }
            #expect(network.faults.isEmpty)
        }
    }

    /// An equivocating sender: no two honest parties deliver different payloads.
    @Test(arguments: shapes) func consistencyUnderEquivocatingSender(n: Int, t: Int) throws {
        for seed in UInt64(1)...10 {
            var (network, _, _) = try Self.network(n: n, t: t, sender: 1, seed: seed)
            // The sender's node runs honestly for payload A but also sends B to some parties.
            network.absorb(network.nodes[1]!.broadcast([0xA]), from: 1)
            network.queue.removeAll { $0.from == 1 && $0.to > 1 && Int($0.to) % 2 == Int(seed % 2) }
            for to in 2...n where to % 2 == Int(seed % 2) {
                network.inject(ConsistentBroadcast.Message.send(payload: [0xB]).encoded, from: 1, to: to)
            }
            network.run()
            let payloads = Set((2...n).compactMap { network.outputs[$0]?.first?.payload })
            #expect(payloads.count <= 1, "seed \(seed): \(payloads)")
        }
    }

    /// A party that missed the c-send fetches the payload with c-request after a valid c-final.
    @Test func missingPayloadIsFetchedWithRequest() throws {
        var (network, _, _) = try Self.network(n: 4, t: 1, sender: 1, seed: 9)
        network.absorb(network.nodes[1]!.broadcast([1, 2, 3]), from: 1)
        network.queue.removeAll { $0.to == 4 }  // node 4 never gets the c-send
        network.run()
        #expect(network.outputs[4]?.first?.payload == [1, 2, 3])
    }

    @Test func certificatesWithDuplicateOrTooFewSignersAreRejected() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 2)
        var receiver = ConsistentBroadcast.Instance(configuration: configuration, keys: keys[1], path: Self.path, sender: 1)
        let payload: [UInt8] = [4, 2]
        _ = receiver.handle(.send(payload: payload), from: 1)
        let digest = Array(SHA256.hash(data: payload))
        let statement = SignedStatement(domain: ConsistentBroadcast.readyDomain, path: Self.path.description, payloadDigest: digest)
        let one = keys[0].identity.sign(statement)
        let two = keys[1].identity.sign(statement)
        // e = 3 for n = 4: two signers, one of them twice, is not a certificate.
        let duplicated = QuorumCertificate(signatures: [.init(member: 1, bytes: one), .init(member: 1, bytes: one), .init(member: 2, bytes: two)])
        let effects = receiver.handle(.final(digest: digest, certificate: duplicated), from: 1)
        #expect(effects.outputs.isEmpty)
        #expect(effects.faults.map(\.kind) == [.invalidProof])
        let short = QuorumCertificate(signatures: [.init(member: 1, bytes: one), .init(member: 2, bytes: two)])
        #expect(receiver.handle(.final(digest: digest, certificate: short), from: 1).outputs.isEmpty)
        let three = keys[2].identity.sign(statement)
        let valid = QuorumCertificate(signatures: [.init(member: 1, bytes: one), .init(member: 2, bytes: two), .init(member: 3, bytes: three)])
        // A valid certificate relayed by a non-sender is not accepted as a c-final; from the sender it is.
        #expect(receiver.handle(.final(digest: digest, certificate: valid), from: 3).faults.map(\.kind) == [.notAllowed])
        #expect(receiver.handle(.final(digest: digest, certificate: valid), from: 1).outputs.map(\.payload) == [payload])
    }

    @Test func aReceiverSignsOneDigestOnly() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 2)
        var receiver = ConsistentBroadcast.Instance(configuration: configuration, keys: keys[2], path: Self.path, sender: 1)
        #expect(receiver.handle(.send(payload: [1]), from: 1).messages.count == 1)
        let second = receiver.handle(.send(payload: [2]), from: 1)
        #expect(second.messages.isEmpty)
        #expect(second.faults.map(\.kind) == [.equivocation])
    }

    @Test func messagesRoundTrip() throws {
        let (_, keys) = try TestCluster.keys(n: 4, t: 1, seed: 2)
        let statement = SignedStatement(domain: "c-ready", path: "x", payload: [1])
        let signature = keys[0].identity.sign(statement)
        let certificate = QuorumCertificate(signatures: [.init(member: 1, bytes: signature)])
        let limits = WireLimits(memberCount: 4)
        let messages: [ConsistentBroadcast.Message] = [
            .send(payload: [1]), .ready(digest: [UInt8](repeating: 3, count: 32), signature: signature),
            .final(digest: [UInt8](repeating: 3, count: 32), certificate: certificate), .request,
            .answer(payload: [5], certificate: certificate),
        ]
        for message in messages {
            #expect(try ConsistentBroadcast.Message(encoded: message.encoded, limits: limits) == message)
            let bytes = message.encoded
            for cut in 0..<bytes.count {
                _ = try? ConsistentBroadcast.Message(encoded: bytes.prefix(cut), limits: limits)
            }
        }
    }
}
