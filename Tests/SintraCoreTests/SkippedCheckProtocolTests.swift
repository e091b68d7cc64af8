import Crypto
import SintraCrypto
import Testing

@testable import SintraCore

/// The protocol instances skip checks of what they made themselves and batch the sender's c-ready checks;
/// every forged echo, vote or share is still rejected and faulted (PROTOCOLS.md §4, §5, §6).
@Suite struct SkippedCheckProtocolTests {
    static let path = InstancePath("vcbc", 5)

    static func readyStatement(_ payload: [UInt8]) -> SignedStatement {
        SignedStatement(
            domain: ConsistentBroadcast.readyDomain, path: path.description,
            payloadDigest: Array(SHA256.hash(data: payload)))
    }

    /// Feeds a sender's own c-send back to it and returns its own c-ready (CKPS01 step 2 at the sender).
    static func ownReady(
        _ sender: inout ConsistentBroadcast.Instance, _ payload: [UInt8]
    ) throws -> ConsistentBroadcast.Message {
        let send = sender.broadcast(payload)
        #expect(send.messages.map(\.message) == [.send(payload: payload)])
        let echoed = sender.handle(.send(payload: payload), from: sender.me)
        return try #require(echoed.messages.first?.message)
    }

    /// CKPS01 step 3 with batched checks: a forged c-ready hidden in the batch that would complete the
    /// certificate is found and its signer faulted; the sender waits for another and the certificate verifies.
    @Test(arguments: [(4, 1), (7, 2)]) func senderFaultsAForgedReadyInItsBatch(n: Int, t: Int) throws {
        let (configuration, keys) = try TestCluster.keys(n: n, t: t, seed: 4)
        let payload: [UInt8] = [9, 9, 9]
        var sender = ConsistentBroadcast.Instance(
            configuration: configuration, keys: keys[0], path: Self.path, sender: 1)
        let own = try Self.ownReady(&sender, payload)
        #expect(sender.handle(own, from: 1).isEmpty)
        let statement = Self.readyStatement(payload)
        let digest = statement.payloadDigest
        var forged = keys[1].identity.sign(statement)
        forged[33] ^= 4
        var effects = sender.handle(.ready(digest: digest, signature: forged), from: 2)
        for member in 3..<(configuration.echoQuorum + 1) {
            let signature = keys[member - 1].identity.sign(statement)
            effects.append(sender.handle(.ready(digest: digest, signature: signature), from: member))
        }
        #expect(effects.faults.map(\.node) == [2])
        #expect(effects.faults.map(\.kind) == [.invalidProof])
        #expect(effects.messages.isEmpty && effects.outputs.isEmpty, "no c-final with a forged signature")
        let last = configuration.echoQuorum + 1
        let completing = sender.handle(
            .ready(digest: digest, signature: keys[last - 1].identity.sign(statement)), from: last)
        #expect(completing.faults.isEmpty)
        let delivery = try #require(completing.outputs.first)
        #expect(delivery.payload == payload)
        #expect(!delivery.certificate.signers.contains(2) && delivery.certificate.signers.contains(1))
        #expect(ConsistentBroadcast.verify(
            payload: payload, certificate: delivery.certificate, path: Self.path, configuration: configuration))
        #expect(completing.messages.map(\.message) == [.final(digest: digest, certificate: delivery.certificate)])
        // A late forged c-ready is still reported.
        if n > last {
            var late = keys[n - 1].identity.sign(statement)
            late[0] ^= 1
            #expect(sender.handle(.ready(digest: digest, signature: late), from: n).faults.map(\.node) == [n])
        }
    }

    /// The sender's own c-send (and so its own c-ready) may come back after the others' c-readies: the held
    /// ones are checked then and the certificate completes.
    @Test func senderCompletesWhenItsOwnReadyComesLast() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        let payload: [UInt8] = [5]
        var sender = ConsistentBroadcast.Instance(
            configuration: configuration, keys: keys[0], path: Self.path, sender: 1)
        _ = sender.broadcast(payload)
        let statement = Self.readyStatement(payload)
        for member in [2, 3] {
            let signature = keys[member - 1].identity.sign(statement)
            #expect(sender.handle(.ready(digest: statement.payloadDigest, signature: signature), from: member).isEmpty)
        }
        let own = sender.handle(.send(payload: payload), from: 1)
        let ready = try #require(own.messages.first?.message)
        let completing = sender.handle(ready, from: 1)
        #expect(completing.faults.isEmpty)
        #expect(completing.outputs.map(\.payload) == [payload])
        #expect(completing.outputs.first?.certificate.signers == [1, 2, 3])
    }

    /// A receiver skips only its own signature, by its bytes: a certificate with a forged signature under
    /// the receiver's own index, or with any other forged signature, is still rejected.
    @Test func receiverChecksEverySignatureButItsOwn() throws {
        let (configuration, keys) = try TestCluster.keys(n: 4, t: 1, seed: 4)
        let payload: [UInt8] = [1, 2]
        var receiver = ConsistentBroadcast.Instance(
            configuration: configuration, keys: keys[1], path: Self.path, sender: 1)
        let ready = receiver.handle(.send(payload: payload), from: 1)
        guard case .ready(let digest, let ownSignature) = try #require(ready.messages.first?.message) else {
            Issue.record("a receiver answers a c-send with a c-ready")
            return
        }
        let statement = Self.readyStatement(payload)
        let one = keys[0].identity.sign(statement)
        let three = keys[2].identity.sign(statement)
        var forgedOwn = ownSignature
        forgedOwn[40] ^= 1
        var forgedThree = three
        forgedThree[2] ^= 1
        for signatures in [[one, forgedOwn, three], [one, ownSignature, forgedThree]] {
            let certificate = QuorumCertificate(
                signatures: zip(1...3, signatures).map { QuorumCertificate.Signature(member: $0, bytes: $1) })
            let effects = receiver.handle(.final(digest: digest, certificate: certificate), from: 1)
            #expect(effects.outputs.isEmpty)
            #expect(effects.faults.map(\.kind) == [.invalidProof])
        }
        // Our own signature on another digest is not ours on this one: a c-final for a digest we did not
        // sign is checked in full (and the payload is then fetched).
        let otherStatement = Self.readyStatement([3])
        let otherCertificate = QuorumCertificate(
            signatures: [1, 2, 3].map {
                QuorumCertificate.Signature(member: $0, bytes: keys[$0 - 1].identity.sign(otherStatement))
            })
        var mixed = otherCertificate.signatures
        mixed[1] = .init(member: 2, bytes: ownSignature)
        let crossed = receiver.handle(
            .final(digest: otherStatement.payloadDigest, certificate: QuorumCertificate(signatures: mixed)), from: 1)
        #expect(crossed.faults.map(\.kind) == [.invalidProof])
        let valid = QuorumCertificate(
            signatures: zip(1...3, [one, ownSignature, three]).map {
                QuorumCertificate.Signature(member: $0, bytes: $1)
            })
        let delivered = receiver.handle(.final(digest: digest, certificate: valid), from: 1)
        #expect(delivered.outputs.map(\.payload) == [payload])
    }

    /// A justification that puts a forged signature under this party's index is rejected although this
    /// party's own signature on that statement is cached as verified.
    @Test func forgedSignatureUnderOwnIndexIsRejected() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 31)
        var script = BinaryAgreementScript(group: group, me: 1)
        script.propose(true)
        #expect(script.instance.countedPreProcesses == 1)
        let statement = group.preProcessStatement(value: true)
        var forged = group.sign(1, statement)
        forged[20] ^= 1
        let bad = QuorumCertificate(signatures: [
            .init(member: 1, bytes: forged), .init(member: 2, bytes: group.sign(2, statement)),
        ])
        script.deliver(group.preVote(from: 4, round: 1, value: true, justification: .preProcessed(bad)), from: 4)
        #expect(script.instance.countedPreVotes == 0)
        #expect(script.faults.map(\.kind) == [.unjustified] && script.faults.map(\.node) == [4])
        script.deliver(group.preVote(from: 4, round: 1, value: true, justification: group.preProcessed(true)), from: 4)
        #expect(script.instance.countedPreVotes == 1)
        // A forged vote signature of another party is still faulted.
        var vote = group.preProcess(from: 3, value: true)
        if case .preProcess(let value, var signature) = vote {
            signature[1] ^= 1
            vote = .preProcess(value: value, signature: signature)
        }
        script.deliver(vote, from: 3)
        #expect(script.faults.map(\.kind) == [.unjustified, .invalidProof])
        #expect(script.instance.countedPreProcesses == 1)
    }

    /// This party's own coin share counts without a proof check (with one more valid share it gives the
    /// coin); a forged share from another party is still faulted and not counted.
    @Test func ownCoinShareCountsAndForgedSharesAreFaulted() throws {
        let group = try BinaryAgreementGroup(n: 4, t: 1, seed: 21)
        var script = BinaryAgreementScript(group: group, me: 1)
        try script.driveToAllAbstainRoundTwo()
        #expect(script.sentPreVotes.count == 1, "round 2 waits for coin(1)")
        guard case .coinShare(let round, let honest) = group.coinShare(from: 2, round: 1) else {
            Issue.record("coinShare makes a coin share")
            return
        }
        let forged = ThresholdCoin.Share(
            index: 2, value: honest.value,
            proof: EqualityProof(challenge: honest.proof.challenge, response: honest.proof.response + .one))
        script.deliver(.coinShare(round: round, share: forged), from: 2)
        #expect(script.faults.map(\.kind) == [.invalidProof] && script.faults.map(\.node) == [2])
        #expect(script.sentPreVotes.count == 1, "a forged share does not complete the coin")
        script.deliver(group.coinShare(from: 3, round: 1), from: 3)
        let coin = try group.coin(round: 1)
        #expect(script.sentPreVotes.map(\.round) == [1, 2])
        #expect(script.sentPreVotes.last?.value == coin)
    }
}
