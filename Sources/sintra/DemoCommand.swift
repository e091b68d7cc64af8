import ArgumentParser
import Foundation
import SintraCrypto

/// `sintra crypto-demo`: the cryptographic core in one process, the way a cluster uses it: keys dealt to n replicas, a threshold coin tossed
/// by all of them with a Byzantine replica sending a forged share, a client request encrypted under the
/// cluster's key and opened only by t + 1 replicas together, and a quorum certificate.
struct CryptoDemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto-demo",
        abstract: "Show Sintra's threshold cryptography at work in an n-replica cluster (in one process).")

    @Option(name: .long, help: "Number of replicas n (t is the largest value with n ≥ 3t + 1).")
    var replicas: Int = 4

    @Option(name: .long, help: "Number of coins to toss.")
    var coins: Int = 8

    func validate() throws {
        guard (4...64).contains(replicas) else { throw ValidationError("--replicas must be in 4…64 for the demo") }
        guard (1...1000).contains(coins) else { throw ValidationError("--coins must be in 1…1000") }
    }

    func run() throws {
        let n = replicas
        let t = (n - 1) / 3
        let byzantine = n  // the last replica plays the attacker
        print("Sintra demo: n = \(n) replicas, tolerating t = \(t) Byzantine; replica \(byzantine) is Byzantine.\n")

        var clock = Stopwatch()
        let keys = try KeyDealer.deal(replicas: n, faulty: t)
        print("1. Keys dealt in \(clock.lap()): each replica holds an Ed25519 identity and one share of a")
        print("   coin key and of an encryption key; any \(t + 1) shares work together, fewer learn nothing.\n")

        print("2. Threshold coin (Cachin–Kursawe–Shoup): every replica publishes a share with a proof;")
        print("   any \(t + 1) valid shares give the same unpredictable value.")
        let coinKey = keys.coinPublicKey
        var bits = ""
        for round in 1...coins {
            let name = Array("demo/abba/round:\(round)".utf8)
            var verified = [ThresholdCoin.VerifiedShare]()
            for secrets in keys.secrets {
                var share = secrets.coinShare.coinShare(name: name)
                if secrets.index == byzantine {
                    // The attacker sends a random value with a recycled proof.
                    share = ThresholdCoin.Share(
                        index: share.index, value: GroupElement.generatorMultiple(Scalar.random()), proof: share.proof)
                }
                do {
                    verified.append(try coinKey.verifyCoinShare(share, name: name))
                } catch {
                    if round == 1 { print("   round 1: rejected — \(error)") }
                }
            }
            let first = try coinKey.combineCoin(Array(verified.prefix(t + 1)), name: name)
            let last = try coinKey.combineCoin(Array(verified.suffix(t + 1)), name: name)
            guard first == last else { throw ValidationError("coin values differ: this is a bug") }
            bits += first.bit ? "1" : "0"
        }
        print("   \(coins) coins tossed in \(clock.lap()): bits \(bits). For every coin the first \(t + 1) and the")
        print("   last \(t + 1) valid shares combined to the same value.\n")

        print("3. Threshold encryption (TDH2, Shoup–Gennaro): a client's request stays sealed until t + 1")
        print("   replicas open it together, so nobody can act on it before its place in the order is fixed.")
        let encryptionKey = keys.encryptionPublicKey
        let request = Array("PUT balance/alice 100".utf8)
        let ciphertext = try encryptionKey.encrypt(request, label: Array("demo/client:1/request:1".utf8))
        print("   ciphertext of \(ciphertext.encoded.count) bytes, publicly valid: \(encryptionKey.isValid(ciphertext))")
        var shares = [ThresholdEncryption.VerifiedDecryptionShare]()
        for secrets in keys.secrets.reversed() where shares.count <= t {
            var share = try secrets.encryptionShare.decryptionShare(for: ciphertext, publicKey: encryptionKey)
            if secrets.index == byzantine {
                share = ThresholdEncryption.DecryptionShare(
                    index: share.index, value: ciphertext.u, proof: share.proof)
            }
            do {
                shares.append(try encryptionKey.verifyDecryptionShare(share, for: ciphertext))
            } catch {
                print("   rejected — \(error)")
            }
        }
        let plaintext = try encryptionKey.decrypt(ciphertext, shares: shares)
        print("   opened by replicas \(shares.map { String($0.share.index) }.joined(separator: ", ")): "
            + "\"\(String(decoding: plaintext, as: UTF8.self))\" (\(clock.lap()))\n")

        print("4. Quorum certificate: n − t = \(n - t) Ed25519 signatures by distinct replicas on one statement,")
        print("   bound to the protocol instance; a repeated signer never counts twice.")
        let members = keys.identityKeys.map { try? MemberPublicKey(bytes: $0) }.compactMap { $0 }
        let statement = SignedStatement(domain: "c-ready", path: "demo/vcbc/sender:1", payload: request)
        var builder = QuorumCertificate.Builder(statement: statement, members: members, threshold: n - t)
        for secrets in keys.secrets where !builder.isComplete {
            let identity = try secrets.identity
            try builder.add(member: identity.index, signature: identity.sign(statement))
            try builder.add(member: identity.index, signature: identity.sign(statement))  // ignored
        }
        if let certificate = builder.certificate() {
            try certificate.verify(statement, members: members, threshold: n - t)
            print("   certificate by replicas \(certificate.signers.map(String.init).joined(separator: ", ")) verified "
                + "(\(certificate.encoded.count) bytes, \(clock.lap())).\n")
        }

        print("Coming next: the protocols (broadcast, agreement, atomic broadcast) on this core, then real")
        print("replica processes on several hosts with clients, where one replica is killed mid-run and the")
        print("service carries on. Run `sintra keygen --replicas 4 --out keys` to deal a cluster's key files.")
    }
}

/// Wall-clock lap times for the demo's output (never used inside the protocols).
struct Stopwatch {
    private var start = DispatchTime.now()

    mutating func lap() -> String {
        let now = DispatchTime.now()
        let milliseconds = Double(now.uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000
        start = now
        return String(format: "%.1f ms", milliseconds)
    }
}
